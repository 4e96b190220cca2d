// Shared pieces of the toy lab's sources (not a public header).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/tokenizer.hpp"
#include "circuitscope/toy.hpp"

namespace circuitscope::toy::detail {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A checkpoint's tokenizer and chat template.
struct ChatTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  TokenizerConfig config;
  int64_t pad_id = 0;
  static ChatTokenizer load(const std::string& dir);
  // The rendered generation prompt for a problem, tokenized (its special tokens are spelled in the text).
  std::vector<int64_t> prompt_ids(const ArithProblem& p, bool think) const;
  std::vector<int64_t> text_ids(const std::string& text) const;
};

// A progress line on stderr with ETA: redrawn with \r on a terminal, else one line per 10%.
class Progress {
 public:
  Progress(std::string label, int64_t total, int64_t start, bool enabled);
  void update(int64_t done, const std::string& info);
  void finish();

 private:
  std::string label_;
  int64_t total_, start_;
  bool enabled_, tty_;
  int64_t last_decile_ = -1;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point t0_;
};


}  // namespace circuitscope::toy::detail
