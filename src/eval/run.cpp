// eval: prompts, conditions, generation and grading of every sample.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/eval.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/tokenizer_json.hpp"

namespace circuitscope {

uint64_t stable_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t sample_seed(uint64_t seed, const std::string& id, int64_t sample) {
  // splitmix64 of the three parts: nearby inputs give unrelated seeds
  uint64_t z = seed ^ stable_hash(id) ^ (0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(sample + 1));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void EvalSpec::validate() const {
  if (samples < 1) throw Error(ErrorCode::kUsage, "--samples must be at least 1; found " + std::to_string(samples));
  if (max_new_tokens < 1) throw Error(ErrorCode::kUsage, "--max-new-tokens must be at least 1");
  if (batch_size < 1) throw Error(ErrorCode::kUsage, "--batch-size must be at least 1");
  if (ks.empty()) throw Error(ErrorCode::kUsage, "--k needs at least one value");
  for (int64_t k : ks)
    if (k < 1 || k > samples)
      throw Error(ErrorCode::kUsage, "--k " + std::to_string(k) + ": k must lie in 1.." + std::to_string(samples) +
                                         " (--samples); pass@k needs at least k samples per problem");
  if (shard_count < 1 || shard_index < 1 || shard_index > shard_count)
    throw Error(ErrorCode::kUsage, "--shard " + std::to_string(shard_index) + "/" + std::to_string(shard_count) +
                                       ": expected I/N with 1 <= I <= N");
  if (conditions.empty() || conditions[0].mode != HeadMode::kNone)
    throw Error(ErrorCode::kInternal, "eval: the first condition must be the baseline");
  std::set<std::string> names;
  for (const auto& c : conditions)
    if (!names.insert(c.name).second) throw Error(ErrorCode::kUsage, "condition name '" + c.name + "' is used twice");
  if (prompt.prompt_template.find("{problem}") == std::string::npos)
    throw Error(ErrorCode::kUsage, "--prompt-template '" + prompt.prompt_template + "' has no {problem}");
  if (!prompt.chat && (prompt.think || !prompt.system.empty() || !prompt.chat_template_file.empty()))
    throw Error(ErrorCode::kUsage, "--think, --system and --template apply with --chat only");
  if (bootstrap_samples < 100) throw Error(ErrorCode::kUsage, "--bootstrap needs at least 100 resamples");
}

namespace {

nlohmann::ordered_json condition_json(const EvalCondition& c) {
  nlohmann::ordered_json heads = nlohmann::ordered_json::array();
  for (const auto& h : c.heads) {
    nlohmann::ordered_json e = {{"layer", h.layer}, {"head", h.head}};
    if (c.mode == HeadMode::kScale) e["factor"] = h.factor;
    heads.push_back(e);
  }
  nlohmann::ordered_json j = {{"name", c.name}, {"mode", head_mode_name(c.mode)}, {"heads", heads}};
  if (!c.control_of.empty()) j["control_of"] = c.control_of;
  return j;
}

// The prompt ends inside a think block: "<think>" after the last "</think>".
bool ends_in_think(const std::string& prompt) {
  const size_t open = prompt.rfind("<think>");
  if (open == std::string::npos) return false;
  const size_t close = prompt.rfind("</think>");
  return close == std::string::npos || close < open;
}

}  // namespace

EvalRun run_eval(HookedTransformer& model, const std::string& model_dir, const Benchmark& bench, const EvalSpec& spec,
                 const std::function<void(const EvalProgress&)>& on_progress) {
  spec.validate();
  const ModelConfig& cfg = model.config();
  for (const auto& c : spec.conditions) validate_condition(c, cfg.n_layers, cfg.n_heads);
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(model_dir);

  // Prompts of every problem (mean ablation averages over all of them, whatever the shard).
  std::optional<TokenizerConfig> tcfg;
  std::optional<std::string> template_override;
  if (spec.prompt.chat) {
    tcfg = load_tokenizer_config(model_dir);
    if (!spec.prompt.chat_template_file.empty()) template_override = read_text_file(spec.prompt.chat_template_file);
  }
  std::vector<std::vector<int64_t>> prompt_ids;
  std::vector<bool> think_open;
  for (const auto& item : bench.items) {
    const std::string user = format_problem(spec.prompt.prompt_template, item);
    std::string text;
    if (spec.prompt.chat) {
      std::vector<ChatMessage> msgs;
      if (!spec.prompt.system.empty()) msgs.push_back({"system", spec.prompt.system});
      msgs.push_back({"user", user});
      text = apply_chat_template(*tcfg, msgs, /*add_generation_prompt=*/true, spec.prompt.think,
                                 template_override ? &*template_override : nullptr);
      prompt_ids.push_back(tok->encode(text, /*add_special_tokens=*/false).ids);
    } else {
      text = user;
      prompt_ids.push_back(tok->encode(text, /*add_special_tokens=*/true).ids);
    }
    if (prompt_ids.back().empty()) throw Error(ErrorCode::kInput, bench.path + ": problem '" + item.id + "' has no tokens");
    think_open.push_back(ends_in_think(text));
  }

  std::vector<int64_t> mean_layers;
  for (const auto& c : spec.conditions)
    if (c.mode == HeadMode::kMean)
      for (const auto& h : c.heads) mean_layers.push_back(h.layer);
  std::sort(mean_layers.begin(), mean_layers.end());
  mean_layers.erase(std::unique(mean_layers.begin(), mean_layers.end()), mean_layers.end());
  std::vector<at::Tensor> means(cfg.n_layers);
  if (!mean_layers.empty()) means = mean_head_outputs(model, prompt_ids, mean_layers, spec.batch_size, 0);

  EvalRun run;
  nlohmann::ordered_json conds = nlohmann::ordered_json::array();
  for (const auto& c : spec.conditions) conds.push_back(condition_json(c));
  const auto& s = spec.sampling;
  run.settings = {
      {"schema_version", 1},
      {"tool", tool_name()},
      {"model", model_json(model_dir, cfg, model.fingerprint())},
      {"dtype", compute_dtype_name(model.dtype())},
      {"benchmark", {{"path", bench.path}, {"sha256", bench.sha256}, {"problems", bench.items.size()}}},
      {"prompt",
       {{"chat", spec.prompt.chat},
        {"think", spec.prompt.think ? nlohmann::ordered_json(*spec.prompt.think ? "on" : "off") : nlohmann::ordered_json()},
        {"system", spec.prompt.system},
        {"template", spec.prompt.prompt_template},
        {"chat_template_file", spec.prompt.chat_template_file}}},
      {"samples", spec.samples},
      {"max_new_tokens", spec.max_new_tokens},
      {"sampling",
       {{"greedy", s.greedy}, {"temperature", s.temperature}, {"top_p", s.top_p}, {"top_k", s.top_k}, {"min_p", s.min_p},
        {"seed", s.seed}}},
      {"batch_size", spec.batch_size},
      {"ks", spec.ks},
      {"loop",
       {{"max_period", spec.loop.max_period}, {"min_repeats", spec.loop.min_repeats},
        {"min_cut_repeats", spec.loop.min_cut_repeats}, {"min_span", spec.loop.min_span}}},
      {"bootstrap_samples", spec.bootstrap_samples},
      {"conditions", conds}};

  const int64_t P = static_cast<int64_t>(bench.items.size());
  const int64_t first = P * (spec.shard_index - 1) / spec.shard_count, last = P * spec.shard_index / spec.shard_count;
  for (int64_t i = first; i < last; ++i) run.problem_ids.push_back(bench.items[i].id);
  struct Row {
    int64_t item;
    int64_t sample;
  };
  std::vector<Row> rows;
  for (int64_t i = first; i < last; ++i)
    for (int64_t k = 0; k < spec.samples; ++k) rows.push_back({i, k});

  EvalProgress progress;
  progress.rows_total = static_cast<int64_t>(rows.size() * spec.conditions.size());
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& cond : spec.conditions) {
    progress.condition = cond.name;
    auto handles = apply_condition(model.hooks(), cond, means, cfg.n_heads);
    for (size_t start = 0; start < rows.size(); start += spec.batch_size) {
      const size_t end = std::min(rows.size(), start + static_cast<size_t>(spec.batch_size));
      std::vector<std::vector<int64_t>> prompts;
      GenerateOptions g;
      g.max_new_tokens = spec.max_new_tokens;
      g.sampling = spec.sampling;
      g.eos_ids = cfg.eos_token_ids;
      for (size_t r = start; r < end; ++r) {
        prompts.push_back(prompt_ids[rows[r].item]);
        g.row_seeds.push_back(sample_seed(s.seed, bench.items[rows[r].item].id, rows[r].sample));
      }
      const GenerateResult gen = generate(model, prompts, g);
      for (size_t r = start; r < end; ++r) {
        const BenchmarkItem& item = bench.items[rows[r].item];
        const std::vector<int64_t>& toks = gen.tokens[r - start];
        EvalSample smp;
        smp.condition = cond.name;
        smp.id = item.id;
        smp.sample = rows[r].sample;
        smp.response = tok->decode(toks, /*skip_special_tokens=*/false);
        smp.tokens = static_cast<int64_t>(toks.size());
        smp.finish_reason = gen.finish_reasons[r - start] == "length" ? "length" : "stop";
        std::vector<int64_t> body = toks;
        if (gen.finish_reasons[r - start] == "eos" && !body.empty()) body.pop_back();
        smp.loop = detect_loop(body, smp.finish_reason == "length", spec.loop).looping;
        GradeItem gi;
        // Graded without the final EOS: models whose EOS text is not <|im_end|> (</s>,
        // <｜end▁of▁sentence｜>) would otherwise glue it to the answer.
        gi.response = body.size() == toks.size() ? smp.response : tok->decode(body, /*skip_special_tokens=*/false);
        gi.answer = item.answer;
        gi.choices = item.choices;
        gi.aliases = item.aliases;
        gi.kind = item.kind;
        gi.think_open = think_open[rows[r].item];
        const GradeResult gr = grade_answer(gi);
        smp.extracted = gr.extracted;
        smp.correct = gr.correct;
        progress.tokens += smp.tokens;
        run.samples.push_back(std::move(smp));
      }
      progress.rows_done += static_cast<int64_t>(end - start);
      progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (on_progress) on_progress(progress);
    }
  }
  return run;
}

}  // namespace circuitscope
