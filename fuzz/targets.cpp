// The fuzz targets (see targets.hpp). Only circuitscope::Error is caught; see there why.
#include "targets.hpp"

#include <ATen/Parallel.h>
#include <ftw.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/compare.hpp"
#include "circuitscope/config.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/html_report.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/metric.hpp"
#include "circuitscope/patching.hpp"
#include "circuitscope/pipeline.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/safetensors.hpp"
#include "circuitscope/sweep.hpp"
#include "circuitscope/tokenizer.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "sweep_parser.hpp"

#ifndef CS_FUZZ_TOKENIZER_PATH
#error "CS_FUZZ_TOKENIZER_PATH (the dataset_line target's tokenizer.json) must be defined by the build"
#endif

namespace circuitscope {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

// Error is how circuitscope rejects input, except kInternal, which is a broken invariant: a finding.
void rethrow_internal(const Error& e) {
  if (e.code() == ErrorCode::kInternal) throw;
}


std::string bytes_to_string(const uint8_t* data, size_t size) {
  return size == 0 ? std::string() : std::string(reinterpret_cast<const char*>(data), size);
}

[[noreturn]] void broken(const std::string& what) { throw FuzzInvariantError("invariant broken: " + what); }

// Well-formed UTF-8 as in RFC 3629: no surrogates, no overlong forms, nothing above U+10FFFF.
bool is_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 1;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
    }
    i += len;
  }
  return true;
}

// What the Encoding and decode() promise (tokenizer.hpp, tokenizer_json.hpp).
void check_encoding(const Tokenizer& tok, const Encoding& e, std::string_view text) {
  if (e.tokens.size() != e.ids.size() || e.offsets.size() != e.ids.size())
    broken("encode: " + std::to_string(e.ids.size()) + " ids, " + std::to_string(e.tokens.size()) + " tokens, " +
           std::to_string(e.offsets.size()) + " offsets");
  const int64_t vocab = tok.vocab_size();
  for (size_t i = 0; i < e.ids.size(); ++i) {
    if (e.ids[i] < 0 || e.ids[i] >= vocab)
      broken("encode: id " + std::to_string(e.ids[i]) + " outside the vocabulary of " + std::to_string(vocab));
    if (e.offsets[i].first > e.offsets[i].second || e.offsets[i].second > text.size())
      broken("encode: offsets [" + std::to_string(e.offsets[i].first) + "," + std::to_string(e.offsets[i].second) +
             ") outside the input of " + std::to_string(text.size()) + " bytes");
  }
}

void check_decoded(const std::string& s) {
  if (!is_utf8(s)) broken("decode returned ill-formed UTF-8");
}

