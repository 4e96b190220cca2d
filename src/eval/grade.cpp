// Answer extraction and comparison; docs/grading.md is the specification of every rule here.
#include "circuitscope/grade.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"

namespace circuitscope {
// Unity builds put other areas' files in this translation unit: the helpers get their own namespace.
namespace grade_impl {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string trim_ws(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

bool starts_with(const std::string& s, size_t pos, const char* lit) { return s.compare(pos, std::char_traits<char>::length(lit), lit) == 0; }
bool ends_with(const std::string& s, const char* lit) {
  const size_t n = std::char_traits<char>::length(lit);
  return s.size() >= n && s.compare(s.size() - n, n, lit) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

// One pair of $$..$$, $..$, \(..\) or \[..\] around the whole (trimmed) text.
std::string strip_delimiters(const std::string& in) {
  std::string s = trim_ws(in);
  const auto wrapped = [&](const char* open, const char* close) {
    const size_t a = std::char_traits<char>::length(open), b = std::char_traits<char>::length(close);
    return s.size() >= a + b && starts_with(s, 0, open) && ends_with(s, close);
  };
  if (wrapped("$$", "$$")) return trim_ws(s.substr(2, s.size() - 4));
  if (wrapped("$", "$")) return trim_ws(s.substr(1, s.size() - 2));
  if (wrapped("\\(", "\\)") || wrapped("\\[", "\\]")) return trim_ws(s.substr(2, s.size() - 4));
  return s;
}

// Index one past the brace matching the '{' at `open`, or npos when it never closes.
size_t match_brace(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i + 1;
  }
  return std::string::npos;
}

// Length of the number starting at `pos` (docs/grading.md, "Last number"), 0 when none. The sign
// is taken only when allowed by the caller.
size_t match_number(const std::string& s, size_t pos, bool allow_sign) {
  size_t i = pos;
  if (allow_sign && i < s.size() && s[i] == '-') ++i;
  const size_t body = i;
  size_t run = 0;
  while (i + run < s.size() && is_digit(s[i + run])) ++run;
  if (run == 0) {
    // bare decimal ".5"
    if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
      i += 1;
      while (i < s.size() && is_digit(s[i])) ++i;
      return i - pos;
    }
    return 0;
  }
  i += run;
  if (run <= 3) {  // thousands groups: ",ddd" each followed by a non-digit
    size_t j = i;
    while (j + 3 < s.size() + 0 && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3]) &&
           (j + 4 >= s.size() || !is_digit(s[j + 4])))
      j += 4;
    i = j;
  }
  if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i + 1 < s.size() && s[i] == '/' && is_digit(s[i + 1])) {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  if (i < s.size() && s[i] == '%') ++i;
  (void)body;
  return i - pos;
}

std::optional<std::string> last_number(const std::string& s) {
  std::optional<std::string> found;
  size_t i = 0;
  while (i < s.size()) {
    const char prev = i > 0 ? s[i - 1] : ' ';
    const bool sign_ok = s[i] == '-' && !(is_digit(prev) || is_alpha(prev) || prev == ')');
    size_t n = 0;
    if (sign_ok) n = match_number(s, i, true);
    if (n == 0 && (is_digit(s[i]) || s[i] == '.')) n = match_number(s, i, false);
    if (n > 0) {
      found = s.substr(i, n);
      i += n;
    } else {
      ++i;
    }
  }
  return found;
}

struct Box {
  bool found = false;
  std::optional<std::string> content;  // nullopt: empty or unbalanced
};

