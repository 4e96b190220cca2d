// Shared test helpers.
#pragma once
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

namespace cs_test {

inline std::string data_dir() { return CS_TEST_DATA_DIR; }
inline std::string binary_path() { return CS_BINARY_PATH; }
// Device for the reference-model tests: $CS_TEST_DEVICE (e.g. "cuda"), default "cpu".
inline std::string device() {
  const char* d = std::getenv("CS_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

// Checks |a-b| <= atol + rtol*|ref| elementwise and reports the worst element on failure.
inline void require_close(const at::Tensor& got_in, const at::Tensor& ref_in, double atol, double rtol,
                          const std::string& what) {
  INFO(what << ": got shape " << got_in.sizes() << ", reference shape " << ref_in.sizes());
  REQUIRE(got_in.sizes() == ref_in.sizes());
  at::Tensor got = got_in.detach().to(at::kCPU, at::kDouble);
  at::Tensor ref = ref_in.detach().to(at::kCPU, at::kDouble);
  at::Tensor err = (got - ref).abs();
  at::Tensor excess = err - (atol + rtol * ref.abs());
  const double max_err = err.max().item<double>();
  const double worst = excess.max().item<double>();
  INFO(what << ": max |a-b| = " << max_err << " (atol " << atol << ", rtol " << rtol << ")");
  REQUIRE(worst <= 0.0);
}

// A fresh, unique folder under $TMPDIR (mkdtemp). Tests never use std::filesystem::remove_all: the
// pip builds of libtorch 2.x export a broken copy of it that takes precedence and crashes.
std::string make_temp_dir(const std::string& tag, const std::string& parent = "");
// Deletes a folder tree (nftw).
void remove_tree(const std::string& path);

// Runs a shell command, returns exit code, captures stdout+stderr into `out`.
int run_command(const std::string& cmd, std::string& out);

}  // namespace cs_test