void exercise_tokenizer(const Tokenizer& tok, std::string_view text) {
  for (const bool special : {true, false}) {
    try {
      const Encoding e = tok.encode(text, special);
      check_encoding(tok, e, text);
      check_decoded(tok.decode(e.ids, false));
      check_decoded(tok.decode(e.ids, true));
    } catch (const Error& e) {
    rethrow_internal(e);
    }
  }
  try {
    (void)tok.normalize(text);
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  try {
    (void)pre_tokenize(tok, text);
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  (void)tok.token_to_id(text);
  // Ids made of the text's bytes, most of them out of range, and the edges of the range: decode skips
  // ids without a token, id_to_token rejects them with an Error, is_special says false.
  std::vector<int64_t> ids = {-1, 0, tok.vocab_size() - 1, tok.vocab_size(), INT64_MIN, INT64_MAX};
  for (size_t i = 0; i + 2 <= text.size() && ids.size() < 40; i += 2)
    ids.push_back(static_cast<int16_t>(static_cast<uint8_t>(text[i]) | (static_cast<uint8_t>(text[i + 1]) << 8)));
  try {
    check_decoded(tok.decode(ids, false));
    check_decoded(tok.decode(ids, true));
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  for (const int64_t id : ids) {
    try {
      (void)tok.id_to_token(id);
    } catch (const Error& e) {
    rethrow_internal(e);
    }
    (void)tok.is_special(id);
  }
}

// What parse_pair_line promises about a line it accepts (dataset.hpp).
void check_pair(const PairExample& ex, const PairReadOptions& o) {
  const int64_t V = o.vocab_size;
  if (ex.clean_ids.empty() || ex.corrupted_ids.empty()) broken("pair: empty clean or corrupted ids");
  for (const auto* ids : {&ex.clean_ids, &ex.corrupted_ids})
    for (const int64_t id : *ids)
      if (id < 0 || id >= V) broken("pair: id " + std::to_string(id) + " outside [0, " + std::to_string(V) + ")");
  if ((ex.answer_id < 0) != (ex.wrong_id < 0)) broken("pair: answer without wrong or wrong without answer");
  if (ex.answer_id >= V || ex.wrong_id >= V) broken("pair: answer or wrong outside the vocabulary");
  if (ex.answer_id >= 0 && ex.answer_id == ex.wrong_id) broken("pair: answer == wrong");
  if (ex.n_supervised < 0 || ex.n_supervised > static_cast<int64_t>(ex.clean_ids.size()))
    broken("pair: n_supervised " + std::to_string(ex.n_supervised) + " of " + std::to_string(ex.clean_ids.size()));
  if (o.require_answer && ex.answer_id < 0) broken("pair: no answer although required");
  if (o.require_continuation && ex.n_supervised == 0) broken("pair: no continuation although required");
}

// ---- sweep fixture ----

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("fuzz: cannot write " + path.string());
}

// nftw, not std::filesystem::remove_all: the PyPI builds of libtorch 2.x export a broken copy of the
// latter that takes precedence (see tests/test_util.hpp), and this file is linked into the tests.
int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;  // go on past what cannot be removed
}
void remove_tree(const std::string& path) { ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

// A folder the sweep_spec inputs resolve against: checkpoint folders for names and globs, data files,
// an attribute config and a training log. Removed when the process exits normally.
class SweepFixture {
 public:
  SweepFixture() {
    dir_ = fs::temp_directory_path() / ("circuitscope-fuzz-sweep-" + std::to_string(::getpid()));
    remove_tree(dir_.string());
    for (const char* d : {"base", "run/checkpoint-10", "run/checkpoint-20", "run/checkpoint-5-tmp", "other/checkpoint-7",
                          "toy/base/final", "toy/sft/checkpoint-40", "toy/sft/checkpoint-80", "toy/grpo/checkpoint-25",
                          "configs"})
      fs::create_directories(dir_ / d);
    const std::string pairs =
        "{\"clean_ids\": [5, 20, 30], \"corrupted_ids\": [5, 21, 30], \"answer_id\": 40, \"wrong_id\": 43}\n\n"
        "{\"clean_ids\": [5, 22, 30], \"corrupted_ids\": [5, 23, 30], \"answer_id\": 41, \"wrong_id\": 44}\n"
        "{\"clean\": \"1+1=\", \"corrupted\": \"1+2=\", \"answer\": \"2\", \"wrong\": \"3\"}\n";
    const std::string prompts = "{\"prompt\": \"What is 2+2?\"}\n{\"prompt\": \"What is 3+5?\"}\n";
    const std::string log = "{\"step\": 10, \"reward\": 0.25}\n{\"step\": 20, \"reward\": 0.5}\n";
    write_text(dir_ / "pairs.jsonl", pairs);
    write_text(dir_ / "prompts.jsonl", prompts);
    write_text(dir_ / "problems.jsonl", prompts);
    write_text(dir_ / "log.jsonl", log);
    write_text(dir_ / "toy/sft/train_log.jsonl", log);
    write_text(dir_ / "toy/grpo/rewards.jsonl", log);
    write_text(dir_ / "attribute.json", "// attribute options\n{\"top_n\": 20, \"ig_steps\": 2, \"metric\": \"seq-logprob\"}\n");
    // configs/thinking-sparks.json (its comment shortened).
    write_text(dir_ / "configs/thinking-sparks.json",
               "// The Thinking Sparks setting\n{\n  \"method\": \"eap-ig-inputs\",\n  \"ig_steps\": 5,\n"
               "  \"top_n\": 5000,\n  \"simplify\": 0.1\n}\n");
  }
  ~SweepFixture() { remove_tree(dir_.string()); }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_;
};

const std::string& sweep_fixture_dir() {
  static const SweepFixture fixture;
  static const std::string dir = fixture.dir();
  return dir;
}

// A file of this process that the targets whose readers take a path write their input to (tmpfs when
// there is one). Removed when the process exits normally.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& name) {
    const fs::path shm("/dev/shm");
    path_ = ((fs::is_directory(shm) ? shm : fs::temp_directory_path()) /
             ("circuitscope-fuzz-" + std::to_string(::getpid()) + "-" + name))
                .string();
  }
  ~ScratchFile() { ::remove(path_.c_str()); }
  const std::string& write(const uint8_t* data, size_t size) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw std::runtime_error("fuzz: cannot write " + path_);
    return path_;
  }

 private:
  std::string path_;
};

}  // namespace