Box last_box(const std::string& s) {
  Box box;
  size_t best = std::string::npos;
  for (const char* cmd : {"\\boxed", "\\fbox"}) {
    for (size_t p = s.find(cmd); p != std::string::npos; p = s.find(cmd, p + 1))
      if (best == std::string::npos || p > best) best = p;
  }
  if (best == std::string::npos) return box;
  box.found = true;
  size_t i = best + (starts_with(s, best, "\\boxed") ? 6 : 5);
  if (i < s.size() && s[i] == '{') {
    const size_t end = match_brace(s, i);
    if (end == std::string::npos) return box;
    const std::string c = trim_ws(s.substr(i + 1, end - i - 2));
    if (!c.empty()) box.content = strip_delimiters(c);
    return box;
  }
  if (i < s.size() && s[i] == ' ') {
    ++i;
    size_t e = i;
    while (e < s.size() && !is_space(s[e])) ++e;
    if (e > i) box.content = strip_delimiters(s.substr(i, e - i));
  }
  return box;
}

// Positions just after every "answer is" / "answer:" (case-insensitive), in order.
std::vector<size_t> answer_phrase_ends(const std::string& s) {
  const std::string l = lower(s);
  std::vector<size_t> out;
  for (const char* phrase : {"answer is", "answer:"})
    for (size_t p = l.find(phrase); p != std::string::npos; p = l.find(phrase, p + 1))
      out.push_back(p + std::char_traits<char>::length(phrase));
  std::sort(out.begin(), out.end());
  return out;
}

// Skips spaces, ':' and '*' after the phrase (and, for math, the words "that" / "therefore").
size_t skip_answer_lead(const std::string& s, size_t i, bool skip_words) {
  while (true) {
    while (i < s.size() && (is_space(s[i]) || s[i] == ':' || s[i] == '*')) ++i;
    if (!skip_words) return i;
    bool skipped = false;
    for (const char* w : {"that", "therefore"}) {
      const size_t n = std::char_traits<char>::length(w);
      if (lower(s.substr(i, n)) == w && (i + n >= s.size() || !is_alpha(s[i + n]))) {
        i += n;
        skipped = true;
        break;
      }
    }
    if (!skipped) return i;
  }
}

std::string rest_of_line(const std::string& s, size_t i) {
  const size_t e = s.find('\n', i);
  std::string line = trim_ws(s.substr(i, e == std::string::npos ? std::string::npos : e - i));
  if (!line.empty() && line.back() == '.') line = trim_ws(line.substr(0, line.size() - 1));
  return line;
}

std::optional<std::string> math_after_phrase(const std::string& s, size_t at) {
  size_t i = skip_answer_lead(s, at, /*skip_words=*/true);
  if (i >= s.size()) return std::nullopt;
  for (const auto& [open, close] : {std::pair<const char*, const char*>{"$$", "$$"}, {"$", "$"}, {"\\(", "\\)"}, {"\\[", "\\]"}}) {
    if (!starts_with(s, i, open)) continue;
    const size_t a = i + std::char_traits<char>::length(open);
    const size_t e = s.find(close, a);
    std::string inner = e == std::string::npos ? rest_of_line(s, a) : trim_ws(s.substr(a, e - a));
    if (inner.empty()) return std::nullopt;
    return inner;
  }
  if (const size_t n = match_number(s, i, true); n > 0) return s.substr(i, n);
  std::string line = strip_delimiters(rest_of_line(s, i));
  if (line.empty()) return std::nullopt;
  return line;
}

// Text-style commands whose group is dropped (units) or unwrapped (the whole answer).
constexpr const char* kTextCommands[] = {"\\textbf", "\\text", "\\mathrm", "\\mbox"};

std::string unwrap_or_drop_text_groups(std::string s) {
  for (bool changed = true; changed;) {
    changed = false;
    for (const char* cmd : kTextCommands) {
      const size_t p = s.find(std::string(cmd) + "{");
      if (p == std::string::npos) continue;
      const size_t open = p + std::char_traits<char>::length(cmd);
      const size_t end = match_brace(s, open);
      if (end == std::string::npos) continue;
      const std::string inner = s.substr(open + 1, end - open - 2);
      const std::string rest = trim_ws(s.substr(0, p) + s.substr(end));
      s = rest.empty() ? trim_ws(inner) : s.substr(0, p) + s.substr(end);
      changed = true;
      break;
    }
  }
  return s;
}

