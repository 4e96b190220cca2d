// Dataset options shared by the commands that read clean/corrupted pairs (attribute, patch,
// evaluate): the file, bad-line handling, and how text-form pairs are tokenized.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "circuitscope/dataset.hpp"
#include "circuitscope/metric.hpp"

namespace circuitscope {
struct ModelConfig;
}

namespace circuitscope::app {

struct DatasetOptions {
  std::string data;        // JSONL pairs
  bool skip_bad = false;   // skip and count bad lines instead of stopping at the first
  std::string tokenizer;   // folder (or tokenizer file) for text-form pairs; default the model folder
  bool chat = false;       // render clean/corrupted as user messages through the chat template
  std::string think;       // "", "on" or "off": enable_thinking for the chat template
  std::string system;      // system message for --chat
};

void add_dataset_options(CLI::App* sub, DatasetOptions& o);

// The library's PairSource for these options.
PairSource pair_source(const DatasetOptions& o);
// Reads the pairs for a model (ids checked against its vocabulary; answer/wrong or continuations
// required when the metric needs them). Text-form pairs use --tokenizer or the model folder's tokenizer.
PairDataset load_pairs(const DatasetOptions& o, const std::string& model_dir, const ModelConfig& cfg, MetricKind metric);

}  // namespace circuitscope::app
