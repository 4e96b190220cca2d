// circuitscope bench checkpoint OUT_DIR: writes a random-weight model of a given shape as an ordinary
// Hugging Face folder (config.json, safetensors shards, model.safetensors.index.json), for timing
// `attribute` end to end on a real folder at sizes whose weights cannot be downloaded here (issue #21).
// Weights are generated and written one tensor at a time, so an 8B folder needs one tensor in memory.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/safetensors.hpp"
#include "synthetic.hpp"

namespace circuitscope::app {
namespace {

namespace fs = std::filesystem;

struct BenchCheckpointOptions {
  std::string out;
  SyntheticShape shape;
  std::string dtype = "bf16";
  double shard_mib = 4768;  // Hugging Face's default max_shard_size of 5 GB
  uint64_t seed = 0;
};

// Consecutive tensors, a new shard once the next tensor would pass the limit (a tensor larger than
// the limit gets a shard of its own), as transformers' save_pretrained splits them.
std::vector<std::vector<SyntheticTensor>> split_shards(const std::vector<SyntheticTensor>& plan, size_t elem_bytes,
                                                       uint64_t limit) {
  std::vector<std::vector<SyntheticTensor>> shards(1);
  uint64_t used = 0;
  for (const auto& t : plan) {
    uint64_t n = elem_bytes;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    if (!shards.back().empty() && used + n > limit) {
      shards.emplace_back();
      used = 0;
    }
    shards.back().push_back(t);
    used += n;
  }
  return shards;
}

int run_bench_checkpoint(const BenchCheckpointOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  if (fs::exists(o.out, ec) && !fs::is_empty(o.out, ec))
    throw Error(ErrorCode::kUsage, "output folder '" + o.out + "' exists and is not empty; give a new or empty one");
  fs::create_directories(o.out, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create folder '" + o.out + "': " + ec.message());
  if (!(o.shard_mib > 0)) throw Error(ErrorCode::kUsage, "--shard-mib must be positive");

  nlohmann::json hf = synthetic_hf_config(o.shape);
  const ModelConfig cfg = synthetic_config(o.shape);  // validates the shape as loading will
  const bool bf16 = o.dtype == "bf16";
  const c10::ScalarType dt = bf16 ? at::kBFloat16 : at::kFloat;
  const StDType st = from_scalar_type(dt);
  hf["torch_dtype"] = bf16 ? "bfloat16" : "float32";

  const auto plan = synthetic_plan(cfg);
  const auto shards = split_shards(plan, st_dtype_size(st), static_cast<uint64_t>(o.shard_mib * 1024 * 1024));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  int64_t params = 0;
  char name[64];
  for (size_t s = 0; s < shards.size(); ++s) {
    if (shards.size() == 1)
      std::snprintf(name, sizeof name, "model.safetensors");
    else
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<TensorSpec> specs;
    for (const auto& t : shards[s]) specs.push_back({t.name, st, t.shape});
    SafetensorsWriter w((fs::path(o.out) / name).string(), specs, {{"format", "pt"}});
    for (const auto& t : shards[s]) {
      at::Tensor x = make_synthetic(t, gen);  // float32, then rounded once to the stored dtype
      params += x.numel();
      w.write(x.to(dt));
      weight_map[t.name] = name;
    }
    w.commit();
    total += w.data_bytes();
    spdlog::info("wrote {} ({} tensors, {:.1f} MiB)", name, shards[s].size(), w.data_bytes() / (1024.0 * 1024.0));
  }
  if (shards.size() > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomically((fs::path(o.out) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
  }
  // config.json last: a folder without it is not mistaken for a finished checkpoint.
  write_file_atomically((fs::path(o.out) / "config.json").string(), hf.dump(2) + "\n");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("bench checkpoint: %s layers=%lld d_model=%lld heads=%lld kv_heads=%lld d_mlp=%lld vocab=%lld arch=%s dtype=%s\n",
              o.out.c_str(), (long long)cfg.n_layers, (long long)cfg.d_model, (long long)cfg.n_heads,
              (long long)cfg.n_kv_heads, (long long)cfg.d_mlp, (long long)cfg.vocab_size, o.shape.arch.c_str(), o.dtype.c_str());
  std::printf("  %lld parameters, %.2f GiB in %zu shard(s), written in %.1f s (%.0f MiB/s)\n", (long long)params,
              total / (1024.0 * 1024.0 * 1024.0), shards.size(), secs, total / (1024.0 * 1024.0) / secs);
  return 0;
}

BenchRegistrar reg_bench_checkpoint(
    {"checkpoint", "Write a random-weight model of a given shape as a sharded Hugging Face folder",
     [](CLI::App* sub) {
       auto o = std::make_shared<BenchCheckpointOptions>();
       sub->add_option("out", o->out, "folder to create (new or empty)")->required();
       add_synthetic_shape_options(sub, o->shape);
       sub->add_option("--dtype", o->dtype, "stored dtype: bf16 or f32")
           ->check(CLI::IsMember({"f32", "bf16"}))
           ->capture_default_str();
       sub->add_option("--shard-mib", o->shard_mib, "largest shard in MiB (a larger tensor gets a shard of its own)")
           ->capture_default_str();
       sub->add_option("--seed", o->seed, "random seed")->capture_default_str();
       sub->footer(
           "Weights are N(0, 0.02) (norm weights 1), generated in float32 and rounded once.\n"
           "Llama-3-8B's shape: --arch llama --layers 32 --d-model 4096 --heads 32 --kv-heads 8 "
           "--d-mlp 14336 --vocab 128256 (about 15 GiB in bf16).");
       return [o] { return run_bench_checkpoint(*o); };
     }});

}  // namespace
}  // namespace circuitscope::app
