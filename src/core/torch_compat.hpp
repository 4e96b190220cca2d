// The one place for libtorch version differences. circuitscope builds against Debian's libtorch 1.13
// (CPU) and the official libtorch 2.x (CUDA, as the PyPI wheel ships it); code elsewhere uses the
// names below instead of testing TORCH_VERSION_* (from <torch/version.h>) itself, and a difference
// that needs a version test gets its name here.
#pragma once
#include <cstddef>

#ifdef CIRCUITSCOPE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>

namespace circuitscope::compat {
// The caching allocator's StatType enum moved from c10::cuda::CUDACachingAllocator (1.x) to the
// device-generic c10::CachingAllocator (2.x, not re-exported), so neither spelling compiles against
// both; its AGGREGATE entry is 0 in both, and getDeviceStats() is called with `auto`.
constexpr std::size_t kAggregateStat = 0;
}  // namespace circuitscope::compat
#endif
