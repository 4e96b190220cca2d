// Options shared by `attribute` and `evaluate`: circuit selection, the intervention used for
// faithfulness, and the faithfulness curve over circuit sizes (parsed here, once, into the library's
// Selection and FaithfulnessSpec); and `--config FILE.json` for any command.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <limits>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "circuitscope/circuit.hpp"
#include "circuitscope/pipeline.hpp"

namespace circuitscope::app {

// Unset options keep these sentinels (so that any value given, negative ones too, is checked).
constexpr int64_t kUnsetCount = std::numeric_limits<int64_t>::min();
constexpr double kUnsetValue = std::numeric_limits<double>::quiet_NaN();

struct CircuitOptions {
  int64_t top_n = kUnsetCount;      // --top-n N
  double threshold = kUnsetValue;   // --threshold TAU (may be negative with --signed)
  int64_t greedy = kUnsetCount;     // --greedy N
  double simplify = kUnsetValue;    // --simplify TAU (with --top-n)
  std::string selection;     // --selection thinking-sparks (a preset)
  bool signed_scores = false;
  std::string intervention = "patch";
  std::string mean_source = "clean";
  std::string sizes;         // --sizes 100,300,1000
  std::string sweep;         // --sweep: the deprecated spelling of --sizes
  std::string level = "edge";  // --level edge|node
};

void add_circuit_options(CLI::App* sub, CircuitOptions& o);
// The selection the options ask for (kNone when none); throws a usage Error on conflicting options.
Selection make_selection(const CircuitOptions& o);
// Intervention, mean source and curve sizes; usage Errors name the option. Warns once when the
// deprecated --sweep is used.
FaithfulnessSpec make_faithfulness_spec(const CircuitOptions& o);

// --config FILE: adds the option; apply_config fills every option not given on the command line from
// the file's keys (JSON with comments; key = the long option name without dashes, '_' or '-',
// "model_dir" for the positional model). Unknown keys are a usage error naming the key.
void add_config_option(CLI::App* sub, std::string& path);
void apply_config(CLI::App* sub, const std::string& path);
// The same for an object already read; `origin` names it in errors (a file, or "FILE: key").
void apply_config_json(CLI::App* sub, const nlohmann::json& config, const std::string& origin);
// For options that may come from a config file: not required by CLI11, checked after apply_config.
void require_value(const std::string& value, const std::string& what);

}  // namespace circuitscope::app
