// Toy lab building blocks: a synthetic multi-step integer arithmetic task.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace circuitscope::toy {

// An expression over non-negative integers with + - * and the usual precedence, e.g. "17+25*3".
struct ArithProblem {
  std::vector<int64_t> operands;  // left to right
  std::vector<char> ops;          // ops[i] joins operands[i] and operands[i+1]
  std::string text() const;       // "17+25*3"
  int64_t answer() const;
  // Step-by-step trace: multiplications first (left to right), then + and - left to right, one step
  // per line, e.g. "25*3=75\n17+75=92". A single-operand problem has an empty trace.
  std::string trace() const;
};

struct ArithSpec {
  int min_operands = 2;
  int max_operands = 3;
  int64_t max_operand = 20;  // operands drawn from [0, max_operand]
  std::string ops = "+-*";
};

ArithProblem sample_problem(const ArithSpec& spec, std::mt19937_64& rng);
// Parses "17+25*3"; throws Error(kInput) on anything else.
ArithProblem parse_problem(const std::string& text);
// The integer after the last "=" or, failing that, the last integer in `completion`; nullopt if none.
std::optional<int64_t> extract_answer(const std::string& completion);

}  // namespace circuitscope::toy
