#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/hf_regex.hpp"

#include <pcre2.h>

#include "circuitscope/error.hpp"
#include "tokenizer/hf_json.hpp"
#include "tokenizer/hf_unicode.hpp"

namespace circuitscope::hf {

namespace {

constexpr const char* kWhiteSpaceSet =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

// A regex from a tokenizer.json may backtrack catastrophically ((a+)+$): each match attempt is
// capped, so it fails with an error instead of running for hours. Real pre-tokenizer patterns need
// a few steps per byte.
constexpr uint32_t kMatchLimit = 10'000'000;        // backtracking steps per attempt
constexpr uint32_t kDepthLimit = 1'000'000;         // nested backtracking frames (interpreter)
constexpr PCRE2_SIZE kHeapLimitKib = 256 * 1024;    // backtracking memory (interpreter)

// Per-thread match state: the JIT stack cannot be shared between threads.
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_match_context* interp_context = nullptr;  // the same limits, no JIT stack
  pcre2_jit_stack* stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(16, nullptr);
    context = pcre2_match_context_create(nullptr);
    interp_context = pcre2_match_context_create(nullptr);
    for (pcre2_match_context* c : {context, interp_context}) {
      if (!c) continue;
      pcre2_set_match_limit(c, kMatchLimit);
      pcre2_set_depth_limit(c, kDepthLimit);
      pcre2_set_heap_limit(c, kHeapLimitKib);
    }
    // Patterns like \s+(?!\S) backtrack over whole whitespace runs; the default 32 KiB JIT stack is
    // too small for long runs.
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (stack && context) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchState() {
    if (data) pcre2_match_data_free(data);
    if (context) pcre2_match_context_free(context);
    if (interp_context) pcre2_match_context_free(interp_context);
    if (stack) pcre2_jit_stack_free(stack);
  }
};

MatchState& match_state() {
  thread_local MatchState s;
  return s;
}

}  // namespace

std::string rewrite_whitespace_escapes(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  size_t i = 0, n = p.size();
  while (i < n) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char d = p[i + 1];
      if (d == 'Q') {  // quoted literal up to \E
        size_t e = p.find("\\E", i + 2);
        size_t stop = e == std::string::npos ? n : e + 2;
        out.append(p, i, stop - i);
        i = stop;
        continue;
      }
      if (d == 's') {
        out += in_class ? std::string(kWhiteSpaceSet) : "[" + std::string(kWhiteSpaceSet) + "]";
        i += 2;
        continue;
      }
      if (d == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceSet) + "]";
        i += 2;
        continue;
      }
      out += c;
      out += d;
      i += 2;
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < n && p[i + 1] == ':') {  // POSIX class [:name:]
        size_t e = p.find(":]", i + 2);
        size_t stop = e == std::string::npos ? n : e + 2;
        out.append(p, i, stop - i);
        i = stop;
        continue;
      }
      if (c == ']') in_class = false;
      out += c;
      ++i;
      continue;
    }
    out += c;
    ++i;
    if (c == '[') {
      in_class = true;
      if (i < n && p[i] == '^') out += p[i++];
      if (i < n && p[i] == ']') out += p[i++];  // a leading ']' is literal
    }
  }
  return out;
}

Regex::Regex(const std::string& pattern, const std::string& path) : pattern_(pattern) {
  std::string rewritten = rewrite_whitespace_escapes(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // Oniguruma's Ruby syntax treats ^ and $ as line anchors, hence MULTILINE.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &err_off, nullptr);
  if (!code) {
    throw Error(ErrorCode::kFormat, "at " + path + ": regex '" + pattern + "' does not compile: " + pcre2_message(err) +
                                        " (offset " + std::to_string(err_off) + " of the rewritten pattern)");
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  MatchState& st = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t n = s.size(), start = 0;
  while (start <= n) {
    int rc = pcre2_match(code, subject, n, start, PCRE2_NO_UTF_CHECK, st.data, st.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // fall back to the interpreter, which uses the heap
      rc = pcre2_match(code, subject, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, st.data, st.interp_context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw Error(ErrorCode::kInput, "regex '" + pattern_ + "' failed on a text of " + std::to_string(n) +
                                         " bytes: " + pcre2_message(rc));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
    size_t b = ov[0], e = ov[1];
    out.emplace_back(b, e);
    if (e > b) {
      start = e;
    } else {  // empty match: step over one character
      if (b >= n) break;
      start = b + utf8_seq_len(static_cast<unsigned char>(s[b]));
    }
  }
}

Pattern::Pattern(const json& j, const std::string& path) {
  require_object(j, path);
  if (const json* s = optional_member(j, "String")) {
    if (!s->is_string()) format_error(path + ".String", "expected a string");
    literal_ = s->get<std::string>();
  } else if (const json* r = optional_member(j, "Regex")) {
    if (!r->is_string()) format_error(path + ".Regex", "expected a string");
    regex_ = std::make_unique<Regex>(r->get<std::string>(), path + ".Regex");
  } else {
    format_error(path, "expected a pattern object with a 'String' or 'Regex' key");
  }
}

void Pattern::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  if (regex_) {
    regex_->find_all(s, out);
    return;
  }
  if (literal_.empty()) return;  // Hugging Face: an empty literal matches nothing
  size_t pos = 0;
  while ((pos = s.find(literal_, pos)) != std::string_view::npos) {
    out.emplace_back(pos, pos + literal_.size());
    pos += literal_.size();
  }
}

}  // namespace circuitscope::hf
