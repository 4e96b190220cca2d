// circuitscope bench <benchmark>: benchmarks that print numbers (never timed tests).
#include "bench.hpp"

namespace circuitscope::app {

std::vector<CommandSpec>& bench_registry() {
  static std::vector<CommandSpec> r;
  return r;
}

namespace {
CommandRegistrar reg({"bench", "Benchmarks that print throughput numbers",
                      [](CLI::App* sub) {
                        sub->require_subcommand(1);
                        auto runners = std::make_shared<std::vector<std::pair<CLI::App*, std::function<int()>>>>();
                        for (auto& spec : bench_registry()) {
                          CLI::App* b = sub->add_subcommand(spec.name, spec.help);
                          runners->emplace_back(b, spec.setup(b));
                        }
                        return std::function<int()>([runners] {
                          for (auto& [b, run] : *runners)
                            if (b->parsed()) return run();
                          return 2;
                        });
                      }});
}  // namespace

}  // namespace circuitscope::app
