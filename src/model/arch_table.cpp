// The architecture table: one row per Hugging Face architecture.
#include "circuitscope/config.hpp"

namespace circuitscope {

namespace {
// Llama-style checkpoints share tensor names; rows differ in flags.
constexpr TensorNames kLlamaNames{
    "model.embed_tokens.weight",
    "model.norm.weight",
    "lm_head.weight",
    "model.layers.{l}.input_layernorm.weight",
    "model.layers.{l}.post_attention_layernorm.weight",
    "model.layers.{l}.self_attn.q_proj.weight",
    "model.layers.{l}.self_attn.k_proj.weight",
    "model.layers.{l}.self_attn.v_proj.weight",
    "model.layers.{l}.self_attn.o_proj.weight",
    "model.layers.{l}.self_attn.q_proj.bias",
    "model.layers.{l}.self_attn.k_proj.bias",
    "model.layers.{l}.self_attn.v_proj.bias",
    "model.layers.{l}.self_attn.o_proj.bias",
    "model.layers.{l}.self_attn.q_norm.weight",
    "model.layers.{l}.self_attn.k_norm.weight",
    "model.layers.{l}.mlp.gate_proj.weight",
    "model.layers.{l}.mlp.up_proj.weight",
    "model.layers.{l}.mlp.down_proj.weight",
};
}  // namespace

const std::vector<ArchSpec>& architecture_table() {
  //                         hf_name               family    qkv_b  o_b    qk_norm tie    sliding window rule
  static const std::vector<ArchSpec> table = {
      {"Qwen2ForCausalLM", "qwen2", true, false, false, false, SlidingWindowRule::kWhenUseSlidingWindow, kLlamaNames},
      {"Qwen3ForCausalLM", "qwen3", false, false, true, false, SlidingWindowRule::kWhenUseSlidingWindow, kLlamaNames},
      {"LlamaForCausalLM", "llama", false, false, false, false, SlidingWindowRule::kNever, kLlamaNames},
      {"MistralForCausalLM", "mistral", false, false, false, false, SlidingWindowRule::kWhenSet, kLlamaNames},
  };
  return table;
}

const ArchSpec* find_architecture(const std::string& hf_name) {
  for (const auto& a : architecture_table())
    if (hf_name == a.hf_name) return &a;
  return nullptr;
}

}  // namespace circuitscope
