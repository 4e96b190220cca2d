// Bad input gives one clear error naming the file, tensor or key, and a non-zero exit code.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/safetensors.hpp"
#include "test_util.hpp"

using namespace circuitscope;
namespace fs = std::filesystem;

namespace {

// Each call makes a new folder; the whole set is removed when the test binary exits.
fs::path temp_dir(const std::string& tag) {
  static struct Root {
    std::string path = cs_test::make_temp_dir("errors");
    ~Root() { cs_test::remove_tree(path); }
  } root;
  return cs_test::make_temp_dir(tag, root.path);
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// A raw safetensors file from a header string and a data size.
void write_raw_st(const fs::path& p, const std::string& header, size_t data_bytes, uint64_t declared_len = 0) {
  std::ofstream out(p, std::ios::binary);
  uint64_t n = declared_len ? declared_len : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
}

// Expects `f` to throw circuitscope::Error with `code` and a message containing every needle.
template <typename F>
void require_error(F&& f, ErrorCode code, std::vector<std::string> needles) {
  try {
    f();
  } catch (const Error& e) {
    INFO("message: " << e.what());
    REQUIRE(e.code() == code);
    for (const auto& n : needles) {
      INFO("expected to find: " << n);
      REQUIRE(std::string(e.what()).find(n) != std::string::npos);
    }
    return;
  }
  FAIL("no circuitscope::Error was thrown");
}

fs::path llama_copy(const std::string& tag) {
  fs::path d = temp_dir(tag);
  const fs::path src = fs::path(cs_test::data_dir()) / "hf-tiny" / "llama-tiny";
  fs::copy_file(src / "config.json", d / "config.json");
  fs::copy_file(src / "model.safetensors", d / "model.safetensors");
  fs::permissions(d / "config.json", fs::perms::owner_write, fs::perm_options::add);
  fs::permissions(d / "model.safetensors", fs::perms::owner_write, fs::perm_options::add);
  return d;
}

// Rewrites the llama copy's weights through `edit`.
void edit_weights(const fs::path& d, const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit) {
  TensorStore s = TensorStore::open_dir(d.string());
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (const auto& n : s.names()) ts.emplace_back(n, s.load(n));
  edit(ts);
  write_safetensors((d / "model.safetensors").string(), ts);
}

}  // namespace

TEST_CASE("config.json errors", "[errors][config]") {
  SECTION("missing") {
    fs::path d = temp_dir("noconfig");
    require_error([&] { load_config(d.string()); }, ErrorCode::kIo, {"config.json", d.string()});
  }
  SECTION("model directory missing") {
    require_error([&] { load_config("/nonexistent/model"); }, ErrorCode::kIo, {"/nonexistent/model", "does not exist"});
  }
  SECTION("malformed JSON") {
    fs::path d = temp_dir("badjson");
    write_text(d / "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], ");
    require_error([&] { load_config(d.string()); }, ErrorCode::kFormat, {"config.json", "not valid JSON"});
  }
  SECTION("missing key") {
    fs::path d = llama_copy("nokey");
    std::ifstream in(d / "config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j.erase("hidden_size");
    write_text(d / "config.json", j.dump());
    require_error([&] { load_config(d.string()); }, ErrorCode::kConfig, {"hidden_size", "config.json"});
  }
  SECTION("wrong type") {
    fs::path d = llama_copy("badtype");
    std::ifstream in(d / "config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["num_attention_heads"] = "four";
    write_text(d / "config.json", j.dump());
    require_error([&] { load_config(d.string()); }, ErrorCode::kConfig, {"num_attention_heads", "integer", "\"four\""});
  }
  SECTION("unknown architecture") {
    fs::path d = llama_copy("arch");
    std::ifstream in(d / "config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["architectures"] = {"GPT2LMHeadModel"};
    write_text(d / "config.json", j.dump());
    require_error([&] { load_config(d.string()); }, ErrorCode::kUnsupported,
                  {"GPT2LMHeadModel", "Qwen2ForCausalLM", "LlamaForCausalLM"});
  }
  SECTION("unsupported rope scaling") {
    fs::path d = llama_copy("rope");
    std::ifstream in(d / "config.json");
    nlohmann::json j = nlohmann::json::parse(in);
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    write_text(d / "config.json", j.dump());
    require_error([&] { load_config(d.string()); }, ErrorCode::kUnsupported, {"yarn", "llama3"});
  }
}

TEST_CASE("corrupt safetensors files", "[errors][safetensors]") {
  fs::path d = temp_dir("st");
  const std::string good = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  SECTION("shorter than the length prefix") {
    write_text(d / "x.safetensors", "abc");
    require_error([&] { SafetensorsFile::open((d / "x.safetensors").string()); }, ErrorCode::kFormat,
                  {"x.safetensors", "3 bytes"});
  }
  SECTION("header length beyond the file (truncated)") {
    write_raw_st(d / "x.safetensors", good, 16, /*declared_len=*/5000);
    require_error([&] { SafetensorsFile::open((d / "x.safetensors").string()); }, ErrorCode::kFormat,
                  {"x.safetensors", "header length 5000", "beyond the end"});
  }
  SECTION("header is not JSON") {
    write_raw_st(d / "x.safetensors", "{not json}", 0);
    require_error([&] { SafetensorsFile::open((d / "x.safetensors").string()); }, ErrorCode::kFormat, {"not valid JSON"});
  }
  SECTION("offsets beyond the data") {
    write_raw_st(d / "x.safetensors", good, 8);  // data truncated to 8 bytes
    require_error([&] { SafetensorsFile::open((d / "x.safetensors").string()); }, ErrorCode::kFormat,
                  {"tensor 'a'", "[0,16]", "8 bytes"});
  }
  SECTION("overlapping offsets") {
    write_raw_st(d / "x.safetensors",
                 R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                 16);
    require_error([&] { SafetensorsFile::open((d / "x.safetensors").string()); }, ErrorCode::kFormat,
                  {"'a'", "'b'", "overlapping"});
  }
  SECTION("shape and dtype disagree with the byte span") {
    write_raw_st(d / "x.safetensors", R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})", 16);
    require_error([&] { SafetensorsFile::open((d / "x.safetensors").string()); }, ErrorCode::kFormat,
                  {"tensor 'a'", "BF16", "[2,2]", "8 bytes", "span 16"});
  }
  SECTION("unknown dtype string") {
    write_raw_st(d / "x.safetensors", R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4);
    require_error([&] { SafetensorsFile::open((d / "x.safetensors").string()); }, ErrorCode::kFormat,
                  {"tensor 'a'", "F8_E4M3", "BF16"});
  }
  SECTION("a valid file still opens") {
    write_raw_st(d / "x.safetensors", good, 16);
    auto f = SafetensorsFile::open((d / "x.safetensors").string());
    REQUIRE(f->tensors().size() == 1);
    REQUIRE(f->find("a")->shape == std::vector<int64_t>{2, 2});
  }
}

TEST_CASE("checkpoint content errors", "[errors][loader]") {
  SECTION("missing tensor") {
    fs::path d = llama_copy("missing");
    edit_weights(d, [](auto& ts) {
      ts.erase(std::remove_if(ts.begin(), ts.end(), [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; }),
               ts.end());
    });
    require_error([&] { HookedTransformer::from_pretrained(d.string()); }, ErrorCode::kFormat,
                  {"tensor 'model.layers.1.mlp.up_proj.weight'", "missing", "[128,64]"});
  }
  SECTION("wrong shape") {
    fs::path d = llama_copy("shape");
    edit_weights(d, [](auto& ts) {
      for (auto& [n, t] : ts)
        if (n == "model.layers.2.mlp.up_proj.weight") t = t.t().contiguous();
    });
    require_error([&] { HookedTransformer::from_pretrained(d.string()); }, ErrorCode::kFormat,
                  {"tensor 'model.layers.2.mlp.up_proj.weight'", "has shape [64,128]; expected [128,64]"});
  }
  SECTION("unsupported weight dtype") {
    fs::path d = llama_copy("dtype");
    edit_weights(d, [](auto& ts) {
      for (auto& [n, t] : ts)
        if (n == "model.norm.weight") t = t.to(at::kChar);
    });
    require_error([&] { HookedTransformer::from_pretrained(d.string()); }, ErrorCode::kUnsupported,
                  {"tensor 'model.norm.weight'", "dtype I8", "F32, BF16, F16"});
  }
  SECTION("no weights at all") {
    fs::path d = llama_copy("noweights");
    fs::remove(d / "model.safetensors");
    require_error([&] { HookedTransformer::from_pretrained(d.string()); }, ErrorCode::kIo,
                  {"model.safetensors", "model.safetensors.index.json"});
  }
  SECTION("index names a tensor its shard lacks") {
    fs::path d = llama_copy("index");
    fs::rename(d / "model.safetensors", d / "model-00001-of-00001.safetensors");
    write_text(d / "model.safetensors.index.json",
               R"({"weight_map":{"model.norm.weight":"model-00001-of-00001.safetensors","ghost":"model-00001-of-00001.safetensors"}})");
    require_error([&] { TensorStore::open_dir(d.string()); }, ErrorCode::kFormat, {"'ghost'", "does not contain it"});
  }
}

TEST_CASE("token ids out of range", "[errors][input]") {
  auto model = HookedTransformer::from_pretrained(cs_test::data_dir() + "/hf-tiny/llama-tiny");
  at::Tensor ids = at::tensor({5, 17, 512}, at::kLong).view({1, 3});
  require_error([&] { model->forward(ids); }, ErrorCode::kInput, {"token id 512", "position 2", "vocab_size is 512"});
  at::Tensor neg = at::tensor({-1}, at::kLong).view({1, 1});
  require_error([&] { model->forward(neg); }, ErrorCode::kInput, {"token id -1"});

  // forward() checks a tensor once (the check is a device sync on a GPU) and again after it changes.
  at::Tensor ok = at::tensor({5, 17, 3}, at::kLong).view({1, 3});
  model->forward(ok);
  model->forward(ok);
  ok[0][1].fill_(600);  // in place: a new version of the same tensor
  require_error([&] { model->forward(ok); }, ErrorCode::kInput, {"token id 600", "position 1"});
  // Logit positions checked against 3 positions are not taken as checked for a 2-position input.
  at::Tensor good = at::tensor({5, 17, 3}, at::kLong).view({1, 3});
  const at::Tensor pos = at::tensor({2}, at::kLong).view({1, 1});
  model->forward(good, {}, nullptr, {}, pos);
  require_error([&] { model->forward(good.narrow(1, 0, 2), {}, nullptr, {}, pos); }, ErrorCode::kInput,
                {"logit_positions", "[0,2)"});
}

TEST_CASE("the CLI reports errors in one line with a meaningful exit code", "[errors][cli]") {
  const std::string bin = cs_test::binary_path();
  std::string out;
  SECTION("missing model directory") {
    const int rc = cs_test::run_command(bin + " inspect /nonexistent/model", out);
    INFO(out);
    REQUIRE(rc == static_cast<int>(ErrorCode::kIo));
    REQUIRE(out.find("/nonexistent/model") != std::string::npos);
    REQUIRE(std::count(out.begin(), out.end(), '\n') == 1);
  }
  SECTION("corrupt weights") {
    fs::path d = llama_copy("cli");
    write_raw_st(d / "model.safetensors", "{}", 0, 999999);
    const int rc = cs_test::run_command(bin + " inspect " + d.string(), out);
    INFO(out);
    REQUIRE(rc == static_cast<int>(ErrorCode::kFormat));
    REQUIRE(out.find("header length 999999") != std::string::npos);
  }
  SECTION("token id out of range") {
    const int rc = cs_test::run_command(
        bin + " run " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --ids 1,2,9999 --out /tmp/cs_err_cli.safetensors", out);
    INFO(out);
    REQUIRE(rc == static_cast<int>(ErrorCode::kInput));
    REQUIRE(out.find("token id 9999") != std::string::npos);
  }
  SECTION("a device this machine does not have") {
    // cuda:64 is past the GPUs of any machine here: with CUDA it fails the index check, without it
    // the "no CUDA" check; plain cuda only fails where no GPU is visible.
    std::vector<std::string> devices = {"cuda:64"};
    if (!at::hasCUDA()) devices.push_back("cuda");
    for (const std::string& dev : devices) {
      const int rc = cs_test::run_command(bin + " inspect " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --device " + dev, out);
      INFO(out);
      CHECK(rc == static_cast<int>(ErrorCode::kUnsupported));
      CHECK(out.find("device '" + dev + "'") != std::string::npos);
      CHECK(std::count(out.begin(), out.end(), '\n') == 1);
    }
  }
  SECTION("bad option value") {
    const int rc = cs_test::run_command(bin + " run " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --ids 1,x --out /tmp/x", out);
    INFO(out);
    REQUIRE(rc == static_cast<int>(ErrorCode::kUsage));
    REQUIRE(out.find("'x' is not an integer") != std::string::npos);
  }
}
