// Random-weight models of a given shape, for benchmarks.
#pragma once
#include <ATen/core/Tensor.h>

#include <CLI/CLI.hpp>
#include <map>
#include <string>

#include "circuitscope/config.hpp"

namespace circuitscope::app {

struct SyntheticShape {
  int64_t layers = 12;
  int64_t d_model = 768;
  int64_t heads = 12;
  int64_t kv_heads = 4;
  int64_t d_mlp = 0;      // 0: 4 x d_model
  int64_t vocab = 32000;
};

void add_synthetic_shape_options(CLI::App* sub, SyntheticShape& s);
// A Qwen2-architecture config (q/k/v biases, GQA) of that shape.
ModelConfig synthetic_config(const SyntheticShape& s);
// HF-named float32 tensors, std 0.02 like a fresh initialisation.
std::map<std::string, at::Tensor> synthetic_weights(const ModelConfig& c, uint64_t seed);

}  // namespace circuitscope::app
