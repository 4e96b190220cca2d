#include <ATen/Context.h>

#include <fstream>
#include <string>

#include "circuitscope/error.hpp"
#include "circuitscope/runtime.hpp"
#include "core/torch_compat.hpp"

namespace circuitscope {

#ifdef CIRCUITSCOPE_WITH_CUDA
bool device_memory_stats_available() { return true; }

void reset_peak_device_memory(const c10::Device& d) {
  if (!d.is_cuda()) throw Error(ErrorCode::kUsage, "peak device memory is kept for CUDA devices only; got " + d.str());
  c10::cuda::CUDACachingAllocator::resetPeakStats(d.has_index() ? d.index() : 0);
}

int64_t peak_device_memory_bytes(const c10::Device& d) {
  if (!d.is_cuda()) throw Error(ErrorCode::kUsage, "peak device memory is kept for CUDA devices only; got " + d.str());
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.has_index() ? d.index() : 0);
  return stats.allocated_bytes[compat::kAggregateStat].peak;
}
#else
bool device_memory_stats_available() { return false; }

void reset_peak_device_memory(const c10::Device& d) {
  throw Error(ErrorCode::kUnsupported, "peak device memory of " + d.str() + ": this build has no CUDA");
}

int64_t peak_device_memory_bytes(const c10::Device& d) {
  throw Error(ErrorCode::kUnsupported, "peak device memory of " + d.str() + ": this build has no CUDA");
}
#endif

int64_t peak_resident_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) {
      try {
        return static_cast<int64_t>(std::stoll(line.substr(6))) * 1024;  // "VmHWM:   123456 kB"
      } catch (const std::exception&) {
        return -1;
      }
    }
  return -1;
}

}  // namespace circuitscope
