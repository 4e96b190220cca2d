// Model configuration parsed from a Hugging Face config.json, through the architecture table.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace circuitscope {

enum class SlidingWindowRule {
  kNever,                 // Llama: no sliding window
  kWhenUseSlidingWindow,  // Qwen2/Qwen3: only if use_sliding_window is true, for layers >= max_window_layers
                          // (transformers 5 files list "layer_types" instead, which wins)
  kWhenSet,               // Mistral: whenever sliding_window is a number
};

// Tensor-name templates: "{l}" is replaced by the layer index. An empty template means absent.
struct TensorNames {
  const char* embed;
  const char* final_norm;
  const char* lm_head;
  const char* ln1;
  const char* ln2;
  const char* q_w;
  const char* k_w;
  const char* v_w;
  const char* o_w;
  const char* q_b;
  const char* k_b;
  const char* v_b;
  const char* o_b;
  const char* q_norm;
  const char* k_norm;
  const char* gate_w;
  const char* up_w;
  const char* down_w;
};

// One row of the architecture table (src/model/arch_table.cpp). The generic transformer reads
// only this row and ModelConfig: adding an architecture means adding a row.
struct ArchSpec {
  const char* hf_name;         // config.json "architectures"[0]
  const char* family;          // short name for reports
  bool qkv_bias;               // q/k/v projections have biases
  bool o_bias;                 // o_proj has a bias
  bool qk_norm;                // per-head RMSNorm on q and k before RoPE (Qwen3)
  bool default_tie;            // tie_word_embeddings when the key is absent
  SlidingWindowRule sliding;
  TensorNames names;
};

const std::vector<ArchSpec>& architecture_table();
const ArchSpec* find_architecture(const std::string& hf_name);

struct RopeScaling {
  std::string type = "none";  // none | linear | llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;
  const ArchSpec* arch = nullptr;
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t d_mlp = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // row default, overridden by config "attention_bias" when present
  bool o_bias = false;
  bool qk_norm = false;
  std::string hidden_act = "silu";
  int64_t sliding_window = 0;          // 0: none
  std::vector<bool> sliding_layers;    // per layer: uses the sliding window
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype;  // as stored in config.json, informational

  int64_t group_size() const { return n_heads / n_kv_heads; }
  bool layer_uses_sliding_window(int64_t layer) const;
  std::string tensor_name(const char* tmpl, int64_t layer = -1) const;
};

// Parses config.json content; `source` names the file in error messages.
ModelConfig parse_config(const nlohmann::json& j, const std::string& source);
// Reads MODEL_DIR/config.json (and generation_config.json for eos ids when present).
ModelConfig load_config(const std::string& model_dir);
nlohmann::json config_to_json(const ModelConfig& c);

}  // namespace circuitscope
