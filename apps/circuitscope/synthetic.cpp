#include "synthetic.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

namespace circuitscope::app {

void add_synthetic_shape_options(CLI::App* sub, SyntheticShape& s) {
  sub->add_option("--layers", s.layers, "layers")->check(CLI::PositiveNumber);
  sub->add_option("--d-model", s.d_model, "residual width")->check(CLI::PositiveNumber);
  sub->add_option("--heads", s.heads, "query heads")->check(CLI::PositiveNumber);
  sub->add_option("--kv-heads", s.kv_heads, "key/value heads")->check(CLI::PositiveNumber);
  sub->add_option("--d-mlp", s.d_mlp, "MLP width (default 4 x d_model)");
  sub->add_option("--vocab", s.vocab, "vocabulary size")->check(CLI::PositiveNumber);
}

ModelConfig synthetic_config(const SyntheticShape& s) {
  nlohmann::json j = {{"architectures", {"Qwen2ForCausalLM"}},
                      {"vocab_size", s.vocab},
                      {"hidden_size", s.d_model},
                      {"num_hidden_layers", s.layers},
                      {"num_attention_heads", s.heads},
                      {"num_key_value_heads", s.kv_heads},
                      {"intermediate_size", s.d_mlp > 0 ? s.d_mlp : 4 * s.d_model},
                      {"tie_word_embeddings", true},
                      {"rope_theta", 10000.0}};
  return parse_config(j, "synthetic shape");
}

std::map<std::string, at::Tensor> synthetic_weights(const ModelConfig& c, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::map<std::string, at::Tensor> w;
  auto randn = [&](std::vector<int64_t> shape) { return at::normal(0.0, 0.02, shape, gen); };
  const TensorNames& n = c.arch->names;
  const int64_t D = c.d_model, H = c.n_heads, K = c.n_kv_heads, Dh = c.head_dim, M = c.d_mlp;
  w[n.embed] = randn({c.vocab_size, D});
  w[n.final_norm] = at::ones({D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto nm = [&](const char* t) { return c.tensor_name(t, l); };
    w[nm(n.ln1)] = at::ones({D});
    w[nm(n.ln2)] = at::ones({D});
    w[nm(n.q_w)] = randn({H * Dh, D});
    w[nm(n.k_w)] = randn({K * Dh, D});
    w[nm(n.v_w)] = randn({K * Dh, D});
    w[nm(n.o_w)] = randn({D, H * Dh});
    if (c.qkv_bias) {
      w[nm(n.q_b)] = randn({H * Dh});
      w[nm(n.k_b)] = randn({K * Dh});
      w[nm(n.v_b)] = randn({K * Dh});
    }
    w[nm(n.gate_w)] = randn({M, D});
    w[nm(n.up_w)] = randn({M, D});
    w[nm(n.down_w)] = randn({D, M});
  }
  return w;
}

}  // namespace circuitscope::app
