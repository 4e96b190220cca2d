// `circuitscope bench <name> ...`: one parent command whose sub-benchmarks register themselves here,
// the same way commands register in command.hpp (so bench.cpp never changes when a benchmark is added).
#pragma once
#include <vector>

#include "command.hpp"

namespace circuitscope::app {

// A sub-benchmark: `name` is the word after `bench`; `setup` adds its options and returns its runner.
using BenchSpec = CommandSpec;

std::vector<BenchSpec>& bench_registry();

struct BenchRegistrar {
  explicit BenchRegistrar(BenchSpec spec) { bench_registry().push_back(std::move(spec)); }
};

}  // namespace circuitscope::app
