// circuitscope bench attribute: time per example of EAP and EAP-IG(m) on a random-weight model,
// against the floor m x (forward + backward with respect to the inputs, no hooks, no parameter gradients).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <string>

#include "bench.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/phase_timing.hpp"
#include "circuitscope/runtime.hpp"
#include "synthetic.hpp"

namespace circuitscope::app {
namespace {

struct BenchAttributeOptions {
  SyntheticShape shape;
  int64_t seq = 64;
  int64_t batch = 8;
  int ig_steps = 5;
  std::string dtype = "f32";
  std::string device = "cpu";
  std::string kv_edges = "per-query-head";
  int iters = 3;
  std::string profile;  // chrome-trace file of one EAP-IG run, when set
};

// Process CPU seconds (all threads): unlike wall time, it does not count time the machine gave to others.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run_bench_attribute(const BenchAttributeOptions& o) {
  const ModelConfig cfg = synthetic_config(o.shape);
  auto model = HookedTransformer::from_tensors(cfg, synthetic_weights(cfg, 1), {o.dtype, o.device});
  const c10::Device dev = model->device();
  const Graph graph({cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, parse_kv_edges(o.kv_edges)});

  AttributionBatch b;
  at::manual_seed(7);
  b.clean_ids = at::randint(cfg.vocab_size, {o.batch, o.seq}, at::kLong);
  b.corrupted_ids = b.clean_ids.clone();
  b.corrupted_ids.narrow(1, o.seq / 2, 1).copy_(at::randint(cfg.vocab_size, {o.batch, 1}, at::kLong));
  b.answer_ids = at::randint(cfg.vocab_size, {o.batch}, at::kLong);
  b.wrong_ids = at::randint(cfg.vocab_size, {o.batch}, at::kLong);

