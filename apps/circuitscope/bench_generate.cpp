// circuitscope bench generate: sampled tokens/s with the KV cache at several batch sizes, against
// the token throughput of bare forwards of the same shape, and the cost of eval's head
// interventions (zeroed and scaled heads on hook_z) per generated token.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench.hpp"
#include "circuitscope/eval.hpp"
#include "circuitscope/generate.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/runtime.hpp"
#include "synthetic.hpp"

namespace circuitscope::app {
namespace {

struct BenchGenerateOptions {
  SyntheticShape shape;
  std::string batches = "1,8,32";
  int64_t prompt = 32;
  int64_t new_tokens = 64;
  int64_t heads = 8;  // heads intervened on (half zeroed, half scaled)
  std::string dtype = "f32";
  std::string device = "cpu";
  int iters = 3;
};

double gen_median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run_bench_generate(const BenchGenerateOptions& o) {
  c10::AutoGradMode no_grad(false);
  const ModelConfig cfg = synthetic_config(o.shape);
  auto model = HookedTransformer::from_tensors(cfg, synthetic_weights(cfg, 0), {o.dtype, o.device});
  const auto dev = model->device();
  // Heads spread over the layers, alternately zeroed and scaled x1.3 (eval's two cheap modes).
  EvalCondition zero, scale;
  zero.name = "zero";
  zero.mode = HeadMode::kZero;
  scale.name = "scale";
  scale.mode = HeadMode::kScale;
  for (int64_t i = 0; i < o.heads; ++i) {
    HeadIntervention h{(i * 7) % cfg.n_layers, (i * 3) % cfg.n_heads, 1.3};
    (i % 2 ? scale : zero).heads.push_back(h);
  }
  const RuntimeInfo rt = runtime_info();
  std::printf("bench generate: layers=%lld d_model=%lld heads=%lld kv_heads=%lld d_mlp=%lld vocab=%lld prompt=%lld new=%lld "
              "dtype=%s device=%s\n",
              (long long)cfg.n_layers, (long long)cfg.d_model, (long long)cfg.n_heads, (long long)cfg.n_kv_heads,
              (long long)cfg.d_mlp, (long long)cfg.vocab_size, (long long)o.prompt, (long long)o.new_tokens,
              o.dtype.c_str(), dev.str().c_str());
  std::printf("runtime: %s (%s), %d torch threads; median of %d interleaved iterations; sampling at temperature 1 with "
              "one generator per row (eval's path), no EOS\n",
              rt.blas_name.c_str(), rt.blas_parallel.c_str(), rt.torch_threads, o.iters);
  std::printf("%6s %14s %16s %8s %16s %10s\n", "batch", "gen tokens/s", "forward tokens/s", "ratio", "hooks tokens/s",
              "overhead");
  for (int64_t B : parse_int_list(o.batches, "--batches", 1)) {
    std::vector<std::vector<int64_t>> prompts(B);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < o.prompt; ++t) prompts[b].push_back((b * 131 + t * 17 + 5) % cfg.vocab_size);
    GenerateOptions g;
    g.max_new_tokens = o.new_tokens;
    g.sampling.greedy = false;
    g.sampling.temperature = 1.0;
    for (int64_t b = 0; b < B; ++b) g.row_seeds.push_back(1000 + b);
    const at::Tensor ids = at::randint(cfg.vocab_size, {B, o.prompt + o.new_tokens}, at::TensorOptions().dtype(at::kLong)).to(dev);
    const auto timed = [&](const std::function<void()>& f) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      if (dev.is_cuda()) (void)at::zeros({1}, at::TensorOptions().device(dev)).sum().item<float>();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    const auto gen_plain = [&] { (void)generate(*model, prompts, g); };
    const auto gen_hooked = [&] {
      auto a = apply_condition(model->hooks(), zero, {}, cfg.n_heads);
      auto b = apply_condition(model->hooks(), scale, {}, cfg.n_heads);
      (void)generate(*model, prompts, g);
    };
    const auto fwd = [&] { (void)model->forward(ids); };
    gen_plain();  // warm-up
    gen_hooked();
    fwd();
    std::vector<double> tg, th, tf;
    for (int i = 0; i < o.iters; ++i) {
      tg.push_back(timed(gen_plain));
      th.push_back(timed(gen_hooked));
      tf.push_back(timed(fwd));
      spdlog::info("batch {} iteration {}/{}: generate {:.3f} s, with hooks {:.3f} s, forward {:.3f} s", B, i + 1, o.iters,
                   tg.back(), th.back(), tf.back());
    }
    const double gen_tps = static_cast<double>(B * o.new_tokens) / gen_median(tg);
    const double hook_tps = static_cast<double>(B * o.new_tokens) / gen_median(th);
    const double fwd_tps = static_cast<double>(B * (o.prompt + o.new_tokens)) / gen_median(tf);
    std::printf("%6lld %14.1f %16.1f %8.3f %16.1f %9.1f%%\n", (long long)B, gen_tps, fwd_tps, gen_tps / fwd_tps, hook_tps,
                100.0 * (gen_median(th) - gen_median(tg)) / gen_median(tg));
  }
  std::printf("gen: new tokens/s of generate (prefill included); forward: tokens/s of one forward over the whole "
              "[batch, prompt+new] sequence; ratio = gen/forward; hooks: generate with %lld heads zeroed or scaled; "
              "overhead = extra time per generated token (target < 5%%)\n",
              (long long)o.heads);
  return 0;
}

BenchRegistrar reg_bench_generate({"generate", "Sampled tokens/s with the KV cache vs bare forwards, and the cost of head interventions",
                                   [](CLI::App* sub) {
                                     auto o = std::make_shared<BenchGenerateOptions>();
                                     add_synthetic_shape_options(sub, o->shape);
                                     sub->add_option("--batches", o->batches, "batch sizes, comma-separated");
                                     sub->add_option("--prompt", o->prompt, "prompt tokens per row")->check(CLI::PositiveNumber);
                                     sub->add_option("--new-tokens", o->new_tokens, "tokens generated per row")->check(CLI::PositiveNumber);
                                     sub->add_option("--intervened-heads", o->heads, "heads zeroed or scaled in the hooked runs")
                                         ->check(CLI::PositiveNumber);
                                     sub->add_option("--dtype", o->dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
                                     sub->add_option("--device", o->device, "cpu or cuda");
                                     sub->add_option("--iters", o->iters, "timed iterations (median reported)")->check(CLI::PositiveNumber);
                                     return [o] { return run_bench_generate(*o); };
                                   }});

}  // namespace
}  // namespace circuitscope::app
