// Answer grading for benchmark evaluation: math answers (boxed, "answer is", last number, with
// LaTeX normalisation and numeric equivalence), multiple-choice letters and short-text exact match.
// The rules are specified in docs/grading.md; `circuitscope grade` and `circuitscope eval` share them.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace circuitscope {

enum class AnswerKind { kMath, kChoice, kText };
const char* answer_kind_name(AnswerKind k);  // "math" | "choice" | "text"

struct GradeItem {
  std::string response;
  std::string answer;                 // the reference
  std::vector<std::string> choices;   // multiple choice: the options, in letter order
  std::vector<std::string> aliases;   // short text: other accepted answers
  std::optional<AnswerKind> kind;     // default: choice with choices, text with aliases, else math
  bool think_open = false;            // the prompt ended inside <think>: an answer needs "</think>"
  AnswerKind resolved_kind() const;
};

struct GradeResult {
  std::optional<std::string> extracted;  // raw text found (null: no answer)
  bool correct = false;
};

GradeResult grade_answer(const GradeItem& item);

// {"response", "answer" (string or number), optional "choices", "aliases", "type", "think_open"};
// throws Error(kInput) naming `origin` when a field is missing or has the wrong type.
GradeItem grade_item_from_json(const nlohmann::json& j, const std::string& origin);

// The pieces, for tests and for callers that grade differently.
// The text that holds the final answer (after the last </think>, special tokens cut), or nullopt
// when the response never leaves its reasoning.
std::optional<std::string> answer_section(const std::string& response, bool think_open);
std::optional<std::string> extract_math_answer(const std::string& section);
std::string normalize_math_answer(const std::string& answer);
// Numeric value of a normalised answer ("-3", "0.5", "3/4", "\frac{1}{2}"), if it is a number.
std::optional<double> math_answer_value(const std::string& normalized);
bool math_answers_equal(const std::string& extracted, const std::string& reference);
std::string normalize_text_answer(const std::string& answer);

}  // namespace circuitscope
