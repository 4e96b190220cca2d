// circuitscope toy train --task arith --stage base|sft|grpo --out DIR [--init DIR] ...
// circuitscope toy eval CKPT [--n 200] [--think on|off] [--seed S] [--json]
// circuitscope toy problems CKPT [--n 64] [--seed S] --out problems.jsonl
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/toy.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct ToyCliOptions {
  toy::TrainOptions train;
  std::string task = "arith";
  std::string think;  // "", on, off
  bool no_resume = false;
  bool quiet_progress = false;
  // eval
  std::string ckpt;
  toy::EvalOptions eval;
  std::string eval_think;
  bool json = false;
  int64_t show = 3;
  std::string dtype = "f32", device = "cpu";
  // task overrides for eval (default: the checkpoint's toy_lab.json)
  int min_operands = 0, max_operands = 0;
  int64_t max_operand = -1;
  std::string ops;
  std::vector<std::string> ablate, scale;  // eval: head interventions
  // problems
  std::string problems_out;
};

std::optional<bool> parse_on_off(const std::string& s, const std::string& option) {
  if (s.empty()) return std::nullopt;
  if (s == "on") return true;
  if (s == "off") return false;
  throw Error(ErrorCode::kUsage, option + " takes on or off; found '" + s + "'");
}

void apply_spec_overrides(const ToyCliOptions& o, toy::ArithSpec& spec) {
  if (o.min_operands > 0) spec.min_operands = o.min_operands;
  if (o.max_operands > 0) spec.max_operands = o.max_operands;
  if (o.max_operand >= 0) spec.max_operand = o.max_operand;
  if (!o.ops.empty()) spec.ops = o.ops;
}

int run_train(ToyCliOptions& o) {
  if (o.task != "arith") throw Error(ErrorCode::kUsage, "toy task '" + o.task + "' is not known; expected arith");
  toy::TrainOptions t = o.train;
  t.think = parse_on_off(o.think, "--think");
  t.resume = !o.no_resume;
  t.progress = !o.quiet_progress;
  apply_spec_overrides(o, t.spec);
  t = toy::resolve_train_defaults(t);
  spdlog::info("toy {}: {} steps, batch {}, lr {:g}, think {}, seed {}{}", t.stage, t.steps, t.batch_size, t.lr,
               *t.think ? "on" : "off", t.seed, t.init_dir.empty() ? "" : ", from " + t.init_dir);
  const toy::TrainResult r = toy::train_toy(t);
  spdlog::info("toy {}: done in {:.1f} s{}; final checkpoint {}", t.stage, r.seconds,
               r.resumed_from ? " (resumed from step " + std::to_string(r.resumed_from) + ")" : "", r.final_dir);
  std::cout << r.final_dir << "\n";
  return 0;
}

