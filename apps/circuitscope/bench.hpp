// `circuitscope bench <name>`: each benchmark registers itself like a command.
#pragma once
#include "command.hpp"

namespace circuitscope::app {

std::vector<CommandSpec>& bench_registry();

struct BenchRegistrar {
  explicit BenchRegistrar(CommandSpec spec) { bench_registry().push_back(std::move(spec)); }
};

}  // namespace circuitscope::app
