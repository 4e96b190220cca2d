// run/generate with --text and --chat on a model folder that carries the real Qwen3 tokenizer.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/safetensors.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "test_util.hpp"

using namespace circuitscope;
namespace fs = std::filesystem;

namespace {

// A 1-layer random Qwen3 with the real Qwen3 vocabulary size, beside the real tokenizer files.
const std::string& qwen3_tok_model() {
  static struct Dir {
    std::string path;
    Dir() {
      path = cs_test::make_temp_dir("qwen3tok");
      const fs::path src = fs::path(cs_test::data_dir()) / "tokenizers" / "qwen3";
      fs::copy_file(src / "tokenizer.json", fs::path(path) / "tokenizer.json");
      fs::copy_file(src / "tokenizer_config.json", fs::path(path) / "tokenizer_config.json");
      const int64_t V = 151936, D = 32, H = 2, K = 1, Dh = 16, M = 64;
      nlohmann::json cfg = {{"architectures", {"Qwen3ForCausalLM"}}, {"vocab_size", V}, {"hidden_size", D},
                            {"num_hidden_layers", 1}, {"num_attention_heads", H}, {"num_key_value_heads", K},
                            {"head_dim", Dh}, {"intermediate_size", M}, {"tie_word_embeddings", true},
                            {"eos_token_id", 151645}, {"bos_token_id", 151643}};
      std::ofstream(fs::path(path) / "config.json") << cfg.dump(2);
      at::manual_seed(0);
      std::vector<std::pair<std::string, at::Tensor>> w = {
          {"model.embed_tokens.weight", at::randn({V, D}) * 0.2},
          {"model.norm.weight", at::ones({D})},
          {"model.layers.0.input_layernorm.weight", at::ones({D})},
          {"model.layers.0.post_attention_layernorm.weight", at::ones({D})},
          {"model.layers.0.self_attn.q_proj.weight", at::randn({H * Dh, D}) * 0.2},
          {"model.layers.0.self_attn.k_proj.weight", at::randn({K * Dh, D}) * 0.2},
          {"model.layers.0.self_attn.v_proj.weight", at::randn({K * Dh, D}) * 0.2},
          {"model.layers.0.self_attn.o_proj.weight", at::randn({D, H * Dh}) * 0.2},
          {"model.layers.0.self_attn.q_norm.weight", at::ones({Dh})},
          {"model.layers.0.self_attn.k_norm.weight", at::ones({Dh})},
          {"model.layers.0.mlp.gate_proj.weight", at::randn({M, D}) * 0.2},
          {"model.layers.0.mlp.up_proj.weight", at::randn({M, D}) * 0.2},
          {"model.layers.0.mlp.down_proj.weight", at::randn({D, M}) * 0.2},
      };
      write_safetensors((fs::path(path) / "model.safetensors").string(), w);
    }
    ~Dir() { cs_test::remove_tree(path); }
  } dir;
  return dir.path;
}

std::vector<int64_t> ids_of(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

nlohmann::json reference_row(const std::string& file, size_t index) {
  std::ifstream in(file);
  std::string line;
  for (size_t i = 0; std::getline(in, line); ++i)
    if (i == index) return nlohmann::json::parse(line);
  FAIL("row " << index << " missing from " << file);
  return {};
}

}  // namespace

TEST_CASE("run --text tokenizes with the folder's tokenizer", "[cli][tokenizer]") {
  const std::string dir = qwen3_tok_model();
  const std::string out = dir + "/run_text.safetensors";
  std::string log;
  const int rc = cs_test::run_command(cs_test::binary_path() + " run " + dir + " --text 'Hello world' --out " + out, log);
  INFO(log);
  REQUIRE(rc == 0);
  TensorStore st = TensorStore::open_file(out);
  // reference.jsonl line 1: {"text":"Hello world","ids":[9707,1879]}
  REQUIRE(ids_of(st.load("input_ids")) == std::vector<int64_t>{9707, 1879});
  REQUIRE(st.load("logits").sizes().vec() == std::vector<int64_t>{1, 2, 151936});
}

TEST_CASE("generate --chat renders the model's own chat template", "[cli][chat]") {
  const std::string dir = qwen3_tok_model();
  // chat_template_reference.jsonl row 8: system + user, add_generation_prompt, enable_thinking=false.
  nlohmann::json row = reference_row(cs_test::data_dir() + "/chat/qwen3/chat_template_reference.jsonl", 8);
  REQUIRE(row.at("enable_thinking") == false);
  REQUIRE(row.at("add_generation_prompt") == true);
  std::string log;
  const int rc = cs_test::run_command(cs_test::binary_path() + " -q generate " + dir +
                                          " --system 'You are a helpful assistant.' --chat 'What is 2+2?' --think off"
                                          " --max-new-tokens 4 --json",
                                      log);
  INFO(log);
  REQUIRE(rc == 0);
  nlohmann::json j = nlohmann::json::parse(log);
  REQUIRE(j.at("prompt").get<std::string>() == row.at("text").get<std::string>());
  auto tok = load_tokenizer(dir);
  REQUIRE(j.at("prompt_ids").get<std::vector<int64_t>>() == tok->encode(row.at("text").get<std::string>(), false).ids);
  REQUIRE(j.at("ids").size() >= 1);
  REQUIRE(j.at("text").get<std::string>() == tok->decode(j.at("ids").get<std::vector<int64_t>>()));
}

TEST_CASE("prompt options are checked", "[cli]") {
  const std::string dir = qwen3_tok_model();
  std::string log;
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " generate " + dir + " --ids 1,2 --think on", log) == 2);
  REQUIRE(log.find("--chat prompts only") != std::string::npos);
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " generate " + dir, log) == 2);
  REQUIRE(log.find("no prompt given") != std::string::npos);
  // No tokenizer in the folder: text prompts fail with an I/O error naming the folder.
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " run " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --text hi --out /tmp/x.st",
                               log) == 3);
}

