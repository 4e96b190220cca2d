// Fuzz targets (issue #17 "Hardening"): one function per input parser, taking raw bytes.
//
// Each feeds its input to the parser the way the command that reads such a file does, and returns 0.
// circuitscope::Error is caught: it is how the library rejects bad input. Anything else escapes on
// purpose (a std::bad_alloc, a nlohmann or c10 exception, a std::out_of_range, ...): an input path
// that was never validated. libFuzzer reports it as a crash ("deadly signal" after an uncaught
// exception), and the regression replay (tests/test_fuzz_regressions.cpp) fails on it.
//
// The functions are linked into the libFuzzer executables (fuzz/fuzz_<name>.cpp, built with
// -DCIRCUITSCOPE_FUZZ=ON) and into the ordinary Catch2 binary, which replays the committed seeds and
// crash reproducers (tests/data/fuzz/<name>/{seeds,regressions}) on every test run.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace circuitscope {

// safetensors: a whole .safetensors file (header, tensor table), then every tensor read into an
// at::Tensor in its own dtype and converted to float, as the model loader does.
int fuzz_safetensors(const uint8_t* data, size_t size);
// config: a config.json text, parsed as load_config does, then parse_config.
int fuzz_config(const uint8_t* data, size_t size);
// tokenizer: "TOKENIZER_JSON" kTokenizerSeparator "TEXT". The tokenizer.json is loaded; TEXT is encoded
// with and without special tokens, normalized, pre-tokenized, and the ids decoded; then ids made of
// TEXT's bytes (most of them out of range) are decoded and looked up. Without a separator the whole
// input is the tokenizer.json and kTokenizerDefaultText the text.
int fuzz_tokenizer(const uint8_t* data, size_t size);
// chat_template: a Jinja template source, parsed and rendered with a fixed conversation (system, user,
// assistant with reasoning and a tool call, tool, user; tools; bos/eos tokens; add_generation_prompt).
int fuzz_chat_template(const uint8_t* data, size_t size);
// dataset_line: one line of a pairs JSONL file, read in token form (vocab_size 1000), in text form
// with a small tokenizer (kFuzzTokenizerPath) and in text form through a prompt renderer that
// requires continuations.
int fuzz_dataset_line(const uint8_t* data, size_t size);
// report: a report JSON file (written to a scratch file), read as compare reads it (read_report_heads,
// the comparison, its JSON and text), as evaluate and graph do (read_json_file, report_edges,
// report_metric) and as report does (section_for_input; both section builders; the HTML page).
int fuzz_report(const uint8_t* data, size_t size);
// sweep_spec: a SWEEP.json (comments allowed), written into a fixture folder of checkpoints and data
// files and read there with read_sweep_spec, its resolved form read back, then planned. The
// "attribute" block goes to a stand-in for the CLI's parser (sweep_parser.hpp).
int fuzz_sweep_spec(const uint8_t* data, size_t size);

// The separator of the tokenizer target's two parts.
constexpr char kTokenizerSeparator[] = "\n\x01\n";
constexpr char kTokenizerDefaultText[] = "Hello, world! 12345 <|endoftext|> caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd\n\tend";

// Thrown by a target when the library broke a promise its header makes about a result that it did
// not reject (e.g. a token id outside the vocabulary, decode() output that is not UTF-8). Not an
// Error, so it is reported like any other escaping exception.
struct FuzzInvariantError : std::logic_error {
  using std::logic_error::logic_error;
};

struct FuzzTarget {
  const char* name;  // the folder name under tests/data/fuzz/
  int (*run)(const uint8_t* data, size_t size);
};
// Every target, in a fixed order.
const std::vector<FuzzTarget>& fuzz_targets();
// nullptr when there is none of that name.
const FuzzTarget* find_fuzz_target(const std::string& name);

// Process-wide settings for a fuzzing run: library logging off (warnings about bad input would flood
// libFuzzer's output and slow it down) and one libtorch thread. Called from LLVMFuzzerInitialize.
void fuzz_init();

}  // namespace circuitscope
