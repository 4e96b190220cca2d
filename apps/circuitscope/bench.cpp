// The `bench` parent command: dispatches to the benchmarks in bench_registry().
#include "bench.hpp"

#include <memory>
#include <utility>

#include "circuitscope/error.hpp"

namespace circuitscope::app {

std::vector<BenchSpec>& bench_registry() {
  static std::vector<BenchSpec> r;
  return r;
}

namespace {

CommandRegistrar reg_bench({"bench", "Benchmarks that print throughput numbers (see `bench --help` for the list)",
                      [](CLI::App* sub) {
                        sub->require_subcommand(1);
                        auto runners = std::make_shared<std::vector<std::pair<CLI::App*, std::function<int()>>>>();
                        // Registrars ran during static initialisation; setup runs from main, so all are here.
                        for (auto& spec : bench_registry()) {
                          CLI::App* b = sub->add_subcommand(spec.name, spec.help);
                          runners->emplace_back(b, spec.setup(b));
                        }
                        return [runners]() -> int {
                          for (auto& [b, run] : *runners)
                            if (b->parsed()) return run();
                          throw Error(ErrorCode::kUsage, "bench: name a benchmark");
                        };
                      }});

}  // namespace
}  // namespace circuitscope::app