// "\frac12" -> "\frac{1}{2}", "\sqrt2" -> "\sqrt{2}": single-character arguments get braces.
std::string brace_short_arguments(const std::string& s) {
  std::string out;
  size_t i = 0;
  const auto take_arg = [&](size_t& j) -> std::string {
    if (j >= s.size()) return "";
    if (s[j] == '{') {
      const size_t e = match_brace(s, j);
      if (e == std::string::npos) {
        std::string r = s.substr(j);
        j = s.size();
        return r;
      }
      std::string r = s.substr(j, e - j);
      j = e;
      return r;
    }
    if (s[j] == '\\' || is_space(s[j])) return "";
    return std::string("{") + s[j++] + "}";
  };
  while (i < s.size()) {
    if (starts_with(s, i, "\\frac") && !(i + 5 < s.size() && is_alpha(s[i + 5]))) {
      size_t j = i + 5;
      const std::string a = take_arg(j);
      const std::string b = a.empty() ? "" : take_arg(j);
      out += "\\frac" + a + b;
      i = j;
      continue;
    }
    if (starts_with(s, i, "\\sqrt") && !(i + 5 < s.size() && is_alpha(s[i + 5]))) {
      size_t j = i + 5;
      out += "\\sqrt" + (j < s.size() && s[j] == '[' ? std::string() : take_arg(j));
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out;
}

std::string remove_thousands_commas(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (is_digit(s[i]) && (i == 0 || !is_digit(s[i - 1]))) {
      const size_t n = match_number(s, i, false);
      std::string num = s.substr(i, n);
      // Only the integer part can hold group commas (match_number reads them only as groups).
      num.erase(std::remove(num.begin(), num.end(), ','), num.end());
      out += num;
      i += n;
      continue;
    }
    out += s[i++];
  }
  return out;
}

std::optional<double> parse_plain_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  size_t i = 0;
  if (s[0] == '-') i = 1;
  bool digits = false, dot = false;
  for (size_t k = i; k < s.size(); ++k) {
    if (is_digit(s[k])) digits = true;
    else if (s[k] == '.' && !dot) dot = true;
    else return std::nullopt;
  }
  if (!digits) return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}

bool letter_in_range(char c, size_t n_choices) {
  const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const size_t n = n_choices == 0 ? 26 : std::min<size_t>(n_choices, 26);
  return u >= 'A' && u < static_cast<char>('A' + n);
}

std::string upper_letter(char c) { return std::string(1, static_cast<char>(std::toupper(static_cast<unsigned char>(c)))); }

std::optional<std::string> choice_by_text(const std::string& text, const std::vector<std::string>& choices) {
  const std::string t = lower(trim_ws(text));
  for (size_t k = 0; k < choices.size() && k < 26; ++k)
    if (!t.empty() && lower(trim_ws(choices[k])) == t) return std::string(1, static_cast<char>('A' + k));
  return std::nullopt;
}

std::optional<std::string> extract_choice(const std::string& s, const std::vector<std::string>& choices) {
  const size_t n = choices.size();
  if (const Box box = last_box(s); box.found) {
    if (!box.content) return std::nullopt;
    const std::string unwrapped = unwrap_or_drop_text_groups(*box.content);
    std::string c;
    for (char ch : unwrapped)
      if (ch != '(' && ch != ')' && !is_space(ch)) c += ch;
    while (!c.empty() && (c.back() == '.' || c.back() == ')')) c.pop_back();
    if (c.size() == 1 && letter_in_range(c[0], n)) return upper_letter(c[0]);
    if (auto by_text = choice_by_text(unwrapped, choices)) return by_text;
    return *box.content;
  }
  std::optional<std::string> found;
  for (size_t at : answer_phrase_ends(s)) {
    size_t i = skip_answer_lead(s, at, /*skip_words=*/false);
    bool paren = false;
    if (i < s.size() && s[i] == '(') {
      paren = true;
      ++i;
    }
    if (i >= s.size() || !letter_in_range(s[i], n) || !is_alpha(s[i])) continue;
    const size_t after = i + 1;
    if (paren && !(after < s.size() && s[after] == ')')) continue;
    const size_t next = paren ? after + 1 : after;
    if (next < s.size() && is_alpha(s[next])) continue;
    found = upper_letter(s[i]);
  }
  if (found) return found;
  for (size_t p = s.size(); p-- > 0;) {
    if (s[p] == '(' && p + 2 < s.size() && is_alpha(s[p + 1]) && s[p + 2] == ')' && letter_in_range(s[p + 1], n))
      return upper_letter(s[p + 1]);
  }
  for (size_t p = s.size(); p-- > 0;) {
    if (is_alpha(s[p]) && p + 1 < s.size() && s[p + 1] == ')' && letter_in_range(s[p], n) &&
        (p == 0 || s[p - 1] == ' ' || s[p - 1] == '\n'))
      return upper_letter(s[p]);
  }
  return std::nullopt;
}