  auto sync = [&] {
    if (dev.is_cuda()) (void)at::zeros({1}, at::TensorOptions().device(dev)).sum().item<float>();
  };
  double last_cpu = 0;  // CPU seconds of the last timed call
  auto timed = [&](const std::function<void()>& f) {
    sync();
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    sync();
    last_cpu = cpu_seconds() - c0;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // Floor: one forward and a backward to the embeddings (the only leaf requiring grad).
  const at::Tensor ids = b.clean_ids.to(dev);
  auto fwd_bwd = [&] {
    c10::AutoGradMode grad_on(true);
    auto h = model->hooks().add("hook_embed", [](const at::Tensor& x, const HookContext&) {
      return x.detach().requires_grad_(true);
    });
    at::Tensor m = metric_per_example(MetricKind::kLogitDiff, model->forward(ids), b).mean();
    m.backward();
  };
  // The same with the logits at the metric's position only, as eap_scores computes them: a
  // stricter floor (the unembedding of the other positions is left out of it too).
  AttributionBatch b_rows = b;
  b_rows.positions = at::zeros({o.batch}, at::kLong);
  const at::Tensor last = at::full({o.batch, 1}, o.seq - 1, at::TensorOptions().dtype(at::kLong).device(dev));
  auto fwd_bwd_rows = [&] {
    c10::AutoGradMode grad_on(true);
    auto h = model->hooks().add("hook_embed", [](const at::Tensor& x, const HookContext&) {
      return x.detach().requires_grad_(true);
    });
    at::Tensor m = metric_per_example(MetricKind::kLogitDiff, model->forward(ids, {}, nullptr, {}, last), b_rows).mean();
    m.backward();
  };
  EapOptions eap_o;
  EapOptions ig_o;
  ig_o.ig_steps = o.ig_steps;
  auto run_eap = [&] { (void)eap_scores(*model, graph, b, eap_o); };
  auto run_ig = [&] { (void)eap_scores(*model, graph, b, ig_o); };

  fwd_bwd();  // warm-up
  fwd_bwd_rows();
  run_eap();
  if (!o.profile.empty()) {
    // The legacy autograd profiler (one op per event) is in libtorch 1.13 and 2.x alike.
    {
      torch::autograd::profiler::RecordProfile guard(o.profile);
      run_ig();
    }
    {
      torch::autograd::profiler::RecordProfile guard(o.profile + ".floor");
      fwd_bwd();
    }
    spdlog::info("wrote chrome traces of one EAP-IG({}) batch to {} and of one floor run to {}.floor", o.ig_steps, o.profile,
                 o.profile);
  }
  // The phase sums accumulate over the timed EAP-IG runs (read once, after the last).
  auto run_ig_phases = [&] {
    set_phase_timing(true);
    run_ig();
    set_phase_timing(false);
  };
  std::vector<double> tf, te, ti;
  // Per iteration, EAP-IG against the floor measured just before and just after it, in wall and in
  // CPU time: on a shared machine the floor drifts between iterations, and these ratios drift less.
  std::vector<double> ratio_wall, ratio_cpu, ratio_rows, tr;
  for (int i = 0; i < o.iters; ++i) {
    const double r0 = timed(fwd_bwd_rows);
    tf.push_back(timed(fwd_bwd));
    const double f_cpu = last_cpu;
    te.push_back(timed(run_eap));
    ti.push_back(timed(run_ig_phases));
    const double g_cpu = last_cpu;
    const double f2 = timed(fwd_bwd), f2_cpu = last_cpu;
    const double r1 = timed(fwd_bwd_rows);
    tr.push_back(r1);
    ratio_rows.push_back(ti.back() / (o.ig_steps * 0.5 * (r1 + r0)));
    ratio_wall.push_back(ti.back() / (o.ig_steps * 0.5 * (tf.back() + f2)));
    ratio_cpu.push_back(g_cpu / (o.ig_steps * 0.5 * (f_cpu + f2_cpu)));
    spdlog::info("iteration {}/{}: fwd+bwd {:.3f} s and {:.3f} s (metric rows only {:.3f} s and {:.3f} s), EAP {:.3f} s, "
                 "EAP-IG({}) {:.3f} s; ratio {:.3f} (CPU time {:.3f}; against the metric-rows floor {:.3f})",
                 i + 1, o.iters, tf.back(), f2, r0, r1, te.back(), o.ig_steps, ti.back(), ratio_wall.back(), ratio_cpu.back(),
                 ratio_rows.back());
  }
  // The minimum over iterations is reported (the machine's noise only adds time), the median beside it.
  auto min_of = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  const double f = min_of(tf), e = min_of(te), g = min_of(ti), n = static_cast<double>(o.batch);
  const double fm = median_of(tf), em = median_of(te), gm = median_of(ti);
  std::printf("bench attribute: layers=%lld d_model=%lld heads=%lld kv_heads=%lld seq=%lld batch=%lld ig_steps=%d dtype=%s device=%s kv_edges=%s edges=%lld\n",
              (long long)cfg.n_layers, (long long)cfg.d_model, (long long)cfg.n_heads, (long long)cfg.n_kv_heads,
              (long long)o.seq, (long long)o.batch, o.ig_steps, o.dtype.c_str(), dev.str().c_str(), o.kv_edges.c_str(),
              (long long)graph.n_edges());
  std::printf("  (minimum over %d iterations; medians in brackets)\n", o.iters);
  std::printf("  forward+backward (inputs only)   %8.4f s per example [%.4f]\n", f / n, fm / n);
  std::printf("  EAP                              %8.4f s per example [%.4f]   ratio to 1 x floor %.3f [%.3f]\n", e / n,
              em / n, e / f, em / fm);
  std::printf("  EAP-IG(%d)                        %8.4f s per example [%.4f]   ratio to %d x floor %.3f [%.3f] (target <= 1.3)\n",
              o.ig_steps, g / n, gm / n, o.ig_steps, g / (o.ig_steps * f), gm / (o.ig_steps * fm));
  std::printf("  EAP-IG(%d) per iteration against the floors around it: median ratio %.3f (wall), %.3f (CPU time)\n",
              o.ig_steps, median_of(ratio_wall), median_of(ratio_cpu));
  std::printf("  forward+backward, logits at the metric position only %8.4f s per example [%.4f]\n", min_of(tr) / n,
              median_of(tr) / n);
  std::printf("  EAP-IG(%d) per iteration against that floor: median ratio %.3f (wall)\n", o.ig_steps, median_of(ratio_rows));
  std::printf("  EAP-IG(%d) phases, mean wall seconds per batch (cs::batch is the whole call; cs::heads_add is not in cs::post):\n",
              o.ig_steps);
  for (const auto& [name, s] : take_phase_times())
    std::printf("    %-18s %8.3f s  (%.3f floors)\n", name.c_str(), s / o.iters, s / o.iters / fm);
  if (dev.is_cuda())
    std::printf("  peak GPU memory (CUDA caching allocator, allocated) %.1f MiB\n",
                peak_device_memory_bytes(dev) / (1024.0 * 1024.0));
  else
    std::printf("  peak resident memory of the process %.1f MiB\n", peak_resident_bytes() / (1024.0 * 1024.0));
  return 0;
}

BenchRegistrar reg_bench_attribute({"attribute", "Time per example of EAP and EAP-IG against m x (forward + input backward)",
                    [](CLI::App* sub) {
                      auto o = std::make_shared<BenchAttributeOptions>();
                      add_synthetic_shape_options(sub, o->shape);
                      sub->add_option("--seq", o->seq, "positions per sequence")->capture_default_str();
                      sub->add_option("--batch", o->batch, "pairs per batch")->capture_default_str();
                      sub->add_option("--ig-steps", o->ig_steps, "EAP-IG steps m")->capture_default_str()->check(CLI::PositiveNumber);
                      sub->add_option("--dtype", o->dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
                      sub->add_option("--device", o->device, "cpu or cuda");
                      sub->add_option("--kv-edges", o->kv_edges, "per-query-head | per-kv-head")->capture_default_str();
                      sub->add_option("--iters", o->iters, "timed iterations (minimum and median reported)")->capture_default_str();
                      sub->add_option("--profile", o->profile, "write chrome traces (chrome://tracing) of one EAP-IG batch here and of one floor run to FILE.floor");
                      return [o] { return run_bench_attribute(*o); };
                    }});

}  // namespace
}  // namespace circuitscope::app
