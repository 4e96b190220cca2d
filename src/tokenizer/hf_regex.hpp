// PCRE2 wrapper for the regexes in tokenizer.json (written for Oniguruma, which the Rust tokenizers use).
#pragma once
#include <cstddef>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace circuitscope::hf {

class Regex {
 public:
  // Compiles with UTF and Unicode properties (and JIT when the library has it). `path` names the
  // pattern's place in tokenizer.json for the error message of a pattern PCRE2 rejects (kFormat).
  Regex(const std::string& pattern, const std::string& path);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin,end) byte ranges of the successive non-overlapping matches in `s`, which must be
  // valid UTF-8 (not re-checked).
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8
  bool jit_ = false;
};

// A Split/Replace pattern of tokenizer.json: {"String": literal} or {"Regex": pattern}.
class Pattern {
 public:
  Pattern(const nlohmann::json& j, const std::string& path);
  // Non-overlapping matches, left to right.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
};

// Oniguruma's \s is Unicode White_Space; PCRE2's \s with UCP differs on a few code points (U+180E).
// Rewrites \s and \S (outside classes) and \s (inside classes) into explicit White_Space sets.
std::string rewrite_whitespace_escapes(const std::string& pattern);

}  // namespace circuitscope::hf