std::string reference_letter(const GradeItem& item) {
  std::string a = trim_ws(item.answer);
  std::string bare = a;
  if (bare.size() == 3 && bare.front() == '(' && bare.back() == ')') bare = bare.substr(1, 1);
  if (bare.size() == 1 && is_alpha(bare[0]) && letter_in_range(bare[0], item.choices.size())) return upper_letter(bare[0]);
  if (auto by_text = choice_by_text(a, item.choices)) return *by_text;
  const size_t n = item.choices.empty() ? 26 : std::min<size_t>(item.choices.size(), 26);
  throw Error(ErrorCode::kInput, "multiple-choice answer '" + a + "': expected a letter A-" +
                                     std::string(1, static_cast<char>('A' + n - 1)) + " or the text of one of the " +
                                     std::to_string(item.choices.size()) + " choices");
}

std::optional<std::string> extract_text(const std::string& s) {
  std::optional<std::string> out;
  if (const Box box = last_box(s); box.found) {
    if (!box.content) return std::nullopt;
    out = unwrap_or_drop_text_groups(*box.content);
  } else {
    const auto ends = answer_phrase_ends(s);
    if (!ends.empty()) {
      std::string line = rest_of_line(s, skip_answer_lead(s, ends.back(), false));
      if (!line.empty()) out = line;
    }
    if (!out) {
      size_t e = s.size();
      while (e > 0) {
        const size_t b = s.rfind('\n', e - 1);
        const size_t start = b == std::string::npos ? 0 : b + 1;
        const std::string line = trim_ws(s.substr(start, e - start));
        if (!line.empty()) {
          out = line;
          break;
        }
        if (b == std::string::npos) break;
        e = b;
      }
    }
  }
  if (!out) return std::nullopt;
  std::string t = strip_delimiters(*out);
  if (!t.empty() && t.back() == '.') t = trim_ws(t.substr(0, t.size() - 1));
  if (t.empty()) return std::nullopt;
  return t;
}

}  // namespace grade_impl

const char* answer_kind_name(AnswerKind k) {
  switch (k) {
    case AnswerKind::kMath: return "math";
    case AnswerKind::kChoice: return "choice";
    case AnswerKind::kText: return "text";
  }
  return "?";
}

AnswerKind GradeItem::resolved_kind() const {
  if (kind) return *kind;
  if (!choices.empty()) return AnswerKind::kChoice;
  if (!aliases.empty()) return AnswerKind::kText;
  return AnswerKind::kMath;
}

std::optional<std::string> answer_section(const std::string& response, bool think_open) {
  using namespace grade_impl;
  std::string s = response;
  size_t cut = std::string::npos;
  for (const char* end : {"<|im_end|>", "<|endoftext|>"}) cut = std::min(cut, s.find(end));
  if (cut != std::string::npos) s.resize(cut);
  for (size_t p = s.find("<|"); p != std::string::npos; p = s.find("<|", p)) {
    const size_t q = s.find("|>", p + 2);
    if (q == std::string::npos) break;
    const std::string inner = s.substr(p + 2, q - p - 2);
    if (std::any_of(inner.begin(), inner.end(), [](char c) { return is_space(c); })) {
      p += 2;
      continue;
    }
    s.erase(p, q + 2 - p);
  }
  const size_t close = s.rfind("</think>");
  if (close != std::string::npos) return s.substr(close + 8);
  if (think_open || s.find("<think>") != std::string::npos) return std::nullopt;
  return s;
}

