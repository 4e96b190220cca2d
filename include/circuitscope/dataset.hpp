// Clean/corrupted prompt pairs for attribution, read from JSONL (token form, one pair a line):
//   {"clean_ids": [...], "corrupted_ids": [...], "answer_id": 17, "wrong_id": 42}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace circuitscope {

struct PairExample {
  std::vector<int64_t> clean_ids;
  std::vector<int64_t> corrupted_ids;
  int64_t answer_id = -1;  // -1 when the line has none (allowed only when not required)
  int64_t wrong_id = -1;
  int64_t line = 0;        // 1-based line in the file
};

struct PairDataset {
  std::string path;
  std::vector<PairExample> examples;
  int64_t skipped = 0;  // bad lines skipped (skip_bad)
};

struct PairReadOptions {
  int64_t vocab_size = 0;       // ids must lie in [0, vocab_size)
  bool require_answer = true;   // answer_id and wrong_id required (logit-diff, prob-diff)
  bool skip_bad = false;        // skip and count bad lines instead of stopping at the first
};

// Blank lines are ignored. A bad line throws Error(kInput) "PATH:LINE: reason" unless skip_bad.
// Clean and corrupted must have equal lengths (the same positions are compared); pairs may differ
// in length from each other and are left-padded when batched.
PairDataset read_pairs_jsonl(const std::string& path, const PairReadOptions& opts);

}  // namespace circuitscope