TEST_CASE("chat-format --ids prints the rendered prompt and its ids", "[cli][chat]") {
  // Row 2: one user message, add_generation_prompt, enable_thinking=false.
  nlohmann::json row = reference_row(cs_test::data_dir() + "/chat/qwen3/chat_template_reference.jsonl", 2);
  REQUIRE(row.at("enable_thinking") == false);
  const std::string user = row.at("messages")[0].at("content").get<std::string>();
  const std::string file = cs_test::make_temp_dir("chatids") + "/user.txt";
  std::ofstream(file) << user;
  std::string out;
  const std::string dir = cs_test::data_dir() + "/tokenizers/qwen3";
  const int rc = cs_test::run_command(cs_test::binary_path() + " -q chat-format " + dir + " --user \"$(cat " + file +
                                          ")\" --think off --ids",
                                      out);
  cs_test::remove_tree(fs::path(file).parent_path().string());
  INFO(out);
  REQUIRE(rc == 0);
  const std::string text = row.at("text").get<std::string>();
  REQUIRE(out.substr(0, text.size()) == text);
  std::string ids_line = out.substr(text.size());
  while (!ids_line.empty() && (ids_line.front() == '\n')) ids_line.erase(0, 1);
  while (!ids_line.empty() && (ids_line.back() == '\n')) ids_line.pop_back();
  std::string want;
  for (auto id : load_tokenizer(dir)->encode(text, false).ids) want += (want.empty() ? "" : ",") + std::to_string(id);
  REQUIRE(ids_line == want);
}

TEST_CASE("chat-format --input-jsonl --ids adds the ids of each render", "[cli][chat]") {
  nlohmann::json row = reference_row(cs_test::data_dir() + "/chat/qwen3/chat_template_reference.jsonl", 8);
  const std::string tmp = cs_test::make_temp_dir("chatbatch");
  nlohmann::json in = {{"messages", row.at("messages")}, {"add_generation_prompt", row.at("add_generation_prompt")},
                       {"enable_thinking", row.at("enable_thinking")}};
  std::ofstream(tmp + "/in.jsonl") << in.dump() << "\n" << in.dump() << "\n";
  std::string out;
  const std::string dir = cs_test::data_dir() + "/tokenizers/qwen3";
  const int rc = cs_test::run_command(cs_test::binary_path() + " -q chat-format " + dir + " --input-jsonl " + tmp +
                                          "/in.jsonl --ids",
                                      out);
  cs_test::remove_tree(tmp);
  INFO(out);
  REQUIRE(rc == 0);
  std::istringstream lines(out);
  std::string line;
  int n = 0;
  const auto want = load_tokenizer(dir)->encode(row.at("text").get<std::string>(), false).ids;
  while (std::getline(lines, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    REQUIRE(j.at("text") == row.at("text"));
    REQUIRE(j.at("ids").get<std::vector<int64_t>>() == want);
    ++n;
  }
  REQUIRE(n == 2);
}
