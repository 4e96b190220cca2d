// circuitscope bench forward: the hooked model (no hooks / full cache) against a plain libtorch
// forward of the same shape written without any hook machinery.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/runtime.hpp"
#include "synthetic.hpp"

namespace circuitscope::app {
namespace {

struct BenchForwardOptions {
  SyntheticShape shape;
  int64_t seq = 256;
  int64_t batch = 4;
  std::string dtype = "f32";
  std::string device = "cpu";
  int iters = 3;
  int warmup = 1;
};

// The reference point: the same computation as HookedTransformer::forward, written directly.
struct PlainForward {
  const ModelConfig& c;
  const std::map<std::string, at::Tensor>& w;  // HF names, compute dtype
  at::Tensor inv_freq;

  at::Tensor rms(const at::Tensor& x, const at::Tensor& g) const {
    at::Tensor xf = x.to(at::kFloat);
    return g * (xf * at::rsqrt(xf.pow(2).mean(-1, true) + c.rms_norm_eps)).to(x.scalar_type());
  }
  static at::Tensor rot(const at::Tensor& x) {
    const int64_t h = x.size(-1) / 2;
    return at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
  }
  at::Tensor operator()(const at::Tensor& ids) const {
    const int64_t B = ids.size(0), T = ids.size(1), H = c.n_heads, K = c.n_kv_heads, G = H / K, Dh = c.head_dim;
    const auto dt = w.at("model.embed_tokens.weight").scalar_type();
    at::Tensor pos = at::arange(T, at::TensorOptions().dtype(at::kFloat).device(ids.device()));
    at::Tensor f = pos.unsqueeze(-1) * inv_freq;
    at::Tensor emb = at::cat({f, f}, -1);
    at::Tensor cos = emb.cos().to(dt).view({1, T, 1, Dh}), sin = emb.sin().to(dt).view({1, T, 1, Dh});
    at::Tensor causal = at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(ids.device())).triu(1);
    at::Tensor mask = at::zeros({T, T}, cos.options().dtype(dt)).masked_fill(causal, -1e30f);
    at::Tensor x = at::embedding(w.at("model.embed_tokens.weight"), ids);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      auto W = [&](const char* s) -> const at::Tensor& { return w.at("model.layers." + std::to_string(l) + "." + s); };
      at::Tensor h = rms(x, W("input_layernorm.weight"));
      at::Tensor q = at::linear(h, W("self_attn.q_proj.weight"), W("self_attn.q_proj.bias")).view({B, T, H, Dh});
      at::Tensor k = at::linear(h, W("self_attn.k_proj.weight"), W("self_attn.k_proj.bias")).view({B, T, K, Dh});
      at::Tensor v = at::linear(h, W("self_attn.v_proj.weight"), W("self_attn.v_proj.bias")).view({B, T, K, Dh});
      q = q * cos + rot(q) * sin;
      k = k * cos + rot(k) * sin;
      at::Tensor qg = q.permute({0, 2, 1, 3}).contiguous().view({B, K, G * T, Dh});
      at::Tensor s = at::matmul(qg, k.permute({0, 2, 3, 1})).view({B, H, T, T}) * (1.0 / std::sqrt(double(Dh))) + mask;
      at::Tensor p = at::softmax(s, -1, at::kFloat).to(dt);
      at::Tensor z = at::matmul(p.view({B, K, G * T, T}), v.permute({0, 2, 1, 3})).view({B, H, T, Dh}).transpose(1, 2);
      x = x + at::linear(z.reshape({B, T, H * Dh}), W("self_attn.o_proj.weight"));
      at::Tensor h2 = rms(x, W("post_attention_layernorm.weight"));
      x = x + at::linear(at::silu(at::linear(h2, W("mlp.gate_proj.weight"))) * at::linear(h2, W("mlp.up_proj.weight")),
                         W("mlp.down_proj.weight"));
    }
    return at::linear(rms(x, w.at("model.norm.weight")), w.at("model.embed_tokens.weight"));
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run_bench_forward(const BenchForwardOptions& o) {
  c10::AutoGradMode no_grad(false);
  const ModelConfig cfg = synthetic_config(o.shape);
  const auto dt = parse_compute_dtype(o.dtype);
  const auto dev = parse_device(o.device);
  auto tensors = synthetic_weights(cfg, /*seed=*/0);
  auto model = HookedTransformer::from_tensors(cfg, tensors, {o.dtype, o.device});
  std::map<std::string, at::Tensor> plain_w;
  for (const auto& [k, v] : tensors) plain_w[k] = v.to(dev, dt);
  PlainForward plain{cfg, plain_w, rope_inv_freq(cfg).to(dev)};
  at::Tensor ids = at::randint(cfg.vocab_size, {o.batch, o.seq}, at::TensorOptions().dtype(at::kLong)).to(dev);

  // Every hook point except those that switch on extra computation (per-head result, split q/k/v inputs).
  std::vector<std::string> cache_patterns;
  for (const auto& n : model->hooks().names())
    if (n.find("hook_result") == std::string::npos && n.find("_input") == std::string::npos) cache_patterns.push_back(n);

  auto sync = [&] {
    if (dev.is_cuda()) (void)at::zeros({1}, at::TensorOptions().device(dev)).sum().item<float>();  // forces a device sync
  };
  auto time_one = [&](const std::function<void()>& f) {
    sync();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    sync();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto run_plain = [&] { (void)plain(ids); };
  auto run_hooked = [&] { (void)model->forward(ids); };
  auto run_cached = [&] {
    ActivationCache cache;
    auto h = cache.attach(model->hooks(), cache_patterns);
    (void)model->forward(ids);
  };
  {
    // Same numbers from both implementations, or the comparison means nothing.
    at::Tensor a = plain(ids).to(at::kFloat), b = model->forward(ids).to(at::kFloat);
    const double diff = (a - b).abs().max().item<double>();
    spdlog::info("plain vs hooked max |logit diff| = {:.3g}", diff);
  }
  for (int i = 0; i < o.warmup; ++i) {
    run_plain();
    run_hooked();
    run_cached();
  }
  std::vector<double> tp, th, tc;
  // Interleaved so that drift in machine load affects all three alike.
  for (int i = 0; i < o.iters; ++i) {
    tp.push_back(time_one(run_plain));
    th.push_back(time_one(run_hooked));
    tc.push_back(time_one(run_cached));
    spdlog::info("iteration {}/{}: plain {:.3f} s, hooked {:.3f} s, cached {:.3f} s", i + 1, o.iters, tp.back(), th.back(),
                 tc.back());
  }
  const double tokens = static_cast<double>(o.batch * o.seq);
  const double p = tokens / median(tp), h = tokens / median(th), c = tokens / median(tc);
  const RuntimeInfo rt = runtime_info();
  std::printf("bench forward: layers=%lld d_model=%lld heads=%lld kv_heads=%lld d_mlp=%lld vocab=%lld seq=%lld batch=%lld dtype=%s device=%s\n",
              (long long)cfg.n_layers, (long long)cfg.d_model, (long long)cfg.n_heads, (long long)cfg.n_kv_heads,
              (long long)cfg.d_mlp, (long long)cfg.vocab_size, (long long)o.seq, (long long)o.batch, o.dtype.c_str(),
              dev.str().c_str());
  std::printf("runtime: %s (%s), %d torch threads; median of %d iterations\n", rt.blas_name.c_str(), rt.blas_parallel.c_str(),
              rt.torch_threads, o.iters);
  std::printf("  plain libtorch forward      %10.1f tokens/s\n", p);
  std::printf("  hooked, no hooks attached   %10.1f tokens/s   ratio to plain %.3f\n", h, h / p);
  std::printf("  hooked, full cache (%zu pts) %10.1f tokens/s   ratio to plain %.3f\n", cache_patterns.size(), c, c / p);
  std::printf("  target: no-hooks ratio >= 0.95 -> %s\n", h / p >= 0.95 ? "met" : "NOT met");
  return 0;
}

BenchRegistrar reg_bench_forward({"forward", "Tokens/s of the hooked model (no hooks, full cache) vs a plain libtorch forward",
                    [](CLI::App* sub) {
                      auto o = std::make_shared<BenchForwardOptions>();
                      add_synthetic_shape_options(sub, o->shape);
                      sub->add_option("--seq", o->seq, "positions per sequence");
                      sub->add_option("--batch", o->batch, "sequences per batch");
                      sub->add_option("--dtype", o->dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
                      sub->add_option("--device", o->device, "cpu or cuda");
                      sub->add_option("--iters", o->iters, "timed iterations (median reported)");
                      sub->add_option("--warmup", o->warmup, "untimed iterations first");
                      return [o] { return run_bench_forward(*o); };
                    }});

}  // namespace
}  // namespace circuitscope::app
