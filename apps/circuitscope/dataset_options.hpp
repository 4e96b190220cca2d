// Dataset options shared by the commands that read clean/corrupted pairs (attribute, patch,
// evaluate): the file, bad-line handling, and how text-form pairs are tokenized.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "circuitscope/dataset.hpp"
#include "circuitscope/eap.hpp"

namespace circuitscope {
struct ModelConfig;
}

namespace circuitscope::app {

struct DatasetOptions {
  std::string data;        // JSONL pairs
  bool skip_bad = false;   // skip and count bad lines instead of stopping at the first
};

void add_dataset_options(CLI::App* sub, DatasetOptions& o);

// Reads the pairs for a model (ids checked against its vocabulary; answer/wrong required when the
// metric needs them).
PairDataset load_pairs(const DatasetOptions& o, const std::string& model_dir, const ModelConfig& cfg, MetricKind metric);

}  // namespace circuitscope::app
