// What the process actually runs on: BLAS library, threads, libtorch version, devices.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace circuitscope {

struct RuntimeInfo {
  std::string blas_name;     // "OpenBLAS" or "unknown (reference BLAS?)"
  std::string blas_path;     // file the BLAS symbols were loaded from
  std::string blas_config;   // openblas_get_config()
  std::string blas_parallel; // "openmp" | "pthreads" | "sequential" | "unknown"
  int blas_threads = 0;
  int torch_threads = 0;
  std::string torch_version;
  bool cuda_available = false;
  int cuda_devices = 0;
};

RuntimeInfo runtime_info();
nlohmann::json runtime_to_json(const RuntimeInfo& r);
// Sets libtorch's intra-op threads (and OpenBLAS's when loaded). n <= 0 keeps the default.
void set_num_threads(int n);
// The thread count when none is given: $OMP_NUM_THREADS when it is a positive integer, else every core.
int default_num_threads();

// Peak bytes the CUDA caching allocator has handed out on a device since the last reset (or the
// start). Builds without CUDA throw kUnsupported; a non-CUDA device is a kUsage error.
bool device_memory_stats_available();
void reset_peak_device_memory(const c10::Device& d);
int64_t peak_device_memory_bytes(const c10::Device& d);
// This process's peak resident memory (Linux VmHWM) in bytes since it started, or -1 where unknown.
int64_t peak_resident_bytes();

// A duration for progress lines, the one format all commands use: "4.2s", "37s", "3m05s", "2h07m".
std::string format_duration(double seconds);

// NaN or Inf in weights or activations: a warning naming the tensor, or with --strict
// (set_strict_numerics(true)) an Error(kInput).
void set_strict_numerics(bool strict);
bool strict_numerics();
void report_non_finite(const std::string& message);

}  // namespace circuitscope