std::optional<std::string> extract_math_answer(const std::string& s) {
  using namespace grade_impl;
  if (const Box box = last_box(s); box.found) return box.content;
  const auto ends = answer_phrase_ends(s);
  if (!ends.empty())
    if (auto a = math_after_phrase(s, ends.back())) return strip_delimiters(*a);
  return last_number(s);
}

std::string normalize_math_answer(const std::string& answer) {
  using namespace grade_impl;
  std::string s = strip_delimiters(answer);
  for (const char* junk : {"\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\ ", "~"}) replace_all(s, junk, "");
  for (const char* delim : {"\\(", "\\)", "\\[", "\\]", "$"}) replace_all(s, delim, "");
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  s = trim_ws(unwrap_or_drop_text_groups(s));
  for (const char* deg : {"^{\\circ}", "^\\circ", "\xC2\xB0", "\\%", "%"}) replace_all(s, deg, "");
  s = trim_ws(s);
  // "x = 5" -> "5"
  if (s.size() > 1 && is_alpha(s[0])) {
    size_t j = 1;
    while (j < s.size() && is_space(s[j])) ++j;
    if (j < s.size() && s[j] == '=') s = trim_ws(s.substr(j + 1));
  }
  replace_all(s, "{,}", ",");
  s = remove_thousands_commas(s);
  // "12 apples" -> "12"
  if (const size_t n = match_number(s, 0, true); n > 0 && n < s.size() && is_space(s[n])) {
    const std::string rest = trim_ws(s.substr(n));
    if (std::all_of(rest.begin(), rest.end(), [](char c) { return is_alpha(c) || is_space(c); })) s = s.substr(0, n);
  }
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return is_space(c); }), s.end());
  s = brace_short_arguments(s);
  while (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::optional<double> math_answer_value(const std::string& s) {
  using namespace grade_impl;
  if (auto v = parse_plain_number(s)) return v;
  std::string body = s;
  double sign = 1.0;
  if (!body.empty() && body[0] == '-') {
    sign = -1.0;
    body = body.substr(1);
  }
  if (starts_with(body, 0, "\\frac{")) {
    const size_t e1 = match_brace(body, 5);
    if (e1 == std::string::npos || e1 >= body.size() || body[e1] != '{') return std::nullopt;
    const size_t e2 = match_brace(body, e1);
    if (e2 != body.size()) return std::nullopt;
    const auto num = parse_plain_number(body.substr(6, e1 - 7));
    const auto den = parse_plain_number(body.substr(e1 + 1, e2 - e1 - 2));
    if (!num || !den || *den == 0.0) return std::nullopt;
    return sign * *num / *den;
  }
  const size_t slash = body.find('/');
  if (slash != std::string::npos) {
    const auto num = parse_plain_number(body.substr(0, slash));
    const auto den = parse_plain_number(body.substr(slash + 1));
    if (!num || !den || *den == 0.0 || body[slash + 1] == '-') return std::nullopt;
    return sign * *num / *den;
  }
  return std::nullopt;
}

bool math_answers_equal(const std::string& extracted, const std::string& reference) {
  const std::string a = normalize_math_answer(extracted), b = normalize_math_answer(reference);
  if (a.empty() || b.empty()) return false;
  const auto x = math_answer_value(a), y = math_answer_value(b);
  if (x && y) return std::fabs(*x - *y) <= 1e-9 * std::max({1.0, std::fabs(*x), std::fabs(*y)});
  return a == b;
}

std::string normalize_text_answer(const std::string& answer) {
  using namespace grade_impl;
  std::string s;
  for (char c : answer) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 128 && std::ispunct(u)) continue;
    s += u < 128 ? static_cast<char>(std::tolower(u)) : c;
  }
  std::string out, word;
  const auto flush = [&] {
    if (!word.empty() && word != "a" && word != "an" && word != "the") out += (out.empty() ? "" : " ") + word;
    word.clear();
  };
  for (char c : s) {
    if (is_space(c)) flush();
    else word += c;
  }
  flush();
  return out;
}

