// Toy lab training: base (answer directly), SFT (think traces) and GRPO, with checkpoints and resume.
#include <torch/torch.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "circuitscope/error.hpp"
#include "circuitscope/generate.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "toy_internal.hpp"

namespace circuitscope::toy {

namespace fs = std::filesystem;
using nlohmann::json;

TrainOptions resolve_train_defaults(TrainOptions o) {
  if (o.stage != "base" && o.stage != "sft" && o.stage != "grpo")
    throw Error(ErrorCode::kUsage, "toy stage '" + o.stage + "' is not known; expected base, sft or grpo");
  const bool grpo = o.stage == "grpo";
  // GRPO: 32 prompts x 8 samples per step at 2e-4. Smaller batches (8 prompts) left the reward within
  // its noise, and 5e-4 or more drove the KL up and the reward down before it recovered (README, Toy lab).
  if (o.steps <= 0) o.steps = o.stage == "base" ? 600 : o.stage == "sft" ? 800 : 64;
  if (o.batch_size <= 0) o.batch_size = 32;
  if (o.lr <= 0) o.lr = o.stage == "base" ? 3e-3 : o.stage == "sft" ? 2e-3 : 2e-4;
  // Post-training stages keep 8 checkpoints, enough for a checkpoint sweep.
  if (o.save_every <= 0) o.save_every = std::max<int64_t>(1, o.steps / (o.stage == "base" ? 4 : 8));
  if (!o.think) o.think = o.stage != "base";
  if (grpo && o.init_dir.empty()) throw Error(ErrorCode::kUsage, "toy train --stage grpo needs --init (an sft or base checkpoint)");
  if (grpo && o.group_size < 2) throw Error(ErrorCode::kUsage, "--group-size must be at least 2");
  if (o.out_dir.empty()) throw Error(ErrorCode::kUsage, "toy train needs --out");
  return o;
}

namespace {

json spec_json(const ArithSpec& s) {
  return {{"min_operands", s.min_operands}, {"max_operands", s.max_operands}, {"max_operand", s.max_operand}, {"ops", s.ops}};
}

// Everything that determines the run's result; a resumed run must match it.
json options_json(const TrainOptions& o) {
  json j = {{"stage", o.stage},
            {"init", o.init_dir},
            {"seed", o.seed},
            {"steps", o.steps},
            {"batch_size", o.batch_size},
            {"lr", o.lr},
            {"weight_decay", o.weight_decay},
            {"warmup_fraction", o.warmup_fraction},
            {"grad_clip", o.grad_clip},
            {"think", *o.think}};
  if (o.init_dir.empty())
    j["shape"] = {{"layers", o.shape.layers}, {"d_model", o.shape.d_model}, {"heads", o.shape.heads},
                  {"kv_heads", o.shape.kv_heads}, {"d_mlp", o.shape.d_mlp}, {"max_positions", o.shape.max_positions},
                  {"tie_embeddings", o.shape.tie_embeddings}};
  if (o.stage == "grpo")
    j["grpo"] = {{"group_size", o.group_size}, {"max_new_tokens", o.max_new_tokens}, {"temperature", o.temperature},
                 {"clip_eps", o.clip_eps},     {"kl_beta", o.kl_beta},               {"format_reward", o.format_reward},
                 {"adv_eps", o.adv_eps},       {"iterations", o.iterations}};
  return j;
}

void write_json_file(const fs::path& p, const json& j) { write_file_atomically(p.string(), j.dump(2) + "\n"); }

// Keeps the lines of a JSONL log whose "step" is at most `step` (a resumed run rewrites the rest).
void truncate_log(const fs::path& p, int64_t step) {
  std::ifstream in(p);
  if (!in) return;
  std::vector<std::string> keep;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      if (json::parse(line).at("step").get<int64_t>() <= step) keep.push_back(line);
    } catch (const json::exception&) {
    }
  }
  in.close();
  std::string text;
  for (const auto& l : keep) text += l + "\n";
  write_file_atomically(p.string(), text);
}

std::mt19937_64 step_rng(uint64_t seed, int64_t step, uint64_t salt) {
  return std::mt19937_64(detail::splitmix64(detail::splitmix64(seed ^ salt) + static_cast<uint64_t>(step)));
}

