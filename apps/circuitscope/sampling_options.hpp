// Sampling options shared by generate and eval: --greedy, --temperature, --top-p, --top-k, --min-p, --seed.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "circuitscope/generate.hpp"

namespace circuitscope::app {

struct SamplingCli {
  bool greedy = false;
  double temperature = 0.0;  // 0 = greedy unless another sampling option is set
  double top_p = 1.0;
  int64_t top_k = 0;
  double min_p = 0.0;
  uint64_t seed = 0;
};

void add_sampling_options(CLI::App* sub, SamplingCli& o, const std::string& seed_help = "sampling seed");
// Greedy unless a sampling option is set; --greedy with one of them is a usage error.
SamplingOptions sampling_options(const SamplingCli& o);

}  // namespace circuitscope::app
