// --shard I/N, or a SLURM array task's place in its array (sweep run, eval).
#pragma once
#include <string>

#include "circuitscope/sweep.hpp"

namespace circuitscope::app {

// `option` when given; else from SLURM_ARRAY_TASK_ID/COUNT/MIN/MAX when set; else 1/1. `what`
// names the job in messages ("sweep", "eval").
sweep::Shard shard_of(const std::string& option, const std::string& what);

}  // namespace circuitscope::app