int run_eval(ToyCliOptions& o) {
  toy::EvalOptions e = o.eval;
  const auto info = toy::read_toy_info(o.ckpt);
  if (info) {
    e.spec = info->spec;
    e.eval_fraction = info->eval_fraction;
    e.think = info->think;
  }
  apply_spec_overrides(o, e.spec);
  if (auto th = parse_on_off(o.eval_think, "--think")) e.think = *th;
  auto model = HookedTransformer::from_pretrained(o.ckpt, {o.dtype, o.device});
  // Head interventions as in the Thinking Sparks ablations: zero (--ablate-head) or scale a head's
  // output during the whole greedy decode. "2.5 3.1" in one argument is accepted too.
  std::vector<HeadIntervention> edits;
  auto add_specs = [&](const std::vector<std::string>& specs, bool scale) {
    for (const auto& arg : specs) {
      std::istringstream in(arg);
      for (std::string s; in >> s;) {
        const bool has_factor = s.find_first_of("=:") != std::string::npos;
        if (has_factor != scale)
          throw Error(ErrorCode::kUsage, scale ? "--scale-head takes LAYER.HEAD=FACTOR; found '" + s + "'"
                                               : "--ablate-head takes LAYER.HEAD; found '" + s + "'");
        edits.push_back(parse_head_intervention(s));
      }
    }
  };
  add_specs(o.ablate, false);
  add_specs(o.scale, true);
  auto handles = apply_head_interventions(model->hooks(), edits, model->config().n_heads);
  const toy::EvalResult r = toy::evaluate_toy(*model, o.ckpt, e);
  if (o.json) {
    nlohmann::json j = {{"checkpoint", o.ckpt},
                        {"stage", info ? info->stage : ""},
                        {"think", e.think},
                        {"n", r.n},
                        {"correct", r.correct},
                        {"answered", r.answered},
                        {"accuracy", r.accuracy},
                        {"mean_completion_tokens", r.mean_completion_tokens},
                        {"seed", e.seed},
                        {"ablated", o.ablate},
                        {"scaled", o.scale}};
    nlohmann::json ex = nlohmann::json::array();
    for (int64_t i = 0; i < std::min<int64_t>(o.show, r.examples.size()); ++i) {
      const auto& x = r.examples[i];
      ex.push_back({{"problem", x.problem}, {"answer", x.answer}, {"completion", x.completion},
                    {"predicted", x.predicted ? nlohmann::json(*x.predicted) : nlohmann::json(nullptr)}});
    }
    j["examples"] = ex;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "checkpoint   " << o.ckpt << (info ? " (" + info->stage + ", step " + std::to_string(info->step) + ")" : "")
            << "\nthink        " << (e.think ? "on" : "off") << "\nheld-out     " << r.n << " problems (seed " << e.seed
            << ")\naccuracy     " << r.correct << "/" << r.n << " = " << r.accuracy << "\nwell-formed  " << r.answered
            << "/" << r.n << "\nmean length  " << r.mean_completion_tokens << " tokens\n";
  if (!edits.empty()) std::cout << "heads        " << edits.size() << " head intervention(s) during decoding\n";
  for (int64_t i = 0; i < std::min<int64_t>(o.show, r.examples.size()); ++i) {
    const auto& x = r.examples[i];
    std::string c = x.completion;
    for (size_t p; (p = c.find('\n')) != std::string::npos;) c.replace(p, 1, "\\n");
    std::cout << "example      " << x.problem << " = " << x.answer << "  ->  " << c << "\n";
  }
  return 0;
}

void add_spec_options(CLI::App* s, ToyCliOptions& o) {
  s->add_option("--min-operands", o.min_operands, "fewest operands per problem");
  s->add_option("--max-operands", o.max_operands, "most operands per problem");
  s->add_option("--max-operand", o.max_operand, "operands are drawn from [0, N] (default task: 2-3 operands in [0, 9], ops +-*)");
  s->add_option("--ops", o.ops, "operators to use, e.g. +-*");
}

// Held-out problems of a checkpoint's task as a prompts file for `pairs` (JSONL: prompt, problem, answer).
int run_problems(ToyCliOptions& o) {
  toy::EvalOptions e = o.eval;
  const auto info = toy::read_toy_info(o.ckpt);
  if (!info) throw Error(ErrorCode::kInput, "'" + o.ckpt + "' has no toy_lab.json: not a toy checkpoint");
  e.spec = info->spec;
  apply_spec_overrides(o, e.spec);
  const auto problems = toy::sample_eval_problems(e.spec, info->eval_fraction, e.n, e.seed);
  std::string text;
  for (const auto& p : problems)
    text += nlohmann::json{{"prompt", toy::user_message(p)}, {"problem", p.text()}, {"answer", p.answer()}}.dump() + "\n";
  write_file_atomically(o.problems_out, text);
  spdlog::info("wrote {} held-out problems to {}", problems.size(), o.problems_out);
  return 0;
}

CommandRegistrar reg_cmd_toy({"toy", "Toy lab: train tiny Qwen2 models on arithmetic (base, SFT, GRPO) and evaluate them",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<ToyCliOptions>();
                        sub->require_subcommand(1);
                        CLI::App* tr = sub->add_subcommand("train", "train a toy checkpoint (Hugging Face folder)");
                        auto& t = o->train;
                        tr->add_option("--task", o->task, "task (arith)");
                        tr->add_option("--stage", t.stage, "base | sft | grpo")->required()->check(CLI::IsMember({"base", "sft", "grpo"}));
                        tr->add_option("--out", t.out_dir, "output folder (checkpoint-STEP/, final/, logs)")->required();
                        tr->add_option("--init", t.init_dir, "starting checkpoint (sft: a base one; grpo: sft or base, also the KL reference)");
                        tr->add_option("--steps", t.steps, "optimizer steps (default: base 600, sft 800, grpo 64)");
                        tr->add_option("--save-every", t.save_every, "checkpoint interval in steps (default: base steps/4, sft and grpo steps/8)");
                        tr->add_option("--seed", t.seed, "seed for initialisation, data and sampling");
                        tr->add_option("--batch-size", t.batch_size, "sequences per step (grpo: prompts per step); default 32");
                        tr->add_option("--lr", t.lr, "peak learning rate (default: base 3e-3, sft 2e-3, grpo 2e-4)");
                        tr->add_option("--weight-decay", t.weight_decay, "AdamW weight decay on matrices");
                        tr->add_option("--warmup", t.warmup_fraction, "warmup share of the steps (cosine decay after)");
                        tr->add_option("--think", o->think, "on | off (default: off for base, on for sft and grpo)");
                        tr->add_option("--eval-fraction", t.eval_fraction, "share of problems held out for evaluation (by hash)");
                        tr->add_option("--layers", t.shape.layers, "model layers (fresh models)");
                        tr->add_option("--d-model", t.shape.d_model, "residual width (fresh models)");
                        tr->add_option("--heads", t.shape.heads, "query heads (fresh models)");
                        tr->add_option("--kv-heads", t.shape.kv_heads, "key/value heads (fresh models)");
                        tr->add_option("--d-mlp", t.shape.d_mlp, "MLP width (fresh models)");
                        tr->add_option("--group-size", t.group_size, "grpo: completions per prompt");
                        tr->add_option("--max-new-tokens", t.max_new_tokens, "grpo: completion length limit");
                        tr->add_option("--temperature", t.temperature, "grpo: sampling temperature");
                        tr->add_option("--clip-eps", t.clip_eps, "grpo: PPO clip range");
                        tr->add_option("--kl-beta", t.kl_beta, "grpo: KL penalty weight (k3 estimator)");
                        tr->add_option("--format-reward", t.format_reward, "grpo: reward for a well-formed answer (default 0)");
                        tr->add_option("--iterations", t.iterations, "grpo: policy updates per batch of samples");
                        tr->add_flag("--no-resume", o->no_resume, "start over even if OUT has checkpoints");
                        tr->add_flag("--no-progress", o->quiet_progress, "no progress line");
                        add_spec_options(tr, *o);
                        tr->footer("Every checkpoint is a Hugging Face folder (config.json, model.safetensors, tokenizer.json, "
                                   "tokenizer_config.json) plus toy_lab.json and optimizer.pt. A rerun with the same --out "
                                   "resumes from the last checkpoint. GRPO writes OUT/rewards.jsonl.");
                        CLI::App* ev = sub->add_subcommand("eval", "held-out accuracy of a toy checkpoint (greedy)");
                        ev->add_option("checkpoint", o->ckpt, "toy checkpoint folder")->required();
                        ev->add_option("--n", o->eval.n, "problems to evaluate");
                        ev->add_option("--think", o->eval_think, "on | off (default: as the checkpoint was trained)");
                        ev->add_option("--seed", o->eval.seed, "which held-out problems");
                        ev->add_option("--max-new-tokens", o->eval.max_new_tokens, "completion length limit");
                        ev->add_option("--show", o->show, "example completions to print");
                        ev->add_option("--dtype", o->dtype, "f32 or bf16");
                        ev->add_option("--device", o->device, "cpu, cuda or cuda:N");
                        ev->add_flag("--json", o->json, "print JSON");
                        ev->add_option("--ablate-head", o->ablate, "zero a head's output while decoding: LAYER.HEAD (repeatable, or space-separated)");
                        ev->add_option("--scale-head", o->scale, "scale a head's output: LAYER.HEAD=FACTOR (e.g. 3.1=1.3)");
                        add_spec_options(ev, *o);
                        CLI::App* pr = sub->add_subcommand("problems", "held-out problems of a checkpoint's task, as a prompts file for pairs");
                        pr->add_option("checkpoint", o->ckpt, "toy checkpoint folder (its task and split)")->required();
                        pr->add_option("--n", o->eval.n, "number of problems")->capture_default_str();
                        pr->add_option("--seed", o->eval.seed, "which held-out problems")->capture_default_str();
                        pr->add_option("--out", o->problems_out, "JSONL: prompt, problem, answer")->required();
                        return [o, tr, ev, pr]() -> int {
                          if (tr->parsed()) return run_train(*o);
                          if (ev->parsed()) return run_eval(*o);
                          if (pr->parsed()) return run_problems(*o);
                          throw Error(ErrorCode::kUsage, "toy needs a subcommand: train, eval or problems");
                        };
                      }});

}  // namespace
}  // namespace circuitscope::app
