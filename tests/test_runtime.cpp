// The process runs on the BLAS the build pinned (OpenBLAS, OpenMP build) whatever the system's
// libblas.so.3 alternative points at.
#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "circuitscope/error.hpp"
#include "circuitscope/runtime.hpp"
#include "test_util.hpp"

TEST_CASE("libtorch's BLAS is OpenBLAS's OpenMP build", "[runtime]") {
  const circuitscope::RuntimeInfo r = circuitscope::runtime_info();
  INFO("blas " << r.blas_name << " (" << r.blas_parallel << ") from " << r.blas_path);
#ifdef CS_DEBIAN_LIBTORCH
  REQUIRE(r.blas_name == "OpenBLAS");
  REQUIRE(r.blas_parallel == "openmp");
  REQUIRE(r.blas_path.find("openblas-openmp") != std::string::npos);
#endif
  REQUIRE(r.torch_threads >= 1);
  // The CLI reports the same library.
  std::string out;
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " -q inspect " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --json",
                               out) == 0);
  nlohmann::json j = nlohmann::json::parse(out);
  REQUIRE(j.at("runtime").at("blas").get<std::string>() == r.blas_name);
  REQUIRE(j.at("runtime").at("torch_threads").get<int>() >= 1);
  REQUIRE(j.at("device") == "cpu");
}

TEST_CASE("format_duration: the progress lines' one duration format", "[runtime]") {
  REQUIRE(circuitscope::format_duration(4.24) == "4.2s");
  REQUIRE(circuitscope::format_duration(37.4) == "37s");
  REQUIRE(circuitscope::format_duration(185.0) == "3m05s");
  REQUIRE(circuitscope::format_duration(7650.0) == "2h07m");
  REQUIRE(circuitscope::format_duration(-1.0) == "0.0s");
}

TEST_CASE("the CLI's thread count: --threads - else OMP_NUM_THREADS - else every core", "[runtime]") {
  // stderr dropped: libgomp warns about malformed values.
  const std::string inspect = " -q inspect " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --json";
  auto torch_threads = [&](const std::string& prefix) {
    std::string out;
    REQUIRE(cs_test::run_command("{ " + prefix + cs_test::binary_path() + inspect + " 2>/dev/null; }", out) == 0);
    return nlohmann::json::parse(out).at("runtime").at("torch_threads").get<int>();
  };
  CHECK(torch_threads("OMP_NUM_THREADS=3 ") == 3);
  CHECK(torch_threads("OMP_NUM_THREADS=5 ") == 5);
  // --threads wins over the environment.
  std::string out;
  REQUIRE(cs_test::run_command("{ OMP_NUM_THREADS=3 " + cs_test::binary_path() + " --threads 2" + inspect + " 2>/dev/null; }", out) == 0);
  CHECK(nlohmann::json::parse(out).at("runtime").at("torch_threads") == 2);
  // Unset or malformed: every core.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  CHECK(torch_threads("env -u OMP_NUM_THREADS ") == cores);
  CHECK(torch_threads("OMP_NUM_THREADS=x ") == cores);
  CHECK(torch_threads("OMP_NUM_THREADS=0 ") == cores);
}

TEST_CASE("peak device memory: CUDA builds keep it for CUDA devices, other builds refuse", "[runtime]") {
  using circuitscope::ErrorCode;
  auto code_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const circuitscope::Error& e) {
      return static_cast<int>(e.code());
    }
    return 0;  // no error
  };
  const c10::Device cpu(c10::kCPU), gpu(c10::kCUDA, 0);
#ifdef CIRCUITSCOPE_WITH_CUDA
  REQUIRE(circuitscope::device_memory_stats_available());
  CHECK(code_of([&] { circuitscope::peak_device_memory_bytes(cpu); }) == static_cast<int>(ErrorCode::kUsage));
  if (at::hasCUDA()) {
    circuitscope::reset_peak_device_memory(gpu);
    const at::Tensor t = at::zeros({1 << 20}, at::TensorOptions().device(gpu));  // 4 MiB
    CHECK(circuitscope::peak_device_memory_bytes(gpu) >= 4 * (1 << 20));
  }
#else
  REQUIRE_FALSE(circuitscope::device_memory_stats_available());
  CHECK(code_of([&] { circuitscope::peak_device_memory_bytes(gpu); }) == static_cast<int>(ErrorCode::kUnsupported));
  CHECK(code_of([&] { circuitscope::reset_peak_device_memory(gpu); }) == static_cast<int>(ErrorCode::kUnsupported));
#endif
}
