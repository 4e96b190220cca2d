// circuitscope eval MODEL --benchmark F.jsonl --out DIR [--chat --think on] [--samples n --temperature T]
//   [--ablate-heads L.H,... | --scale-heads L.H=F,... | --heads-from COMPARE.json --set emergent]
//   [--mode zero|mean|scale --factor F] [--random-control K] [--condition NAME:SPEC ...] [--shard I/N]
// circuitscope eval merge DIR
// Options -> library (include/circuitscope/eval.hpp): conditions, run, summary, files.
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "circuitscope/error.hpp"
#include "circuitscope/eval.hpp"
#include "circuitscope/model.hpp"
#include "command.hpp"
#include "progress.hpp"
#include "sampling_options.hpp"
#include "shard_option.hpp"

namespace circuitscope::app {
namespace {

struct EvalOptions {
  CommonModelOptions model;
  std::string benchmark, out;
  bool chat = false;
  std::string think, system, template_file;
  std::string prompt_template = "{problem}";
  int64_t samples = 1;
  std::string ks;
  SamplingCli sampling;
  int64_t max_new_tokens = 512, batch_size = 16, limit = 0;
  std::string ablate, scale, heads_from, set, mode, shard;
  std::optional<double> factor;
  int64_t random_control = 0;
  int64_t max_heads = 0;
  std::optional<uint64_t> control_seed;
  std::vector<std::string> conditions;
  int64_t bootstrap = 2000;
  // merge
  std::string dir;
};

HeadMode parse_mode(const std::string& m) {
  if (m == "zero") return HeadMode::kZero;
  if (m == "mean") return HeadMode::kMean;
  if (m == "scale") return HeadMode::kScale;
  throw Error(ErrorCode::kUsage, "--mode '" + m + "': expected zero, mean or scale");
}

std::string factor_name(double f) {
  std::string s = std::to_string(f);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::vector<EvalCondition> build_conditions(const EvalOptions& o, const ModelConfig& cfg) {
  std::optional<HeadSets> cmp;
  if (!o.heads_from.empty()) cmp = read_head_sets(o.heads_from);
  std::vector<EvalCondition> head_conds;
  const bool mode_given = !o.mode.empty();
  const HeadMode mode = mode_given ? parse_mode(o.mode) : HeadMode::kZero;
  if (!o.set.empty() && mode == HeadMode::kScale && !o.factor)
    throw Error(ErrorCode::kUsage, "--set with --mode scale needs --factor F");
  if (o.factor && mode != HeadMode::kScale && o.scale.empty())
    throw Error(ErrorCode::kUsage, "--factor applies to --mode scale (with --set) or to --scale-heads; give --mode scale");
  if (mode_given && o.ablate.empty() && o.set.empty())
    throw Error(ErrorCode::kUsage, "--mode applies to --ablate-heads and --set; --scale-heads always scales and "
                                   "--condition names its own mode");
  if (o.max_heads > 0 && o.set.empty()) throw Error(ErrorCode::kUsage, "--max-heads applies to --set");
  if (o.control_seed && o.random_control == 0) throw Error(ErrorCode::kUsage, "--control-seed needs --random-control K");
  if (!o.ablate.empty()) {
    if (mode == HeadMode::kScale) throw Error(ErrorCode::kUsage, "--ablate-heads takes --mode zero or mean; use --scale-heads to scale");
    EvalCondition c;
    c.name = mode == HeadMode::kMean ? "ablate-mean" : "ablate";
    c.mode = mode;
    c.heads = parse_head_list(o.ablate, nullptr, 0.0);
    if (o.ablate.find_first_of("=:") != std::string::npos)
        throw Error(ErrorCode::kUsage, "--ablate-heads takes L.H,L.H (no factors); found '" + o.ablate + "'");
    head_conds.push_back(c);
  }
  if (!o.scale.empty()) {
    EvalCondition c;
    c.name = "scale";
    c.mode = HeadMode::kScale;
    c.heads = parse_head_list(o.scale, nullptr, o.factor.value_or(std::numeric_limits<double>::quiet_NaN()));
    for (const auto& h : c.heads)
      if (std::isnan(h.factor))
        throw Error(ErrorCode::kUsage, "--scale-heads: head " + std::to_string(h.layer) + "." + std::to_string(h.head) +
                                           " has no factor; write L.H=F or give --factor F");
    head_conds.push_back(c);
  }
  if (!o.set.empty() && !cmp) throw Error(ErrorCode::kUsage, "--set needs --heads-from COMPARE.json");
  if (cmp && o.set.empty() && o.conditions.empty())
    throw Error(ErrorCode::kUsage, "--heads-from needs --set emergent|retained|lost (or --condition NAME:MODE:@SET)");
  if (!o.set.empty()) {
    EvalCondition c;
    c.mode = mode;
    c.name = o.set + "-" + (mode == HeadMode::kScale ? "x" + factor_name(*o.factor) : head_mode_name(mode));
    c.heads = parse_head_list("@" + o.set, &*cmp, mode == HeadMode::kScale ? *o.factor : 0.0);
    if (c.heads.empty())
      throw Error(ErrorCode::kInput, "'" + o.heads_from + "' has no " + o.set + " heads: nothing to intervene on");
    if (o.max_heads > 0 && static_cast<int64_t>(c.heads.size()) > o.max_heads) {
      spdlog::info("--max-heads {}: the {} most important of {} {} heads", o.max_heads, o.max_heads, c.heads.size(), o.set);
      c.heads.resize(o.max_heads);  // compare lists them by decreasing importance
      c.name = o.set + std::to_string(o.max_heads) + c.name.substr(o.set.size());
    }
    head_conds.push_back(c);
  }
  for (const auto& spec : o.conditions) head_conds.push_back(parse_condition(spec, cmp ? &*cmp : nullptr));

  std::vector<EvalCondition> all;
  EvalCondition base;
  base.name = "baseline";
  all.push_back(base);
  for (const auto& c : head_conds) {
    validate_condition(c, cfg.n_layers, cfg.n_heads);
    all.push_back(c);
  }
  if (o.random_control > 0 && head_conds.empty())
    throw Error(ErrorCode::kUsage, "--random-control needs a head condition (--ablate-heads, --scale-heads, --set or --condition)");
  if (o.random_control > 0) {
    const uint64_t seed = o.control_seed.value_or(o.sampling.seed);
    for (const auto& c : head_conds) {
      if (c.mode == HeadMode::kNone) continue;
      for (auto& r : random_controls(c, o.random_control, cfg.n_heads, seed)) all.push_back(std::move(r));
    }
  }
  return all;
}

int run_eval_command(const EvalOptions& o) {
  if (o.model.model_dir.empty() || o.benchmark.empty() || o.out.empty())
    throw Error(ErrorCode::kUsage, "eval needs MODEL, --benchmark F.jsonl and --out DIR (or `eval merge DIR`)");
  EvalSpec spec;
  spec.prompt.chat = o.chat;
  if (!o.think.empty()) spec.prompt.think = o.think == "on";
  spec.prompt.system = o.system;
  spec.prompt.chat_template_file = o.template_file;
  spec.prompt.prompt_template = o.prompt_template;
  spec.samples = o.samples;
  spec.sampling = sampling_options(o.sampling);
  if (spec.sampling.greedy && o.samples > 1)
    throw Error(ErrorCode::kUsage, "--samples " + std::to_string(o.samples) +
                                       " with greedy decoding gives identical samples: set --temperature (e.g. 0.6)");
  spec.max_new_tokens = o.max_new_tokens;
  spec.batch_size = o.batch_size;
  spec.bootstrap_samples = o.bootstrap;
  if (o.ks.empty()) {
    spec.ks.clear();
    for (int64_t k = 1; k <= o.samples; k *= 2) spec.ks.push_back(k);
    if (spec.ks.back() != o.samples) spec.ks.push_back(o.samples);
  } else {
    spec.ks = parse_int_list(o.ks, "--k", 1);
  }
  const sweep::Shard shard = shard_of(o.shard, "eval");
  spec.shard_index = shard.index;
  spec.shard_count = shard.count;

  Benchmark bench = load_benchmark(o.benchmark);
  if (o.limit > 0 && static_cast<int64_t>(bench.items.size()) > o.limit) bench.items.resize(o.limit);
  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  spec.conditions = build_conditions(o, model->config());
  spec.validate();
  spdlog::info("eval: {} problem(s){}, {} sample(s) each, {} condition(s): {}", bench.items.size(),
               shard.count > 1 ? " (shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ")" : "",
               spec.samples, spec.conditions.size(), [&] {
                 std::string s;
                 for (const auto& c : spec.conditions) s += (s.empty() ? "" : ", ") + c.name;
                 return s;
               }());
  EtaLog eta("eval", "samples");
  const EvalRun run = run_eval(*model, o.model.model_dir, bench, spec, [&](const EvalProgress& p) {
    eta(static_cast<size_t>(p.rows_done), static_cast<size_t>(p.rows_total));
  });
  if (shard.count > 1) {
    write_eval_shard(o.out, run, shard.index, shard.count);
    spdlog::info("wrote shard {}/{} ({} problems, {} samples) under {}/shards; `circuitscope eval merge {}` combines them",
                 shard.index, shard.count, run.problem_ids.size(), run.samples.size(), o.out, o.out);
    return 0;
  }
  const auto summary = eval_summary(run.settings, run.problem_ids, run.samples);
  write_eval_run(o.out, run, summary);
  spdlog::info("wrote {}/samples.jsonl and {}/summary.json", o.out, o.out);
  std::cout << format_eval_table(summary);
  return 0;
}

int run_eval_merge(const EvalOptions& o) {
  const EvalRun run = merge_eval_shards(o.dir);
  const auto summary = eval_summary(run.settings, run.problem_ids, run.samples);
  write_eval_run(o.dir, run, summary);
  spdlog::info("merged {} problems, {} samples into {}/samples.jsonl and {}/summary.json", run.problem_ids.size(),
               run.samples.size(), o.dir, o.dir);
  std::cout << format_eval_table(summary);
  return 0;
}

CommandRegistrar reg_cmd_eval(
    {"eval", "Benchmark accuracy (pass@k, success@k) under head interventions, with random-head controls",
     [](CLI::App* sub) {
       auto o = std::make_shared<EvalOptions>();
       sub->add_option("model_dir", o->model.model_dir, "Hugging Face model directory");
       add_model_options(sub, o->model, /*positional_model=*/false);
       sub->add_option("--benchmark", o->benchmark, "JSONL problems {\"id\", \"problem\", \"answer\"} (+ choices, aliases)");
       sub->add_option("--out", o->out, "output folder: samples.jsonl, summary.json (shards: shards/I-of-N.*)");
       sub->add_flag("--chat", o->chat, "render each problem as a user message with the model's chat template");
       sub->add_option("--think", o->think, "enable_thinking for the chat template: on or off")->check(CLI::IsMember({"on", "off"}));
       sub->add_option("--system", o->system, "system message (with --chat)");
       sub->add_option("--template", o->template_file, "Jinja chat template file overriding the model's");
       sub->add_option("--prompt-template", o->prompt_template,
                       "the user message, with {problem} (and {choices}); e.g. \"{problem}\\nPlease reason step by step, "
                       "and put your final answer within \\boxed{}.\"");
       sub->add_option("--samples", o->samples, "samples per problem (n)")->check(CLI::PositiveNumber);
       sub->add_option("--k", o->ks, "k values for pass@k and success@k, comma-separated (default: 1, 2, 4, ... up to n, and n)");
       add_sampling_options(sub, o->sampling, "sampling seed: each (problem id, sample) gets its own seed from it");
       sub->add_option("--max-new-tokens", o->max_new_tokens, "tokens per response (a longer one counts as cut)")
           ->check(CLI::PositiveNumber);
       sub->add_option("--batch-size", o->batch_size, "responses generated together")->check(CLI::PositiveNumber);
       sub->add_option("--limit", o->limit, "only the first N problems")->check(CLI::NonNegativeNumber);
       sub->add_option("--ablate-heads", o->ablate, "condition 'ablate': these heads zeroed (or --mode mean): L.H,L.H");
       sub->add_option("--scale-heads", o->scale, "condition 'scale': L.H=F,... (or L.H with --factor F)");
       sub->add_option("--heads-from", o->heads_from, "a `compare` JSON: take a head set from it (--set)");
       sub->add_option("--set", o->set, "emergent, retained or lost (with --heads-from)")
           ->check(CLI::IsMember({"emergent", "retained", "lost"}));
       sub->add_option("--mode", o->mode, "zero, mean or scale (default zero); mean: the head's mean output over "
                                          "the benchmark prompts")->check(CLI::IsMember({"zero", "mean", "scale"}));
       sub->add_option("--max-heads", o->max_heads,
                       "with --set: only the K most important heads of the set (compare orders them by importance)")
           ->check(CLI::NonNegativeNumber);
       sub->add_option("--factor", o->factor, "scaling factor for --mode scale (e.g. 1.3 or 0.5)");
       sub->add_option("--random-control", o->random_control,
                       "K random head sets per head condition, of the same size and from the same layers")
           ->check(CLI::NonNegativeNumber);
       sub->add_option("--control-seed", o->control_seed, "seed of the random head sets (default: --seed)");
       sub->add_option("--condition", o->conditions,
                       "NAME:none | NAME:zero:HEADS | NAME:mean:HEADS | NAME:scale:L.H=F,... | NAME:scale=F:HEADS, "
                       "HEADS = L.H,L.H or @emergent|@retained|@lost (repeatable)");
       sub->add_option("--shard", o->shard, "I/N: only the I-th of N blocks of problems (default: from a SLURM array)");
       sub->add_option("--bootstrap", o->bootstrap, "bootstrap resamples for the intervals")->check(CLI::PositiveNumber);
       CLI::App* merge = sub->add_subcommand("merge", "Combine the shards of DIR into samples.jsonl and summary.json");
       merge->add_option("dir", o->dir, "the --out folder of the shards")->required();
       sub->footer(
           "Every condition runs on the same problems with the same per-sample seeds, so differences to the baseline "
           "are paired. Grading: docs/grading.md; outputs, loops and statistics: docs/evaluation.md.");
       return [o, merge] {
         if (merge->parsed()) return run_eval_merge(*o);
         return run_eval_command(*o);
       };
     }});

}  // namespace
}  // namespace circuitscope::app
