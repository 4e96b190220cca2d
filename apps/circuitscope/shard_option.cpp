// --shard I/N for the commands that run as SLURM array tasks (sweep run, eval).
#include "shard_option.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "circuitscope/error.hpp"

namespace circuitscope::app {

// --shard, else a SLURM array task's place in its array. Only an array whose ids run from 0 or 1 in
// steps of 1 (--array=1-N, 0-(N-1)) says which shard a task is: a task resubmitted alone
// (--array=2) or a sparse array (1,3 or 1-15:2) does not, and must be given --shard I/N.
sweep::Shard shard_of(const std::string& option, const std::string& what) {
  if (!option.empty()) return sweep::parse_shard(option);
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  if (!id) return {1, 1};
  auto var = [](const char* name) -> long long {
    const char* v = std::getenv(name);
    if (!v) throw Error(ErrorCode::kUsage, std::string("SLURM_ARRAY_TASK_ID is set but ") + name + " is not; give --shard I/N");
    try {
      size_t used = 0;
      const long long x = std::stoll(v, &used);
      if (used != std::string(v).size()) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      throw Error(ErrorCode::kUsage, std::string(name) + "='" + v + "' is not a number; give --shard I/N");
    }
  };
  const long long i = var("SLURM_ARRAY_TASK_ID"), n = var("SLURM_ARRAY_TASK_COUNT");
  const long long lo = var("SLURM_ARRAY_TASK_MIN"), hi = var("SLURM_ARRAY_TASK_MAX");
  if ((lo != 0 && lo != 1) || hi - lo + 1 != n)
    throw Error(ErrorCode::kUsage, "cannot tell this task's shard from its array (ids " + std::to_string(lo) + "-" +
                                       std::to_string(hi) + ", " + std::to_string(n) + " tasks): give --shard " +
                                       std::to_string(i) + "/N, N being the " + what + "'s shard count (as "
                                       "scripts/slurm/sweep.sbatch does)");
  const sweep::Shard s{i - lo + 1, n};
  spdlog::info("shard {}/{} from SLURM_ARRAY_TASK_ID={} (array {}-{})", s.index, s.count, i, lo, hi);
  return s;
}

}  // namespace circuitscope::app
