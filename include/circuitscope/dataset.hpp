// Clean/corrupted prompt pairs for attribution, read from JSONL (one pair a line).
//
// Token form:
//   {"clean_ids": [...], "corrupted_ids": [...], "answer_id": 17, "wrong_id": 42}
//   (for the sequence metrics also "clean_continuation_ids" / "corrupted_continuation_ids")
// Text form (tokenized with PairReadOptions::tokenizer):
//   {"clean": "...", "corrupted": "...", "answer": "92", "wrong": "95"}
//   {"clean": "...", "corrupted": "...", "clean_continuation": "...", "corrupted_continuation": "..."}
//   clean/corrupted are encoded with the tokenizer's special tokens (e.g. BOS), or, when
//   render_prompt is set (--chat), rendered by it and encoded without them (the rendered text
//   spells its own special tokens). answer/wrong are the FIRST token of the text encoded without
//   special tokens; continuations are encoded without special tokens and appended to the prompt.
// Other keys (e.g. "id", "problem") are ignored.
//
// Alignment: clean and corrupted may differ in length. Both are aligned from the start (token t of
// one faces token t of the other) and right-padded when batched; each run keeps its own attention
// mask, and every metric is read at the clean example's positions in every run (the last clean
// token for logit-diff/prob-diff/kl; the positions that predict the clean continuation for
// seq-logprob/seq-kl), as the EAP-IG reference does (it pads both and reads the corrupted logits at
// the clean input lengths). Where the corrupted side is shorter, such a position is a pad of the
// corrupted run (id 0, at position id len-1, attending to the real corrupted tokens only); the
// reference instead runs the corrupted tokens under the clean mask, so its pads are attended.
// Tokens past the clean length never matter: the causal mask hides them from the clean positions.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace circuitscope {

class Tokenizer;

struct PairExample {
  std::vector<int64_t> clean_ids;      // prompt, then the clean continuation (if any)
  std::vector<int64_t> corrupted_ids;  // prompt, then the corrupted continuation (if any)
  int64_t answer_id = -1;  // -1 when the line has none (allowed only when not required)
  int64_t wrong_id = -1;
  // The last n_supervised tokens of clean_ids are the clean continuation: the sequence metrics
  // score them, each predicted from the position before it. 0 when the line has no continuation.
  int64_t n_supervised = 0;
  int64_t line = 0;  // 1-based line in the file
};

struct PairDataset {
  std::string path;
  std::string sha256;  // lowercase hex SHA-256 of the file's bytes
  std::vector<PairExample> examples;
  int64_t skipped = 0;  // bad lines skipped (skip_bad)
};

struct PairReadOptions {
  int64_t vocab_size = 0;              // ids must lie in [0, vocab_size)
  bool require_answer = true;          // answer and wrong required (logit-diff, prob-diff)
  bool require_continuation = false;   // continuations required (seq-logprob, seq-kl)
  bool skip_bad = false;               // skip and count bad lines instead of stopping at the first
  const Tokenizer* tokenizer = nullptr;  // needed by text-form lines
  // When set, clean/corrupted texts are passed through it (e.g. a chat template) and the result is
  // encoded without special tokens.
  std::function<std::string(const std::string&)> render_prompt;
  // A file without a usable pair gives an empty dataset instead of an error (a sweep's chunk whose
  // openings were all identical).
  bool allow_empty = false;
};

// Blank lines are ignored. A bad line throws Error(kInput) "PATH:LINE: reason" unless skip_bad;
// a line longer than 16 MiB is bad ("line is N bytes; the limit is 16 MiB") and is not parsed.
PairDataset read_pairs_jsonl(const std::string& path, const PairReadOptions& opts);

// One non-blank line of such a file (what read_pairs_jsonl does per line; `line` is left 0).
// Throws Error(kInput) with the reason, without PATH:LINE; the tokenizer's and render_prompt's own
// errors pass through as they are.
PairExample parse_pair_line(const std::string& line, const PairReadOptions& opts);

}  // namespace circuitscope

namespace circuitscope {
struct ModelConfig;
enum class MetricKind;

// Where a model's pairs come from and how text-form lines are tokenized (attribute's --data,
// --skip-bad, --tokenizer, --chat, --think, --system).
struct PairSource {
  std::string path;       // JSONL pairs
  bool skip_bad = false;
  std::string tokenizer;  // folder or tokenizer file for text-form lines; "" : the model folder
  bool chat = false;      // render clean/corrupted as user messages through the chat template
  std::string think;      // "", "on" or "off": enable_thinking for the chat template (chat only)
  std::string system;     // system message (chat only)
  bool allow_empty = false;  // see PairReadOptions
};

// Reads the pairs for a model: ids checked against its vocabulary; answer/wrong or continuations
// required when `metric` needs them; text-form lines need a tokenizer (source.tokenizer, else the
// model folder's). Throws Error(kUsage) when think/system are given without chat.
PairDataset load_pair_dataset(const PairSource& source, const std::string& model_dir, const ModelConfig& config,
                              MetricKind metric);
}  // namespace circuitscope
