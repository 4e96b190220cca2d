// Benchmark files and the user message of each problem.
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/eval.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/sha256.hpp"

namespace circuitscope {

Benchmark load_benchmark(const std::string& path) {
  Benchmark b;
  b.path = path;
  const std::string text = read_text_file(path);
  b.sha256 = sha256_hex(text);
  std::istringstream in(text);
  std::string line;
  std::set<std::string> seen;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    nlohmann::json j;
    check_json_depth(line, where, false, ErrorCode::kInput);
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kInput, where + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object()) throw Error(ErrorCode::kInput, where + ": expected a JSON object");
    BenchmarkItem it;
    if (!j.contains("problem") || !j["problem"].is_string())
      throw Error(ErrorCode::kInput, where + ": expected a string \"problem\"");
    it.problem = j["problem"].get<std::string>();
    if (j.contains("id") && j["id"].is_string()) it.id = j["id"].get<std::string>();
    else if (j.contains("id") && j["id"].is_number_integer()) it.id = std::to_string(j["id"].get<int64_t>());
    else if (j.contains("id")) throw Error(ErrorCode::kInput, where + ": \"id\" must be a string or an integer");
    else it.id = std::to_string(n);  // the line number when the file has no ids
    if (!seen.insert(it.id).second) throw Error(ErrorCode::kInput, where + ": id '" + it.id + "' appears twice");
    // The answer fields are read by the grader's own parser, so both agree on what is valid.
    nlohmann::json g = j;
    g["response"] = "";
    const GradeItem gi = grade_item_from_json(g, where);
    it.answer = gi.answer;
    it.choices = gi.choices;
    it.aliases = gi.aliases;
    it.kind = gi.kind;
    if (gi.resolved_kind() == AnswerKind::kChoice) {
      try {
        grade_answer(gi);  // rejects a reference that is no choice
      } catch (const Error& e) {
        throw Error(e.code(), where + ": " + e.what());
      }
    }
    b.items.push_back(std::move(it));
  }
  if (b.items.empty()) throw Error(ErrorCode::kInput, path + ": no problems");
  return b;
}

std::string format_problem(const std::string& tmpl, const BenchmarkItem& item) {
  std::string choices;
  for (size_t k = 0; k < item.choices.size(); ++k)
    choices += (k ? "\n" : "") + std::string(1, static_cast<char>('A' + k)) + ") " + item.choices[k];
  std::string out = tmpl;
  bool had_choices = false;
  for (size_t p = out.find("{choices}"); p != std::string::npos; p = out.find("{choices}", p + choices.size())) {
    out.replace(p, 9, choices);
    had_choices = true;
  }
  for (size_t p = out.find("{problem}"); p != std::string::npos; p = out.find("{problem}", p + item.problem.size()))
    out.replace(p, 9, item.problem);
  if (!had_choices && !choices.empty()) out += "\n\n" + choices;
  return out;
}

}  // namespace circuitscope