double lr_at(const TrainOptions& o, int64_t step) {
  // Linear warmup, then cosine decay to 10% of the peak.
  const int64_t warm = std::max<int64_t>(1, static_cast<int64_t>(std::round(o.warmup_fraction * o.steps)));
  if (step <= warm) return o.lr * static_cast<double>(step) / static_cast<double>(warm);
  const double t = static_cast<double>(step - warm) / static_cast<double>(std::max<int64_t>(1, o.steps - warm));
  return o.lr * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * t)));
}

// Right-padded prompt+completion batch; `mask` [N,T-1] marks the positions that predict completion tokens.
struct SeqBatch {
  at::Tensor ids;      // [N,T]
  at::Tensor targets;  // [N,T-1]
  at::Tensor mask;     // [N,T-1] float
};

SeqBatch make_batch(const std::vector<std::vector<int64_t>>& prompts, const std::vector<std::vector<int64_t>>& completions,
                    int64_t pad_id) {
  const int64_t N = static_cast<int64_t>(prompts.size());
  int64_t T = 2;
  for (int64_t i = 0; i < N; ++i) T = std::max<int64_t>(T, prompts[i].size() + completions[i].size());
  std::vector<int64_t> ids(N * T, pad_id);
  std::vector<float> mask(N * (T - 1), 0.f);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t pl = static_cast<int64_t>(prompts[i].size()), cl = static_cast<int64_t>(completions[i].size());
    std::copy(prompts[i].begin(), prompts[i].end(), ids.begin() + i * T);
    std::copy(completions[i].begin(), completions[i].end(), ids.begin() + i * T + pl);
    for (int64_t j = 0; j < cl; ++j) mask[i * (T - 1) + pl + j - 1] = 1.f;
  }
  SeqBatch b;
  b.ids = at::from_blob(ids.data(), {N, T}, at::kLong).clone();
  b.targets = b.ids.narrow(1, 1, T - 1).contiguous();
  b.mask = at::from_blob(mask.data(), {N, T - 1}, at::kFloat).clone();
  return b;
}

// log p(target) at every position: [N,T-1].
at::Tensor token_logprobs(HookedTransformer& m, const SeqBatch& b) {
  const at::Tensor logits = m.forward(b.ids).to(at::kFloat);
  const at::Tensor lp = at::log_softmax(logits.narrow(1, 0, logits.size(1) - 1), -1);
  return lp.gather(-1, b.targets.unsqueeze(-1)).squeeze(-1);
}

struct Checkpoint {
  int64_t step = 0;
  fs::path dir;
};

