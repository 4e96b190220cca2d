#include "synthetic.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

namespace circuitscope::app {

void add_synthetic_shape_options(CLI::App* sub, SyntheticShape& s) {
  sub->add_option("--layers", s.layers, "layers")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--d-model", s.d_model, "residual width")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--heads", s.heads, "query heads")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--kv-heads", s.kv_heads, "key/value heads")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--d-mlp", s.d_mlp, "MLP width (default 4 x d_model)");
  sub->add_option("--vocab", s.vocab, "vocabulary size")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--arch", s.arch, "qwen2 (q/k/v biases, tied embeddings) or llama (neither)")
      ->check(CLI::IsMember({"qwen2", "llama"}))
      ->capture_default_str();
}

nlohmann::json synthetic_hf_config(const SyntheticShape& s) {
  const bool llama = s.arch == "llama";
  return {{"architectures", {llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"}},
          {"model_type", llama ? "llama" : "qwen2"},
          {"vocab_size", s.vocab},
          {"hidden_size", s.d_model},
          {"num_hidden_layers", s.layers},
          {"num_attention_heads", s.heads},
          {"num_key_value_heads", s.kv_heads},
          {"intermediate_size", s.d_mlp > 0 ? s.d_mlp : 4 * s.d_model},
          {"tie_word_embeddings", !llama},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", llama ? 500000.0 : 10000.0}};
}

ModelConfig synthetic_config(const SyntheticShape& s) { return parse_config(synthetic_hf_config(s), "synthetic shape"); }

std::vector<SyntheticTensor> synthetic_plan(const ModelConfig& c) {
  const TensorNames& n = c.arch->names;
  const int64_t D = c.d_model, H = c.n_heads, K = c.n_kv_heads, Dh = c.head_dim, M = c.d_mlp;
  std::vector<SyntheticTensor> p;
  p.push_back({n.embed, {c.vocab_size, D}});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto nm = [&](const char* t) { return c.tensor_name(t, l); };
    p.push_back({nm(n.ln1), {D}, true});
    p.push_back({nm(n.q_w), {H * Dh, D}});
    p.push_back({nm(n.k_w), {K * Dh, D}});
    p.push_back({nm(n.v_w), {K * Dh, D}});
    if (c.qkv_bias) {
      p.push_back({nm(n.q_b), {H * Dh}});
      p.push_back({nm(n.k_b), {K * Dh}});
      p.push_back({nm(n.v_b), {K * Dh}});
    }
    if (c.qk_norm) {
      p.push_back({nm(n.q_norm), {Dh}, true});
      p.push_back({nm(n.k_norm), {Dh}, true});
    }
    p.push_back({nm(n.o_w), {D, H * Dh}});
    if (c.o_bias) p.push_back({nm(n.o_b), {D}});
    p.push_back({nm(n.ln2), {D}, true});
    p.push_back({nm(n.gate_w), {M, D}});
    p.push_back({nm(n.up_w), {M, D}});
    p.push_back({nm(n.down_w), {D, M}});
  }
  p.push_back({n.final_norm, {D}, true});
  if (!c.tie_word_embeddings) p.push_back({n.lm_head, {c.vocab_size, D}});
  return p;
}

at::Tensor make_synthetic(const SyntheticTensor& t, at::Generator& gen) {
  return t.ones ? at::ones(t.shape) : at::normal(0.0, 0.02, t.shape, gen);
}

std::map<std::string, at::Tensor> synthetic_weights(const ModelConfig& c, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::map<std::string, at::Tensor> w;
  for (const auto& t : synthetic_plan(c)) w[t.name] = make_synthetic(t, gen);
  return w;
}

}  // namespace circuitscope::app
