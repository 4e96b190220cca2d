// Options of `attribute`, shared with `sweep` (a SWEEP.json's "attribute" block takes the same keys):
// registered once here and parsed once into the library's AttributeSpec.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "circuit_options.hpp"
#include "circuitscope/pipeline.hpp"
#include "command.hpp"
#include "dataset_options.hpp"

namespace circuitscope::app {

struct AttributeOptions {
  CommonModelOptions model;
  DatasetOptions dataset;
  std::string method = "eap-ig-inputs";
  int ig_steps = 5;
  std::string metric = "logit-diff";
  bool loss = false;
  std::string kv_edges = "per-query-head";
  int64_t batch_size = 8;
  std::string out;
  std::string html;  // --html: the report as a page
  CircuitOptions circuit;
  std::string config;
};

// Every option of `attribute` (model and dataset options included) on `sub`.
void add_attribute_options(CLI::App* sub, AttributeOptions& o);
// Everything that can be checked without the model, before it loads; usage Errors name the option.
AttributeSpec make_attribute_spec(const AttributeOptions& o);

}  // namespace circuitscope::app