std::optional<Checkpoint> last_checkpoint(const fs::path& out) {
  std::optional<Checkpoint> best;
  if (!fs::is_directory(out)) return best;
  static const std::regex re("checkpoint-([0-9]+)");
  for (const auto& e : fs::directory_iterator(out)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || !std::regex_match(name, m, re)) continue;
    // Only complete checkpoints count: toy_lab.json is written last.
    if (!fs::exists(e.path() / "toy_lab.json") || !fs::exists(e.path() / "optimizer.pt")) continue;
    const int64_t step = std::stoll(m[1].str());
    if (!best || step > best->step) best = Checkpoint{step, e.path()};
  }
  return best;
}

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : o_(o), out_(o.out_dir) {}

  TrainResult run() {
    const auto t0 = std::chrono::steady_clock::now();
    fs::create_directories(out_);
    const json opts = options_json(o_);
    int64_t start = 0;
    std::string model_src = o_.init_dir;
    if (o_.resume) {
      if (auto ck = last_checkpoint(out_)) {
        json saved;
        std::ifstream(ck->dir / "toy_lab.json") >> saved;
        if (saved.value("options", json()) != opts)
          throw Error(ErrorCode::kUsage, "'" + out_.string() + "' holds checkpoints of a run with other options (" +
                                             ck->dir.string() + "/toy_lab.json); use another --out or --no-resume");
        start = ck->step;
        model_src = ck->dir.string();
      }
    }
    if (!model_src.empty()) {
      model_ = HookedTransformer::from_pretrained(model_src);
      tokenizer_dir_ = model_src;
    } else {
      model_ = init_toy_model(o_.shape, o_.seed);
    }
    if (model_->config().architecture != "Qwen2ForCausalLM")
      throw Error(ErrorCode::kUnsupported, "toy training needs a Qwen2ForCausalLM checkpoint; '" + model_src + "' is " +
                                               model_->config().architecture);
    tok_ = detail::ChatTokenizer::load(tokenizer_dir_.empty() ? write_temp_tokenizer() : tokenizer_dir_);
    if (tok_.tokenizer->vocab_size() > model_->config().vocab_size)
      throw Error(ErrorCode::kFormat, "the tokenizer has " + std::to_string(tok_.tokenizer->vocab_size()) +
                                          " tokens but the model only " + std::to_string(model_->config().vocab_size));
    if (o_.stage == "grpo") {
      ref_ = HookedTransformer::from_pretrained(o_.init_dir);
      ref_->set_requires_grad(false);
    }
    model_->set_requires_grad(true);
    std::vector<torch::Tensor> decay, no_decay;
    for (auto& [name, t] : model_->named_parameters()) (t.dim() >= 2 ? decay : no_decay).push_back(t);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(o_.lr).betas({0.9, 0.95}).weight_decay(o_.weight_decay)));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(o_.lr).betas({0.9, 0.95}).weight_decay(0.0)));
    torch::optim::AdamW opt(std::move(groups));
    if (start > 0) {
      torch::load(opt, (fs::path(model_src) / "optimizer.pt").string());
      spdlog::info("resuming {} from {} (step {} of {})", o_.stage, model_src, start, o_.steps);
    }
    truncate_log(out_ / "train_log.jsonl", start);
    if (o_.stage == "grpo") truncate_log(out_ / "rewards.jsonl", start);

    std::vector<torch::Tensor> params;
    for (auto& [name, t] : model_->named_parameters()) params.push_back(t);
    detail::Progress progress(o_.stage, o_.steps, start, o_.progress);
    TrainResult res;
    res.resumed_from = start;
    for (int64_t step = start + 1; step <= o_.steps; ++step) {
      const double lr = lr_at(o_, step);
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      json log = {{"step", step}, {"lr", lr}};
      std::string info;
      if (o_.stage == "grpo") {
        grpo_step(step, opt, params, log);
        char buf[128];
        std::snprintf(buf, sizeof buf, "reward %.3f acc %.3f kl %.4f", log["mean_reward"].get<double>(),
                      log["accuracy"].get<double>(), log["kl"].get<double>());
        info = buf;
        append_line(out_ / "rewards.jsonl", log);
      } else {
        supervised_step(step, opt, params, log);
        char buf[64];
        std::snprintf(buf, sizeof buf, "loss %.4f", log["loss"].get<double>());
        info = buf;
      }
      res.final_loss = log["loss"].get<double>();
      append_line(out_ / "train_log.jsonl", log);
      progress.update(step, info);
      if (step % o_.save_every == 0 || step == o_.steps) save(out_ / ("checkpoint-" + std::to_string(step)), step, &opt);
      if (o_.stop_after > 0 && step >= o_.stop_after && step < o_.steps) {
        progress.finish();
        res.steps = step;
        res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return res;
      }
    }
    progress.finish();
    save(out_ / "final", o_.steps, nullptr);
    res.steps = o_.steps;
    res.final_dir = (out_ / "final").string();
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
  }

 private:
  std::string write_temp_tokenizer() {
    // A fresh model takes the toy tokenizer; it is written into the output folder's first checkpoint.
    const fs::path dir = out_ / ".tokenizer";
    write_toy_tokenizer(dir.string());
    tokenizer_dir_ = dir.string();
    return tokenizer_dir_;
  }

  void append_line(const fs::path& p, const json& j) {
    std::ofstream f(p, std::ios::app);
    f << j.dump() << "\n";
  }

  void save(const fs::path& dir, int64_t step, torch::optim::AdamW* opt) {
    // toy_lab.json goes last: a folder without it is an incomplete checkpoint and is not resumed from.
    fs::remove(dir / "toy_lab.json");
    save_hf_checkpoint(*model_, dir.string(), tokenizer_dir_);
    if (opt) torch::save(*opt, (dir / "optimizer.pt").string());
    json j = {{"task", "arith"}, {"stage", o_.stage}, {"step", step}, {"think", *o_.think},
              {"spec", spec_json(o_.spec)}, {"eval_fraction", o_.eval_fraction}, {"options", options_json(o_)}};
    write_json_file(dir / "toy_lab.json", j);
  }

  void supervised_step(int64_t step, torch::optim::AdamW& opt, const std::vector<torch::Tensor>& params, json& log) {
    std::mt19937_64 rng = step_rng(o_.seed, step, 0x73667400ULL);
    std::vector<std::vector<int64_t>> prompts, completions;
    for (int64_t i = 0; i < o_.batch_size; ++i) {
      const ArithProblem p = sample_train_problem(o_.spec, o_.eval_fraction, rng);
      prompts.push_back(tok_.prompt_ids(p, *o_.think));
      completions.push_back(tok_.text_ids(target_completion(p, *o_.think)));
    }
    const SeqBatch b = make_batch(prompts, completions, tok_.pad_id);
    const at::Tensor lp = token_logprobs(*model_, b);
    const at::Tensor loss = -(lp * b.mask).sum() / b.mask.sum();
    opt.zero_grad();
    loss.backward();
    const double gnorm = torch::nn::utils::clip_grad_norm_(params, o_.grad_clip);
    opt.step();
    log["loss"] = loss.item<double>();
    log["grad_norm"] = gnorm;
  }

  void grpo_step(int64_t step, torch::optim::AdamW& opt, const std::vector<torch::Tensor>& params, json& log) {
    std::mt19937_64 rng = step_rng(o_.seed, step, 0x6772706fULL);
    const bool think = *o_.think;
    std::vector<ArithProblem> problems;
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t i = 0; i < o_.batch_size; ++i) {
      problems.push_back(sample_train_problem(o_.spec, o_.eval_fraction, rng));
      const auto ids = tok_.prompt_ids(problems.back(), think);
      for (int64_t g = 0; g < o_.group_size; ++g) prompts.push_back(ids);
    }
    GenerateOptions g;
    g.max_new_tokens = o_.max_new_tokens;
    g.sampling.greedy = false;
    g.sampling.temperature = o_.temperature;
    g.sampling.seed = detail::splitmix64(o_.seed * 1000003ULL + static_cast<uint64_t>(step));
    g.eos_ids = model_->config().eos_token_ids;
    g.pad_id = tok_.pad_id;
    const GenerateResult gen = generate(*model_, prompts, g);
    std::vector<double> rewards;
    int64_t correct = 0, total_len = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const ArithProblem& p = problems[i / o_.group_size];
      const auto ans = final_answer(tok_.tokenizer->decode(gen.tokens[i], false), think);
      const bool ok = ans && *ans == p.answer();
      const bool formatted = ans.has_value() && gen.finish_reasons[i] == "eos";
      correct += ok;
      total_len += static_cast<int64_t>(gen.tokens[i].size());
      rewards.push_back((ok ? 1.0 : 0.0) + (formatted ? o_.format_reward : 0.0));
    }
    const std::vector<double> adv = group_advantages(rewards, o_.group_size, o_.adv_eps);
    const SeqBatch b = make_batch(prompts, gen.tokens, tok_.pad_id);
    at::Tensor ref_lp, old_lp;
    {
      c10::AutoGradMode no_grad(false);
      ref_lp = token_logprobs(*ref_, b);
      if (o_.iterations > 1) old_lp = token_logprobs(*model_, b);
    }
    const at::Tensor adv_t = at::tensor(adv, at::kDouble).to(at::kFloat);
    GrpoLossParts parts;
    for (int64_t it = 0; it < o_.iterations; ++it) {
      const at::Tensor lp = token_logprobs(*model_, b);
      parts = grpo_loss(lp, old_lp.defined() ? old_lp : lp.detach(), ref_lp, adv_t, b.mask, o_.clip_eps, o_.kl_beta);
      opt.zero_grad();
      parts.loss.backward();
      torch::nn::utils::clip_grad_norm_(params, o_.grad_clip);
      opt.step();
    }
    double mean_r = 0;
    for (double r : rewards) mean_r += r;
    const double n = static_cast<double>(rewards.size());
    log["mean_reward"] = mean_r / n;
    log["accuracy"] = static_cast<double>(correct) / n;
    log["mean_completion_length"] = static_cast<double>(total_len) / n;
    log["kl"] = parts.kl;
    log["clip_fraction"] = parts.clip_fraction;
    log["loss"] = parts.loss.item<double>();
  }

  TrainOptions o_;
  fs::path out_;
  std::unique_ptr<HookedTransformer> model_, ref_;
  std::string tokenizer_dir_;
  detail::ChatTokenizer tok_;
};

}  // namespace

TrainResult train_toy(const TrainOptions& options) {
  const TrainOptions o = resolve_train_defaults(options);
  Trainer t(o);
  return t.run();
}

}  // namespace circuitscope::toy