// ---- the targets ----

int fuzz_safetensors(const uint8_t* data, size_t size) {
  try {
    const TensorStore store =
        TensorStore::from_file(SafetensorsFile::from_bytes(bytes_to_string(data, size), "fuzz.safetensors"));
    for (const std::string& name : store.names()) {
      const TensorInfo& info = store.at(name);
      const at::Tensor t = store.load(name);
      if (t.numel() != info.numel()) broken("safetensors: tensor '" + name + "' loaded with another element count");
      (void)store.load(name, c10::kFloat);  // the model loader's conversion
    }
    (void)store.fingerprint();
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  return 0;
}

int fuzz_config(const uint8_t* data, size_t size) {
  const std::string text = bytes_to_string(data, size);
  try {
    check_json_depth(text, "fuzz config.json");
    json j;
    try {
      j = json::parse(text);
    } catch (const json::exception&) {
      return 0;  // load_config turns any of them into an Error(kFormat)
    }
    const ModelConfig c = parse_config(j, "fuzz");
    (void)config_to_json(c).dump();
    for (int64_t l = 0; l < std::min<int64_t>(c.n_layers, 256); ++l) (void)c.layer_uses_sliding_window(l);
    if (c.arch) (void)c.tensor_name(c.arch->names.q_w, 0);
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  return 0;
}

int fuzz_tokenizer(const uint8_t* data, size_t size) {
  const std::string input = bytes_to_string(data, size);
  const size_t sep = input.find(kTokenizerSeparator);
  const std::string_view all(input);
  const std::string_view head = sep == std::string::npos ? all : all.substr(0, sep);
  const std::string_view text =
      sep == std::string::npos ? std::string_view(kTokenizerDefaultText) : all.substr(sep + std::strlen(kTokenizerSeparator));
  std::unique_ptr<Tokenizer> tok;
  try {
    tok = tokenizer_from_json(head, "fuzz tokenizer.json");
  } catch (const Error& e) {
    rethrow_internal(e);
    return 0;
  }
  exercise_tokenizer(*tok, text);
  return 0;
}

namespace {
ordered_json fuzz_chat_context() {
  TokenizerConfig config;
  config.bos_token = "<|begin_of_text|>";
  config.eos_token = "<|im_end|>";
  config.pad_token = "<|endoftext|>";
  config.additional_special_tokens = {"<think>", "</think>"};
  const ordered_json messages = ordered_json::parse(R"([
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What is 17 * 3? Use the calculator."},
    {"role": "assistant", "content": "", "reasoning_content": "17 * 3 = 51, but check.",
     "tool_calls": [{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "17*3"}}}]},
    {"role": "tool", "name": "calculator", "content": "51"},
    {"role": "assistant", "content": "<think>\nIt is 51.\n</think>\n\n17 * 3 = 51."},
    {"role": "user", "content": "Thanks! And 2+2?"}
  ])");
  const ordered_json extra = {
      {"tools", ordered_json::parse(R"([{"type": "function", "function": {"name": "calculator",
        "description": "Evaluates an arithmetic expression.", "parameters": {"type": "object",
        "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}])")}};
  return chat_template_context(config, messages, /*add_generation_prompt=*/true, /*enable_thinking=*/true, &extra);
}
}  // namespace