GradeResult grade_answer(const GradeItem& item) {
  using namespace grade_impl;
  GradeResult r;
  const auto section = answer_section(item.response, item.think_open);
  const AnswerKind kind = item.resolved_kind();
  if (kind == AnswerKind::kChoice) {
    const std::string ref = reference_letter(item);  // validates the reference even without an answer
    if (!section) return r;
    r.extracted = extract_choice(*section, item.choices);
    r.correct = r.extracted && *r.extracted == ref;
    return r;
  }
  if (!section) return r;
  if (kind == AnswerKind::kText) {
    r.extracted = extract_text(*section);
    if (!r.extracted) return r;
    const std::string got = normalize_text_answer(*r.extracted);
    if (got.empty()) return r;
    if (got == normalize_text_answer(item.answer)) r.correct = true;
    for (const auto& a : item.aliases)
      if (got == normalize_text_answer(a)) r.correct = true;
    return r;
  }
  r.extracted = extract_math_answer(*section);
  r.correct = r.extracted && math_answers_equal(*r.extracted, item.answer);
  return r;
}

GradeItem grade_item_from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw Error(ErrorCode::kInput, origin + ": expected a JSON object");
  GradeItem item;
  const auto need_string = [&](const char* key) -> std::string {
    if (!j.contains(key)) throw Error(ErrorCode::kInput, origin + ": missing \"" + std::string(key) + "\"");
    if (!j.at(key).is_string())
      throw Error(ErrorCode::kInput, origin + ": \"" + std::string(key) + "\" must be a string, found " + j.at(key).type_name());
    return j.at(key).get<std::string>();
  };
  item.response = need_string("response");
  if (!j.contains("answer")) throw Error(ErrorCode::kInput, origin + ": missing \"answer\"");
  const auto& a = j.at("answer");
  if (a.is_string()) item.answer = a.get<std::string>();
  else if (a.is_number_integer()) item.answer = std::to_string(a.get<int64_t>());
  else if (a.is_number()) item.answer = a.dump();
  else throw Error(ErrorCode::kInput, origin + ": \"answer\" must be a string or a number, found " + a.type_name());
  const auto string_list = [&](const char* key) {
    std::vector<std::string> out;
    if (!j.contains(key) || j.at(key).is_null()) return out;
    const auto& v = j.at(key);
    if (!v.is_array()) throw Error(ErrorCode::kInput, origin + ": \"" + std::string(key) + "\" must be an array of strings");
    for (const auto& e : v) {
      if (!e.is_string()) throw Error(ErrorCode::kInput, origin + ": \"" + std::string(key) + "\" must be an array of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  };
  item.choices = string_list("choices");
  if (item.choices.size() > 26)
    throw Error(ErrorCode::kInput, origin + ": " + std::to_string(item.choices.size()) + " choices; at most 26 (letters A-Z)");
  item.aliases = string_list("aliases");
  if (j.contains("type") && !j.at("type").is_null()) {
    const std::string t = j.at("type").is_string() ? j.at("type").get<std::string>() : "";
    if (t == "math") item.kind = AnswerKind::kMath;
    else if (t == "choice") item.kind = AnswerKind::kChoice;
    else if (t == "text") item.kind = AnswerKind::kText;
    else throw Error(ErrorCode::kInput, origin + ": \"type\" is '" + j.at("type").dump() + "'; expected math, choice or text");
  }
  if (j.contains("think_open") && !j.at("think_open").is_null()) {
    if (!j.at("think_open").is_boolean()) throw Error(ErrorCode::kInput, origin + ": \"think_open\" must be true or false");
    item.think_open = j.at("think_open").get<bool>();
  }
  return item;
}

}  // namespace circuitscope
