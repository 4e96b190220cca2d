// circuitscope grade --input-jsonl F   (one {"response", "answer"} per line -> {"extracted", "correct"})
// The grader of `eval`, usable alone; the rules are docs/grading.md.
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "circuitscope/json_limits.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/grade.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct GradeOptions {
  std::string input;
  bool think_open = false;
};

int run_grade(const GradeOptions& o) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (o.input != "-") {
    file.open(o.input);
    if (!file) throw Error(ErrorCode::kIo, "cannot open '" + o.input + "'");
    in = &file;
  }
  std::string line;
  int64_t n = 0, correct = 0, answered = 0;
  for (int64_t lineno = 1; std::getline(*in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = o.input + ":" + std::to_string(lineno);
    nlohmann::json j;
    check_json_depth(line, where, false, ErrorCode::kInput);
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kInput, where + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    GradeItem item = grade_item_from_json(j, where);
    if (o.think_open && !j.contains("think_open")) item.think_open = true;
    GradeResult r;
    try {
      r = grade_answer(item);
    } catch (const Error& e) {
      throw Error(e.code(), where + ": " + e.what());
    }
    nlohmann::ordered_json out;
    if (j.contains("id")) out["id"] = j["id"];
    out["extracted"] = r.extracted ? nlohmann::ordered_json(*r.extracted) : nlohmann::ordered_json();
    out["correct"] = r.correct;
    std::cout << out.dump() << "\n";
    ++n;
    correct += r.correct;
    answered += r.extracted.has_value();
  }
  if (n > 0)
    spdlog::info("graded {} line(s): {} correct, {} with no answer found", n, correct, n - answered);
  return 0;
}

CommandRegistrar reg_cmd_grade({"grade", "Extract and grade answers (math, multiple choice, short text) from JSONL responses",
                                [](CLI::App* sub) {
                                  auto o = std::make_shared<GradeOptions>();
                                  sub->add_option("--input-jsonl", o->input,
                                                  "lines {\"response\", \"answer\"} (+ choices, aliases, type, "
                                                  "think_open); - for standard input")
                                      ->required();
                                  sub->add_flag("--think-open", o->think_open,
                                                "responses start inside <think> (prompts rendered with thinking on)");
                                  sub->footer("Prints {\"extracted\": ..., \"correct\": ...} per line (with the line's id "
                                              "when it has one). Rules: docs/grading.md.");
                                  return [o] { return run_grade(*o); };
                                }});

}  // namespace
}  // namespace circuitscope::app
