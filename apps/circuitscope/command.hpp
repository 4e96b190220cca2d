// Subcommand registry: each cmd_<name>.cpp registers itself, so main.cpp never changes when a
// command is added.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace circuitscope::app {

// Options every command that loads a model shares.
struct CommonModelOptions {
  std::string model_dir;
  std::string dtype = "f32";
  std::string device = "cpu";
};

void add_model_options(CLI::App* sub, CommonModelOptions& o, bool positional_model = true);

struct CommandSpec {
  std::string name;
  std::string help;
  // Adds options to `sub`; returns the function that runs the command (its return value is the
  // exit code).
  std::function<std::function<int()>(CLI::App* sub)> setup;
};

std::vector<CommandSpec>& command_registry();
// The registered commands in the order `--help` lists them (by workflow).
std::vector<CommandSpec> commands_in_workflow_order();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSpec spec) { command_registry().push_back(std::move(spec)); }
};

// Integers separated by commas and/or white space ("5,17,300"), each >= min_value; throws a usage
// Error naming the option and the bad item. An empty string gives an empty list.
std::vector<int64_t> parse_int_list(const std::string& s, const std::string& option,
                                    int64_t min_value = std::numeric_limits<int64_t>::min());
// Token ids: parse_int_list, and at least one.
std::vector<int64_t> parse_id_list(const std::string& s, const std::string& option);
// One prompt per line of comma- or space-separated ids.
std::vector<std::vector<int64_t>> read_id_file(const std::string& path);

}  // namespace circuitscope::app
