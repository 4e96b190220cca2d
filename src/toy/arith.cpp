#include <cctype>

#include "circuitscope/error.hpp"
#include "circuitscope/toy.hpp"

namespace circuitscope::toy {

std::string ArithProblem::text() const {
  std::string s = std::to_string(operands.at(0));
  for (size_t i = 0; i < ops.size(); ++i) s += ops[i] + std::to_string(operands.at(i + 1));
  return s;
}

namespace {
// Reduces multiplications, then additions/subtractions, calling `step` for each reduction.
template <typename Step>
int64_t reduce(std::vector<int64_t> vals, std::vector<char> ops, Step&& step) {
  for (size_t i = 0; i < ops.size();) {
    if (ops[i] == '*') {
      const int64_t r = vals[i] * vals[i + 1];
      step(vals[i], '*', vals[i + 1], r);
      vals[i] = r;
      vals.erase(vals.begin() + static_cast<long>(i) + 1);
      ops.erase(ops.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
  int64_t acc = vals[0];
  for (size_t i = 0; i < ops.size(); ++i) {
    const int64_t r = ops[i] == '+' ? acc + vals[i + 1] : acc - vals[i + 1];
    step(acc, ops[i], vals[i + 1], r);
    acc = r;
  }
  return acc;
}
}  // namespace

int64_t ArithProblem::answer() const {
  return reduce(operands, ops, [](int64_t, char, int64_t, int64_t) {});
}

std::string ArithProblem::trace() const {
  std::string t;
  reduce(operands, ops, [&](int64_t a, char op, int64_t b, int64_t r) {
    if (!t.empty()) t += "\n";
    t += std::to_string(a) + op + std::to_string(b) + "=" + std::to_string(r);
  });
  return t;
}

ArithProblem sample_problem(const ArithSpec& spec, std::mt19937_64& rng) {
  if (spec.min_operands < 1 || spec.max_operands < spec.min_operands || spec.ops.empty() || spec.max_operand < 0)
    throw Error(ErrorCode::kUsage, "arithmetic spec: need 1 <= min_operands <= max_operands, some ops, max_operand >= 0");
  ArithProblem p;
  const int n = std::uniform_int_distribution<int>(spec.min_operands, spec.max_operands)(rng);
  std::uniform_int_distribution<int64_t> val(0, spec.max_operand);
  std::uniform_int_distribution<size_t> op(0, spec.ops.size() - 1);
  for (int i = 0; i < n; ++i) {
    p.operands.push_back(val(rng));
    if (i + 1 < n) p.ops.push_back(spec.ops[op(rng)]);
  }
  return p;
}

ArithProblem parse_problem(const std::string& text) {
  ArithProblem p;
  size_t i = 0;
  auto number = [&] {
    const size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == start || i - start > 12)
      throw Error(ErrorCode::kInput, "arithmetic problem '" + text + "': expected a number at offset " + std::to_string(start));
    return std::stoll(text.substr(start, i - start));
  };
  p.operands.push_back(number());
  while (i < text.size()) {
    const char c = text[i];
    if (c != '+' && c != '-' && c != '*')
      throw Error(ErrorCode::kInput, "arithmetic problem '" + text + "': unexpected '" + std::string(1, c) + "' at offset " +
                                         std::to_string(i));
    ++i;
    p.ops.push_back(c);
    p.operands.push_back(number());
  }
  return p;
}

std::optional<int64_t> extract_answer(const std::string& s) {
  auto parse_int_at = [&](size_t pos) -> std::optional<int64_t> {
    while (pos < s.size() && s[pos] == ' ') ++pos;
    bool neg = false;
    if (pos < s.size() && s[pos] == '-') {
      neg = true;
      ++pos;
    }
    const size_t start = pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])) && pos - start < 15) ++pos;
    if (pos == start) return std::nullopt;
    const int64_t v = std::stoll(s.substr(start, pos - start));
    return neg ? -v : v;
  };
  const auto eq = s.rfind('=');
  if (eq != std::string::npos)
    if (auto v = parse_int_at(eq + 1)) return v;
  // Last integer anywhere (with its sign when a '-' directly precedes it).
  size_t end = s.size();
  while (end > 0 && !std::isdigit(static_cast<unsigned char>(s[end - 1]))) --end;
  if (end == 0) return std::nullopt;
  size_t start = end;
  while (start > 0 && std::isdigit(static_cast<unsigned char>(s[start - 1]))) --start;
  if (start > 0 && s[start - 1] == '-') --start;
  return parse_int_at(start);
}

}  // namespace circuitscope::toy
