// circuitscope: circuit discovery in transformer language models.
#include <malloc.h>
#include <cstdlib>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/runtime.hpp"
#include "command.hpp"

namespace circuitscope::app {

std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> r;
  return r;
}

std::vector<CommandSpec> commands_in_workflow_order() {
  // Look at a model and its tokenizer, run it, make data, attribute, check, draw, compare; then the
  // toy lab and the benchmarks. Commands not listed follow by name.
  static const std::vector<std::string> kOrder = {"inspect", "tokenize", "chat-format", "run",   "generate",
                                                  "pairs",   "attribute", "patch",      "evaluate", "graph",
                                                  "compare", "sweep",     "report",   "eval",     "grade",
                                                  "toy",     "bench"};
  auto rank = [](const CommandSpec& c) {
    const auto it = std::find(kOrder.begin(), kOrder.end(), c.name);
    return std::make_pair(static_cast<size_t>(it - kOrder.begin()), c.name);
  };
  std::vector<CommandSpec> out = command_registry();
  std::sort(out.begin(), out.end(), [&](const CommandSpec& a, const CommandSpec& b) { return rank(a) < rank(b); });
  return out;
}

void add_model_options(CLI::App* sub, CommonModelOptions& o, bool positional_model) {
  if (positional_model) sub->add_option("model_dir", o.model_dir, "Hugging Face model directory")->required();
  sub->add_option("--dtype", o.dtype, "compute dtype: f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
  sub->add_option("--device", o.device, "cpu, cuda or cuda:N");
}

std::vector<int64_t> parse_int_list(const std::string& s, const std::string& option, int64_t min_value) {
  std::vector<int64_t> out;
  std::string tok;
  std::string norm = s;
  std::replace(norm.begin(), norm.end(), ',', ' ');
  std::istringstream in(norm);
  while (in >> tok) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size()) throw Error(ErrorCode::kUsage, option + " '" + s + "': '" + tok + "' is not an integer");
    if (v < min_value)
      throw Error(ErrorCode::kUsage, option + " '" + s + "': " + tok + " is below " + std::to_string(min_value));
    out.push_back(v);
  }
  return out;
}

std::vector<int64_t> parse_id_list(const std::string& s, const std::string& option) {
  std::vector<int64_t> out = parse_int_list(s, option);
  if (out.empty()) throw Error(ErrorCode::kUsage, option + ": no token ids given");
  return out;
}

std::vector<std::vector<int64_t>> read_id_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kIo, "cannot read ids file '" + path + "'");
  std::vector<std::vector<int64_t>> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(parse_id_list(line, path + ":" + std::to_string(n)));
  }
  if (out.empty()) throw Error(ErrorCode::kInput, "ids file '" + path + "' has no prompts");
  return out;
}

}  // namespace circuitscope::app

namespace {
// glibc hands every block above its mmap threshold back to the kernel when freed, so each large
// activation of each forward/backward pass is fresh, page-faulting memory; attribution spent
// a third of its time in the kernel that way. Keep freed memory for reuse instead (a batch tool:
// the resident size stays at its peak). glibc's own MALLOC_* variables still win when set.
void tune_malloc() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_")) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
}
}  // namespace

int main(int argc, char** argv) {
  using namespace circuitscope;
  tune_malloc();
  auto logger = spdlog::stderr_color_mt("circuitscope");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");

  CLI::App cli{"circuitscope: circuit discovery in transformer language models"};
  cli.require_subcommand(1);
  cli.fallthrough();  // global options (--threads, -v, -q) work after the command name too
  cli.set_version_flag("--version", std::string("circuitscope ") + CIRCUITSCOPE_VERSION);
  int verbosity = 0;
  bool quiet = false;
  int threads = 0;
  bool strict = false;
  cli.add_flag("-v,--verbose", verbosity, "more logging: -v debug, -vv trace");
  cli.add_flag("--strict", strict, "NaN or Inf in weights or activations is an error (exit 7), not a warning");
  cli.add_flag("-q,--quiet", quiet, "only errors on stderr");
  cli.add_option("--threads", threads, "CPU threads for libtorch and BLAS (default: $OMP_NUM_THREADS, else all cores)");

  std::vector<std::pair<CLI::App*, std::function<int()>>> runners;
  for (auto& spec : app::commands_in_workflow_order()) {
    CLI::App* sub = cli.add_subcommand(spec.name, spec.help);
    runners.emplace_back(sub, spec.setup(sub));
  }
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : static_cast<int>(ErrorCode::kUsage);
  }
  spdlog::set_level(quiet ? spdlog::level::err
                          : verbosity >= 2 ? spdlog::level::trace
                          : verbosity == 1 ? spdlog::level::debug
                                           : spdlog::level::info);
  try {
    // libtorch's default here is 1 thread; use every core unless told otherwise. OMP_NUM_THREADS is
    // how batch schedulers (SLURM's --cpus-per-task) and the kernel-variant runs say it.
    set_num_threads(threads > 0 ? threads : default_num_threads());
    set_strict_numerics(strict);
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return static_cast<int>(ErrorCode::kInternal);
  }
  return static_cast<int>(ErrorCode::kUsage);
}
