// The process runs on the BLAS the build pinned (OpenBLAS, OpenMP build) whatever the system's
// libblas.so.3 alternative points at.
#include <nlohmann/json.hpp>

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
