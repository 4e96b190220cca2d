// Shared test helpers.
#pragma once
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "circuitscope/error.hpp"
#include <string>
#include <vector>

namespace circuitscope {
class HookedTransformer;
}

namespace cs_test {

// The code of the circuitscope::Error that f throws; 0 when it throws none.
inline int error_code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const circuitscope::Error& e) {
    return static_cast<int>(e.code());
  }
  return 0;
}

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

// A fresh temporary folder, deleted with its contents at the end of the scope.
struct TempDir {
  explicit TempDir(const std::string& tag = "tmp") : path(make_temp_dir(tag)) {}
  ~TempDir() { remove_tree(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
};

// Writes `text` (bytes as given) to dir/name and returns that path.
std::string write_file(const std::string& dir, const std::string& name, const std::string& text);
// Parses a JSON file; a JSONL file one value per non-empty line. Both REQUIRE that the file opens.
nlohmann::json read_json_file(const std::string& path);
std::vector<nlohmann::json> read_jsonl(const std::string& path);
// A random-weight toy-lab checkpoint (2 layers, d_model 32, 4 heads, 2 kv heads, MLP 64) with the
// toy tokenizer and chat template: a complete Hugging Face folder.
void write_random_toy(const std::string& dir, uint64_t seed, int64_t max_positions = 64);
// Loads a model from a folder under tests/data.
// A model under tests/data on cs_test::device(), so the tests that use it also run on CUDA.
std::unique_ptr<circuitscope::HookedTransformer> load_model(const std::string& rel, const std::string& dtype = "f32");
// A copy of a GQA model with n_kv_heads = n_heads: each kv head's k/v projection repeated for every
// query head of its group, so it computes the same function and each query head owns its k/v input.
std::unique_ptr<circuitscope::HookedTransformer> ungrouped_copy(const circuitscope::HookedTransformer& m);
// Pearson correlation of two equally long series.
double pearson(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace cs_test
