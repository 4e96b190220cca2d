// The streaming safetensors writer and `bench checkpoint`, which writes a random-weight model as a
// sharded Hugging Face folder (issue #21: end-to-end runs at 8B shape on a real folder).
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "circuitscope/model.hpp"
#include "circuitscope/safetensors.hpp"
#include "test_util.hpp"

using namespace circuitscope;
namespace fs = std::filesystem;

TEST_CASE("SafetensorsWriter streams tensors in order and checks each against its spec", "[safetensors]") {
  cs_test::TempDir tmp("stw");
  const std::string path = tmp.path + "/a.safetensors";
  at::Tensor a = at::arange(6, at::kFloat).reshape({2, 3});
  at::Tensor b = at::arange(4, at::kLong);
  {
    SafetensorsWriter w(path, {{"a", StDType::kF32, {2, 3}}, {"b", StDType::kI64, {4}}}, {{"format", "pt"}});
    REQUIRE(w.data_bytes() == 6 * 4 + 4 * 8);
    w.write(a);
    // Wrong shape, then wrong dtype, for the second tensor: named in the error, nothing written.
    REQUIRE(cs_test::error_code_of([&] { w.write(at::zeros({3}, at::kLong)); }) == 10);
    REQUIRE(cs_test::error_code_of([&] { w.write(at::zeros({4}, at::kFloat)); }) == 10);
    REQUIRE(cs_test::error_code_of([&] { w.commit(); }) == 10);  // one of two written
    REQUIRE(!fs::exists(path));
    w.write(b);
    REQUIRE(cs_test::error_code_of([&] { w.write(b); }) == 10);  // no third spec
    w.commit();
  }
  auto f = SafetensorsFile::open(path);
  REQUIRE(f->tensors().size() == 2);
  REQUIRE(f->metadata().at("format") == "pt");
  TensorStore st = TensorStore::open_file(path);
  REQUIRE(at::equal(st.load("a"), a));
  REQUIRE(at::equal(st.load("b"), b));

  // Destroyed before commit: no file, no temporary left in the folder.
  const std::string path2 = tmp.path + "/b.safetensors";
  {
    SafetensorsWriter w(path2, {{"x", StDType::kBF16, {8}}});
  }
  REQUIRE(!fs::exists(path2));
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) files += e.path().filename() != "a.safetensors";
  REQUIRE(files == 0);
  // Duplicate names are refused before anything is created.
  REQUIRE(cs_test::error_code_of([&] { SafetensorsWriter w(path2, {{"x", StDType::kF32, {1}}, {"x", StDType::kF32, {1}}}); }) == 10);
}

TEST_CASE("bench checkpoint writes a sharded Hugging Face folder that loads and runs", "[safetensors][cli]") {
  cs_test::TempDir tmp("ckpt");
  const std::string bin = cs_test::binary_path();
  const std::string shape = " --arch llama --layers 3 --d-model 64 --heads 4 --kv-heads 2 --vocab 300 --seed 7";
  std::string log;
  const std::string sharded = tmp.path + "/sharded", single = tmp.path + "/single";
  REQUIRE(cs_test::run_command(bin + " bench checkpoint " + sharded + shape + " --shard-mib 0.05", log) == 0);
  INFO(log);
  REQUIRE(cs_test::run_command(bin + " bench checkpoint " + single + shape, log) == 0);
  // A folder that is not empty is refused (usage error), not overwritten.
  REQUIRE(cs_test::run_command(bin + " bench checkpoint " + single + shape, log) == 2);
  REQUIRE(log.find("not empty") != std::string::npos);

  // The index: every shard it names exists, each tensor is in the shard it says, total_size is
  // the sum of the shards' data buffers.
  const nlohmann::json index = cs_test::read_json_file(sharded + "/model.safetensors.index.json");
  std::set<std::string> shard_files;
  uint64_t data_bytes = 0;
  for (const auto& [name, file] : index["weight_map"].items()) {
    shard_files.insert(file.get<std::string>());
    auto f = SafetensorsFile::open(sharded + "/" + file.get<std::string>());
    REQUIRE(f->find(name) != nullptr);
  }
  REQUIRE(shard_files.size() > 3);  // 0.05 MiB splits this ~0.45 MiB model
  for (const auto& file : shard_files) {
    auto f = SafetensorsFile::open(sharded + "/" + file);
    data_bytes += f->file_size() - 8 - f->header_json().size();
  }
  REQUIRE(index["metadata"]["total_size"].get<uint64_t>() == data_bytes);
  REQUIRE(!fs::exists(single + "/model.safetensors.index.json"));
  REQUIRE(fs::exists(single + "/model.safetensors"));

  // Llama layout: no biases, untied lm_head, bf16 weights of std 0.02, norms exactly 1.
  const nlohmann::json cfg = cs_test::read_json_file(sharded + "/config.json");
  REQUIRE(cfg["architectures"][0] == "LlamaForCausalLM");
  REQUIRE(cfg["torch_dtype"] == "bfloat16");
  TensorStore st = TensorStore::open_dir(sharded);
  REQUIRE(st.num_files() == shard_files.size());
  REQUIRE(st.names().size() == index["weight_map"].size());
  REQUIRE(st.find("lm_head.weight") != nullptr);
  REQUIRE(st.find("model.layers.0.self_attn.q_proj.bias") == nullptr);
  for (const auto& name : st.names()) REQUIRE(st.at(name).dtype == StDType::kBF16);
  at::Tensor up = st.load("model.layers.2.mlp.up_proj.weight", at::kFloat);  // [256, 64]
  REQUIRE(up.sizes() == at::IntArrayRef({256, 64}));
  REQUIRE(up.std().item<double>() == Approx(0.02).margin(0.001));
  REQUIRE(std::abs(up.mean().item<double>()) < 0.001);
  REQUIRE(at::equal(st.load("model.norm.weight", at::kFloat), at::ones({64})));

  // Sharding changes the files, not the weights: both folders give the same logits.
  auto m1 = HookedTransformer::from_pretrained(sharded);
  auto m2 = HookedTransformer::from_pretrained(single);
  REQUIRE(m1->fingerprint() != m2->fingerprint());
  at::Tensor ids = at::arange(10, at::kLong).mul(29).remainder(300).unsqueeze(0);  // [1,10]
  at::Tensor l1 = m1->forward(ids), l2 = m2->forward(ids);
  REQUIRE(l1.sizes() == at::IntArrayRef({1, 10, 300}));
  REQUIRE(at::isfinite(l1).all().item<bool>());
  REQUIRE(at::equal(l1, l2));

  // The default architecture (qwen2): q/k/v biases, tied embeddings, so no lm_head tensor.
  const std::string qwen = tmp.path + "/qwen";
  REQUIRE(cs_test::run_command(bin + " bench checkpoint " + qwen + " --layers 1 --d-model 32 --heads 2 --kv-heads 1 --vocab 50 --dtype f32", log) == 0);
  TensorStore sq = TensorStore::open_dir(qwen);
  REQUIRE(sq.find("model.layers.0.self_attn.k_proj.bias") != nullptr);
  REQUIRE(sq.find("lm_head.weight") == nullptr);
  REQUIRE(sq.at("model.embed_tokens.weight").dtype == StDType::kF32);
}