int fuzz_chat_template(const uint8_t* data, size_t size) {
  static const ordered_json context = fuzz_chat_context();
  std::optional<JinjaTemplate> tpl;
  try {
    tpl.emplace(bytes_to_string(data, size), "fuzz.jinja");
  } catch (const Error& e) {
    rethrow_internal(e);
    return 0;
  }
  try {
    (void)tpl->render(context);
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  return 0;
}

int fuzz_dataset_line(const uint8_t* data, size_t size) {
  static const std::unique_ptr<Tokenizer> tok = load_tokenizer_json(CS_FUZZ_TOKENIZER_PATH);
  const std::string line = bytes_to_string(data, size);
  PairReadOptions token_form;
  token_form.vocab_size = 1000;
  token_form.require_answer = false;
  PairReadOptions text_form = token_form;
  text_form.tokenizer = tok.get();
  PairReadOptions chat_form = text_form;  // as attribute --chat --metric seq-logprob reads it
  chat_form.require_continuation = true;
  chat_form.render_prompt = [](const std::string& s) {
    return "<|begin_of_text|>user\n" + s + "<|end_of_text|>\nassistant\n";
  };
  for (const PairReadOptions* o : {&token_form, &text_form, &chat_form}) {
    try {
      check_pair(parse_pair_line(line, *o), *o);
    } catch (const Error& e) {
    rethrow_internal(e);
    }
  }
  return 0;
}

int fuzz_report(const uint8_t* data, size_t size) {
  // Through a file: the commands read reports with their own readers, whose error handling is part of
  // what is tested.
  static ScratchFile scratch("report.json");
  const std::string& path = scratch.write(data, size);
  std::vector<HtmlSection> sections;
  // compare: the heads of a report, a comparison with itself, its JSON and text; the JSON goes through
  // a file (dump, parse) to `report`, which draws it.
  try {
    const ReportHeads heads = read_report_heads(path);
    const CircuitComparison c = compare_circuits(heads, heads);
    const std::string written = comparison_to_json(c).dump(1);
    (void)format_comparison(c);
    sections.push_back(compare_section(json::parse(written), "compare.json", "cmp"));
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  // evaluate and graph: the graph and edges, the metric.
  json j;
  try {
    j = read_json_file(path);
  } catch (const Error& e) {
    rethrow_internal(e);
    return 0;
  }
  try {
    (void)report_edges(j, path);
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  try {
    (void)report_metric(j, path);
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  // report: the section the command picks for the file, and both builders on any JSON (they must
  // cope with anything that has the keys they are picked by).
  try {
    sections.push_back(section_for_input(path, "s1"));
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  try {
    sections.push_back(report_section(j, path, "r1", /*max_graph_edges=*/40));
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  try {
    sections.push_back(compare_section(j, path, "c1"));
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  try {
    (void)html_page(sections, "fuzz");
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  return 0;
}

int fuzz_sweep_spec(const uint8_t* data, size_t size) {
  // SWEEP.json in the fixture folder, read by read_sweep_spec as `sweep plan` reads it (comments
  // allowed, paths relative to the file's folder).
  const std::string path = sweep_fixture_dir() + "/SWEEP.json";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw std::runtime_error("fuzz: cannot write " + path);
  }
  try {
    json resolved;
    const sweep::SweepSpec spec = sweep::read_sweep_spec(path, basic_attribute_parser, &resolved);
    // `sweep plan` writes `resolved` as DIR/sweep.json, which `run`, `status` and `merge` read back.
    const std::string written = resolved.dump(1);
    (void)sweep::parse_sweep_spec(json::parse(written), "sweep.json", sweep_fixture_dir(), basic_attribute_parser);
    const sweep::Plan plan = sweep::make_plan(spec);
    for (const sweep::Unit& u : plan.units) (void)u.id();
  } catch (const Error& e) {
    rethrow_internal(e);
  }
  return 0;
}

// ---- the sweep's attribute parser ----

namespace {
std::string key_name(std::string k) {
  std::replace(k.begin(), k.end(), '-', '_');
  return k;
}
}  // namespace

sweep::AttributeBlock basic_attribute_parser(const json& options, const std::string& origin) {
  if (!options.is_object()) throw Error(ErrorCode::kFormat, origin + ": expected an object of option values");
  sweep::AttributeBlock b;
  AttributeSpec& s = b.spec;
  std::optional<int64_t> top_n, greedy;
  std::optional<double> threshold, simplify;
  std::string selection, level = "edge";
  bool signed_scores = false;
  for (const auto& item : options.items()) {
    const std::string& key = item.key();
    const json& v = item.value();  // not a structured binding: lambdas below capture it
    const std::string k = key_name(key);
    const std::string where = origin + ": key '" + key + "'";
    auto str = [&]() -> std::string {
      if (!v.is_string()) throw Error(ErrorCode::kFormat, where + " must be a string; found " + v.dump());
      return v.get<std::string>();
    };
    auto integer = [&](int64_t min, int64_t max) -> int64_t {
      if (!v.is_number_integer() || v.get<int64_t>() < min || v.get<int64_t>() > max ||
          (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(max)))
        throw Error(ErrorCode::kUsage, where + " must be an integer in [" + std::to_string(min) + ", " +
                                           std::to_string(max) + "]; found " + v.dump());
      return v.get<int64_t>();
    };
    auto number = [&]() -> double {
      if (!v.is_number()) throw Error(ErrorCode::kFormat, where + " must be a number; found " + v.dump());
      return v.get<double>();
    };
    auto flag = [&]() -> bool {
      if (!v.is_boolean()) throw Error(ErrorCode::kFormat, where + " is a flag: expected true or false; found " + v.dump());
      return v.get<bool>();
    };
    if (k == "method") s.method = parse_attribution_method(str());
    else if (k == "metric") s.metric = parse_metric(str());
    else if (k == "kv_edges") s.kv_edges = parse_kv_edges(str());
    else if (k == "ig_steps") s.ig_steps = static_cast<int>(integer(INT32_MIN, INT32_MAX));
    else if (k == "batch_size") s.batch_size = integer(INT64_MIN, INT64_MAX);
    else if (k == "loss") s.loss = flag();
    else if (k == "top_n") top_n = integer(0, INT64_MAX);
    else if (k == "greedy") greedy = integer(0, INT64_MAX);
    else if (k == "threshold") threshold = number();
    else if (k == "simplify") simplify = number();
    else if (k == "selection") selection = str();
    else if (k == "signed") signed_scores = flag();
    else if (k == "level") level = str();
    else if (k == "intervention") s.faithfulness.intervention = parse_intervention(str());
    else if (k == "mean_source") s.faithfulness.mean_source = parse_mean_source(str());
    else if (k == "sizes") {
      if (!v.is_array()) throw Error(ErrorCode::kFormat, where + " must be a list of sizes; found " + v.dump());
      for (const json& n : v) {
        if (!n.is_number_integer() || n.get<int64_t>() < 0)
          throw Error(ErrorCode::kUsage, where + ": sizes must be integers >= 0; found " + n.dump());
        s.faithfulness.sizes.push_back(n.get<int64_t>());
      }
    } else if (k == "skip_bad") b.data.skip_bad = flag();
    else if (k == "chat") b.data.chat = flag();
    else if (k == "tokenizer") b.data.tokenizer = str();
    else if (k == "system") b.data.system = str();
    else if (k == "think") {
      b.data.think = str();
      if (b.data.think != "on" && b.data.think != "off") throw Error(ErrorCode::kUsage, where + ": expected on or off");
    } else if (k == "dtype") {
      b.dtype = str();
      if (b.dtype != "f32" && b.dtype != "bf16") throw Error(ErrorCode::kUsage, where + ": expected f32 or bf16");
    } else if (k == "device") b.device = str();
    else throw Error(ErrorCode::kUsage, origin + ": unknown key '" + key + "' (not an option of 'attribute')");
  }
  // The selection, as the CLI's circuit options make it.
  if (!selection.empty()) {
    if (selection != "thinking-sparks") throw Error(ErrorCode::kUsage, origin + ": selection: expected thinking-sparks");
    if (!top_n) top_n = 5000;
    if (!simplify) simplify = 0.1;
  }
  if (level != "edge" && level != "node") throw Error(ErrorCode::kUsage, origin + ": level: expected edge or node");
  if (int(top_n.has_value()) + int(threshold.has_value()) + int(greedy.has_value()) > 1)
    throw Error(ErrorCode::kUsage, origin + ": top_n, threshold and greedy exclude each other");
  Selection& sel = s.selection;
  sel.absolute = !signed_scores;
  sel.node_level = level == "node";
  s.faithfulness.absolute = !signed_scores;
  if (simplify) {
    if (!top_n) throw Error(ErrorCode::kUsage, origin + ": simplify needs top_n");
    sel.kind = SelectionKind::kSimplify;
    sel.n = *top_n;
    sel.tau = *simplify;
  } else if (top_n) {
    sel.kind = SelectionKind::kTopN;
    sel.n = *top_n;
  } else if (threshold) {
    sel.kind = SelectionKind::kThreshold;
    sel.tau = *threshold;
  } else if (greedy) {
    sel.kind = SelectionKind::kGreedy;
    sel.n = *greedy;
  }
  s.validate();
  return b;
}

// ---- registry and settings ----

const std::vector<FuzzTarget>& fuzz_targets() {
  static const std::vector<FuzzTarget> targets = {
      {"safetensors", fuzz_safetensors}, {"config", fuzz_config},   {"tokenizer", fuzz_tokenizer},
      {"chat_template", fuzz_chat_template}, {"dataset_line", fuzz_dataset_line}, {"report", fuzz_report},
      {"sweep_spec", fuzz_sweep_spec},
  };
  return targets;
}

const FuzzTarget* find_fuzz_target(const std::string& name) {
  for (const FuzzTarget& t : fuzz_targets())
    if (name == t.name) return &t;
  return nullptr;
}

void fuzz_init() {
  spdlog::set_level(spdlog::level::off);
  at::set_num_threads(1);
}

}  // namespace circuitscope
