// Random-weight models of a given shape, for benchmarks.
#pragma once
#include <ATen/core/Tensor.h>

#include <ATen/core/Generator.h>
#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "circuitscope/config.hpp"

namespace circuitscope::app {

struct SyntheticShape {
  int64_t layers = 12;
  int64_t d_model = 768;
  int64_t heads = 12;
  int64_t kv_heads = 4;
  int64_t d_mlp = 0;      // 0: 4 x d_model
  int64_t vocab = 32000;
  std::string arch = "qwen2";  // qwen2: q/k/v biases, tied embeddings; llama: neither (Llama-3's layout)
};

void add_synthetic_shape_options(CLI::App* sub, SyntheticShape& s);
// The Hugging Face config.json of that shape.
nlohmann::json synthetic_hf_config(const SyntheticShape& s);
ModelConfig synthetic_config(const SyntheticShape& s);

// One weight of a synthetic model: N(0, 0.02) like a fresh initialisation, or ones (norm weights).
struct SyntheticTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool ones = false;
};
// Every weight the model of `c` loads, in checkpoint order.
std::vector<SyntheticTensor> synthetic_plan(const ModelConfig& c);
at::Tensor make_synthetic(const SyntheticTensor& t, at::Generator& gen);  // float32, CPU
// All of them in memory (float32).
std::map<std::string, at::Tensor> synthetic_weights(const ModelConfig& c, uint64_t seed);

}  // namespace circuitscope::app
