#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

#include "circuitscope/error.hpp"
#include "circuitscope/runtime.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "toy_internal.hpp"

namespace circuitscope::toy::detail {

ChatTokenizer ChatTokenizer::load(const std::string& dir) {
  ChatTokenizer t;
  t.tokenizer = load_tokenizer(dir);
  t.config = load_tokenizer_config(dir);
  if (!t.config.chat_template) throw Error(ErrorCode::kConfig, "'" + dir + "' has no chat template; toy checkpoints need one");
  const std::string pad = t.config.pad_token.value_or(kEndOfText);
  auto id = t.tokenizer->token_to_id(pad);
  if (!id) throw Error(ErrorCode::kFormat, "'" + dir + "': pad token '" + pad + "' is not in the vocabulary");
  t.pad_id = *id;
  return t;
}

std::vector<int64_t> ChatTokenizer::prompt_ids(const ArithProblem& p, bool think) const {
  ChatMessage m;
  m.role = "user";
  m.content = user_message(p);
  return text_ids(apply_chat_template(config, {m}, /*add_generation_prompt=*/true, think));
}

std::vector<int64_t> ChatTokenizer::text_ids(const std::string& text) const {
  return tokenizer->encode(text, /*add_special_tokens=*/false).ids;
}

Progress::Progress(std::string label, int64_t total, int64_t start, bool enabled)
    : label_(std::move(label)), total_(total), start_(start), enabled_(enabled), tty_(isatty(2) != 0),
      t0_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t done, const std::string& info) {
  if (!enabled_ || total_ <= 0) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const int64_t run = done - start_;
  const double eta = run > 0 ? elapsed / static_cast<double>(run) * static_cast<double>(total_ - done) : 0.0;
  const int64_t pct = done * 100 / total_;
  char line[256];
  std::snprintf(line, sizeof line, "[%s] %lld/%lld %3lld%% %s | %s elapsed, ETA %s", label_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), static_cast<long long>(pct), info.c_str(),
                format_duration(elapsed).c_str(), format_duration(eta).c_str());
  if (tty_) {
    std::fprintf(stderr, "\r%-100s", line);
    std::fflush(stderr);
    drawn_ = true;
  } else if (pct / 10 != last_decile_ || done == total_) {
    last_decile_ = pct / 10;
    spdlog::info("{}", line);
  }
}

void Progress::finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace circuitscope::toy::detail
