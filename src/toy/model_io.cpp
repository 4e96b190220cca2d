// Toy models: config, seeded initialisation, and saving as a Hugging Face folder.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/safetensors.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "circuitscope/toy.hpp"

namespace circuitscope::toy {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
// Token ids of the toy vocabulary's special tokens, read from the tokenizer itself.
int64_t toy_token_id(const std::string& token) {
  static const auto tok = tokenizer_from_json(toy_tokenizer_json(), "toy tokenizer.json");
  auto id = tok->token_to_id(token);
  if (!id) throw Error(ErrorCode::kInternal, "toy tokenizer has no token '" + token + "'");
  return *id;
}

json hf_config_json(const ModelConfig& c) {
  if (c.architecture != "Qwen2ForCausalLM")
    throw Error(ErrorCode::kUnsupported, "toy checkpoints are Qwen2ForCausalLM; found " + c.architecture);
  json j = {{"architectures", {"Qwen2ForCausalLM"}},
            {"model_type", "qwen2"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.d_model},
            {"intermediate_size", c.d_mlp},
            {"num_hidden_layers", c.n_layers},
            {"num_attention_heads", c.n_heads},
            {"num_key_value_heads", c.n_kv_heads},
            {"hidden_act", "silu"},
            {"max_position_embeddings", c.max_position_embeddings},
            {"max_window_layers", c.n_layers},
            {"use_sliding_window", false},
            {"sliding_window", nullptr},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"rope_scaling", nullptr},
            {"attention_dropout", 0.0},
            {"initializer_range", 0.02},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"torch_dtype", "float32"},
            {"use_cache", true},
            {"transformers_version", "4.51.0"}};
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids.size() == 1 ? json(c.eos_token_ids[0]) : json(c.eos_token_ids);
  return j;
}

void write_json(const fs::path& p, const json& j) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump(2) << "\n";
    if (!f) throw Error(ErrorCode::kIo, "cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, p);
}
}  // namespace

ModelConfig toy_model_config(const ToyModelShape& s) {
  const int64_t im_end = toy_token_id(kImEnd), eot = toy_token_id(kEndOfText);
  json j = {{"architectures", {"Qwen2ForCausalLM"}},
            {"vocab_size", toy_vocab_size()},
            {"hidden_size", s.d_model},
            {"intermediate_size", s.d_mlp},
            {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads},
            {"num_key_value_heads", s.kv_heads},
            {"max_position_embeddings", s.max_positions},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 10000.0},
            {"tie_word_embeddings", s.tie_embeddings},
            {"bos_token_id", eot},
            {"eos_token_id", json::array({im_end, eot})}};
  return parse_config(j, "toy model shape");
}

std::unique_ptr<HookedTransformer> init_toy_model(const ToyModelShape& shape, uint64_t seed) {
  const ModelConfig c = toy_model_config(shape);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::map<std::string, at::Tensor> w;
  auto randn = [&](std::vector<int64_t> sz, double std = 0.02) { return at::normal(0.0, std, sz, gen); };
  const TensorNames& n = c.arch->names;
  const int64_t D = c.d_model, H = c.n_heads, K = c.n_kv_heads, Dh = c.head_dim, M = c.d_mlp;
  // GPT-2 style: output projections scaled down by sqrt(2 * layers) so the residual stream starts small.
  const double out_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.n_layers));
  w[n.embed] = randn({c.vocab_size, D});
  w[n.final_norm] = at::ones({D});
  if (!c.tie_word_embeddings) w[n.lm_head] = randn({c.vocab_size, D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto nm = [&](const char* t) { return c.tensor_name(t, l); };
    w[nm(n.ln1)] = at::ones({D});
    w[nm(n.ln2)] = at::ones({D});
    w[nm(n.q_w)] = randn({H * Dh, D});
    w[nm(n.k_w)] = randn({K * Dh, D});
    w[nm(n.v_w)] = randn({K * Dh, D});
    w[nm(n.o_w)] = randn({D, H * Dh}, out_std);
    if (c.qkv_bias) {
      w[nm(n.q_b)] = at::zeros({H * Dh});
      w[nm(n.k_b)] = at::zeros({K * Dh});
      w[nm(n.v_b)] = at::zeros({K * Dh});
    }
    w[nm(n.gate_w)] = randn({M, D});
    w[nm(n.up_w)] = randn({M, D});
    w[nm(n.down_w)] = randn({D, M}, out_std);
  }
  return HookedTransformer::from_tensors(c, w);
}

void save_hf_checkpoint(const HookedTransformer& model, const std::string& dir, const std::string& tokenizer_dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create checkpoint folder '" + dir + "': " + ec.message());
  const ModelConfig& c = model.config();
  write_json(fs::path(dir) / "config.json", hf_config_json(c));
  json gen = {{"do_sample", false}, {"transformers_version", "4.51.0"}};
  if (c.bos_token_id) gen["bos_token_id"] = *c.bos_token_id;
  if (!c.eos_token_ids.empty()) gen["eos_token_id"] = c.eos_token_ids;
  gen["pad_token_id"] = toy_token_id(kEndOfText);
  write_json(fs::path(dir) / "generation_config.json", gen);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : model.named_parameters()) tensors.emplace_back(name, t.detach().to(at::kCPU, at::kFloat));
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  if (tokenizer_dir.empty()) {
    write_toy_tokenizer(dir);
  } else if (fs::weakly_canonical(tokenizer_dir) != fs::weakly_canonical(dir)) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
      const fs::path src = fs::path(tokenizer_dir) / f;
      if (!fs::exists(src)) throw Error(ErrorCode::kIo, "'" + src.string() + "' is missing; a toy checkpoint needs its tokenizer");
      fs::copy_file(src, fs::path(dir) / f, fs::copy_options::overwrite_existing, ec);
      if (ec) throw Error(ErrorCode::kIo, "cannot copy '" + src.string() + "' into '" + dir + "': " + ec.message());
    }
  }
}

}  // namespace circuitscope::toy
