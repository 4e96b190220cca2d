#include "test_util.hpp"

#include "circuitscope/toy.hpp"

#include <ftw.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <cstdio>
#include <sys/wait.h>

#include "circuitscope/model.hpp"

namespace cs_test {

std::string make_temp_dir(const std::string& tag, const std::string& parent) {
  const char* env = std::getenv("TMPDIR");
  const std::string base = !parent.empty() ? parent : (env && *env ? env : "/tmp");
  std::string tmpl = base + "/cs_test_" + tag + "_XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl;
}

void remove_tree(const std::string& path) {
  nftw(path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
       FTW_DEPTH | FTW_PHYS);
}

int run_command(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string p = dir + "/" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  INFO("reading " << path);
  REQUIRE(in.good());
  nlohmann::json j;
  in >> j;
  return j;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  INFO("reading " << path);
  REQUIRE(in.good());
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::unique_ptr<circuitscope::HookedTransformer> load_model(const std::string& rel, const std::string& dtype) {
  return circuitscope::HookedTransformer::from_pretrained(data_dir() + "/" + rel, {dtype, device()});
}

std::unique_ptr<circuitscope::HookedTransformer> ungrouped_copy(const circuitscope::HookedTransformer& m) {
  using circuitscope::ModelConfig;
  const ModelConfig& cfg = m.config();
  const int64_t H = cfg.n_heads, K = cfg.n_kv_heads, G = H / K, Dh = cfg.head_dim;
  std::map<std::string, at::Tensor> tensors;
  const circuitscope::TensorNames& n = cfg.arch->names;
  for (auto& [name, t] : m.named_parameters()) tensors[name] = t;
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    for (const char* tmpl : {n.k_w, n.v_w, n.k_b, n.v_b}) {
      if (!tmpl || !*tmpl || !tensors.count(cfg.tensor_name(tmpl, l))) continue;  // no bias
      const std::string name = cfg.tensor_name(tmpl, l);
      at::Tensor t = tensors.at(name);
      at::Tensor r = t.view({K, Dh, -1}).repeat_interleave(G, 0);
      tensors[name] = t.dim() == 1 ? r.reshape({H * Dh}) : r.reshape({H * Dh, t.size(1)});
    }
  }
  ModelConfig ucfg = cfg;
  ucfg.n_kv_heads = H;
  return circuitscope::HookedTransformer::from_tensors(ucfg, tensors);
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i] / n, mb += b[i] / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

void write_random_toy(const std::string& dir, uint64_t seed, int64_t max_positions) {
  circuitscope::toy::ToyModelShape shape;
  shape.layers = 2;
  shape.d_model = 32;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.d_mlp = 64;
  shape.max_positions = max_positions;
  auto m = circuitscope::toy::init_toy_model(shape, seed);
  circuitscope::toy::save_hf_checkpoint(*m, dir);
}

}  // namespace cs_test
