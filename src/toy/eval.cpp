// Held-out evaluation of toy checkpoints, and their toy_lab.json.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/generate.hpp"
#include "circuitscope/model.hpp"
#include "toy_internal.hpp"

namespace circuitscope::toy {

EvalResult evaluate_toy(HookedTransformer& model, const std::string& tokenizer_dir, const EvalOptions& o) {
  if (o.n <= 0) throw Error(ErrorCode::kUsage, "evaluation needs n > 0 problems");
  const detail::ChatTokenizer tok = detail::ChatTokenizer::load(tokenizer_dir);
  const std::vector<ArithProblem> problems = sample_eval_problems(o.spec, o.eval_fraction, o.n, o.seed);
  if (problems.empty()) throw Error(ErrorCode::kUsage, "the arithmetic spec has no evaluation problems");
  EvalResult r;
  int64_t total_tokens = 0;
  const int64_t bs = std::max<int64_t>(1, o.batch_size);
  for (size_t start = 0; start < problems.size(); start += bs) {
    const size_t end = std::min(problems.size(), start + static_cast<size_t>(bs));
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i = start; i < end; ++i) prompts.push_back(tok.prompt_ids(problems[i], o.think));
    GenerateOptions g;
    g.max_new_tokens = o.max_new_tokens;
    g.sampling.greedy = true;
    g.eos_ids = model.config().eos_token_ids;
    g.pad_id = tok.pad_id;
    const GenerateResult gen = generate(model, prompts, g);
    for (size_t i = start; i < end; ++i) {
      EvalExample e;
      e.problem = problems[i].text();
      e.answer = problems[i].answer();
      e.completion = tok.tokenizer->decode(gen.tokens[i - start], /*skip_special_tokens=*/false);
      e.predicted = final_answer(e.completion, o.think);
      total_tokens += static_cast<int64_t>(gen.tokens[i - start].size());
      if (e.predicted) ++r.answered;
      if (e.predicted && *e.predicted == e.answer) ++r.correct;
      r.examples.push_back(std::move(e));
    }
  }
  r.n = static_cast<int64_t>(problems.size());
  r.accuracy = static_cast<double>(r.correct) / static_cast<double>(r.n);
  r.mean_completion_tokens = static_cast<double>(total_tokens) / static_cast<double>(r.n);
  return r;
}

std::optional<ToyCheckpointInfo> read_toy_info(const std::string& dir) {
  const std::filesystem::path p = std::filesystem::path(dir) / "toy_lab.json";
  std::ifstream f(p);
  if (!f) return std::nullopt;
  try {
    const std::string text{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    check_json_depth(text, p.string());
    const nlohmann::json j = nlohmann::json::parse(text);
    ToyCheckpointInfo info;
    info.stage = j.at("stage").get<std::string>();
    info.step = j.at("step").get<int64_t>();
    info.think = j.at("think").get<bool>();
    const auto& s = j.at("spec");
    info.spec.min_operands = s.at("min_operands").get<int>();
    info.spec.max_operands = s.at("max_operands").get<int>();
    info.spec.max_operand = s.at("max_operand").get<int64_t>();
    info.spec.ops = s.at("ops").get<std::string>();
    info.eval_fraction = j.at("eval_fraction").get<double>();
    return info;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kFormat, "'" + p.string() + "' is malformed: " + e.what());
  }
}

}  // namespace circuitscope::toy
