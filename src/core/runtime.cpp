#include "circuitscope/runtime.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <torch/version.h>

#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"

namespace circuitscope {

RuntimeInfo runtime_info() {
  RuntimeInfo r;
  using GetConfig = char* (*)();
  using GetInt = int (*)();
  void* cfg = dlsym(RTLD_DEFAULT, "openblas_get_config");
  if (cfg) {
    r.blas_name = "OpenBLAS";
    r.blas_config = reinterpret_cast<GetConfig>(cfg)();
    Dl_info info{};
    if (dladdr(cfg, &info) && info.dli_fname) r.blas_path = info.dli_fname;
    if (void* par = dlsym(RTLD_DEFAULT, "openblas_get_parallel")) {
      switch (reinterpret_cast<GetInt>(par)()) {
        case 0: r.blas_parallel = "sequential"; break;
        case 1: r.blas_parallel = "pthreads"; break;
        case 2: r.blas_parallel = "openmp"; break;
        default: r.blas_parallel = "unknown";
      }
    }
    if (void* nt = dlsym(RTLD_DEFAULT, "openblas_get_num_threads")) r.blas_threads = reinterpret_cast<GetInt>(nt)();
  } else if (void* mkl = dlsym(RTLD_DEFAULT, "mkl_get_max_threads")) {
    r.blas_name = "MKL";
    Dl_info info{};
    if (dladdr(mkl, &info) && info.dli_fname) r.blas_path = info.dli_fname;
    r.blas_parallel = "unknown";
    r.blas_threads = reinterpret_cast<GetInt>(mkl)();
  } else {
    void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
    Dl_info info{};
    if (sgemm && dladdr(sgemm, &info) && info.dli_fname) r.blas_path = info.dli_fname;
    if (!sgemm) r.blas_name = "none found (libtorch's own kernels)";
    else if (r.blas_path.find("libblas") != std::string::npos) r.blas_name = "reference BLAS (slow; install libopenblas0-openmp)";
    else r.blas_name = "unknown BLAS bundled in " + r.blas_path;
    r.blas_parallel = "unknown";
  }
  r.torch_threads = at::get_num_threads();
  r.torch_version = TORCH_VERSION;
  r.cuda_available = at::hasCUDA();
  // Device count without linking CUDA headers: at::hasCUDA() reflects build + driver.
  r.cuda_devices = r.cuda_available ? static_cast<int>(at::getNumGPUs()) : 0;
  return r;
}

nlohmann::json runtime_to_json(const RuntimeInfo& r) {
  return {{"blas", r.blas_name},        {"blas_path", r.blas_path}, {"blas_config", r.blas_config},
          {"blas_parallel", r.blas_parallel}, {"blas_threads", r.blas_threads}, {"torch_threads", r.torch_threads},
          {"torch_version", r.torch_version}, {"cuda_available", r.cuda_available}, {"cuda_devices", r.cuda_devices}};
}

void set_num_threads(int n) {
  if (n <= 0) return;
  at::set_num_threads(n);
  using SetInt = void (*)(int);
  if (void* f = dlsym(RTLD_DEFAULT, "openblas_set_num_threads")) reinterpret_cast<SetInt>(f)(n);
}

int default_num_threads() {
  if (const char* v = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end != v && *end == '\0' && n > 0 && n <= 4096) return static_cast<int>(n);
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::string format_duration(double s) {
  char buf[32];
  if (!(s >= 0)) s = 0;  // also NaN
  if (s < 10)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 60)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
  return buf;
}

namespace {
std::atomic<bool> g_strict_numerics{false};
}  // namespace

void set_strict_numerics(bool strict) { g_strict_numerics = strict; }
bool strict_numerics() { return g_strict_numerics; }

void report_non_finite(const std::string& message) {
  if (strict_numerics()) throw Error(ErrorCode::kInput, message + " (--strict)");
  spdlog::warn("{} (results will be NaN or meaningless; --strict makes this an error)", message);
}

}  // namespace circuitscope
