// The generic hooked transformer: one implementation for every row of the architecture table.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "circuitscope/config.hpp"
#include "circuitscope/hooks.hpp"

namespace circuitscope {

namespace detail {
struct WeightSource;
}

struct LoadOptions {
  std::string dtype = "f32";   // compute dtype: f32 | bf16
  std::string device = "cpu";  // cpu | cuda | cuda:N
};

c10::ScalarType parse_compute_dtype(const std::string& s);
c10::Device parse_device(const std::string& s);

// Per-layer key/value cache for incremental decoding. Preallocated to `capacity` positions.
struct KVCache {
  std::vector<at::Tensor> k;  // per layer [B,K,capacity,Dh]
  std::vector<at::Tensor> v;
  int64_t length = 0;         // positions filled
  int64_t capacity = 0;
};

struct LayerWeights {
  at::Tensor ln1, ln2;                 // [D]
  at::Tensor wq, wk, wv, wo;           // [H*Dh,D], [K*Dh,D], [K*Dh,D], [D,H*Dh]
  at::Tensor bq, bk, bv, bo;           // optional
  at::Tensor q_norm, k_norm;           // [Dh], optional
  at::Tensor w_gate, w_up, w_down;     // [M,D], [M,D], [D,M]
};

class HookedTransformer {
 public:
  // Loads a Hugging Face checkpoint directory (config.json + safetensors).
  static std::unique_ptr<HookedTransformer> from_pretrained(const std::string& dir, const LoadOptions& opts = {});
  // From named tensors with HF names (toy models, benchmarks); validated like a checkpoint.
  static std::unique_ptr<HookedTransformer> from_tensors(const ModelConfig& cfg,
                                                         const std::map<std::string, at::Tensor>& tensors,
                                                         const LoadOptions& opts = {});

  const ModelConfig& config() const { return cfg_; }
  HookManager& hooks() { return hooks_; }
  c10::ScalarType dtype() const { return dtype_; }
  c10::Device device() const { return device_; }
  int64_t num_parameters() const;
  const std::string& stored_dtype() const { return stored_dtype_; }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& source() const { return source_; }

  // input_ids [B,T] int64. attention_mask [B,S] (1 = real token) over cache + new positions,
  // optional: without it every position is real. position_ids [B,T] optional: by default they
  // follow the mask (left padding gets position 0 for its first real token, as in HF).
  // Returns logits [B,T,V] in the compute dtype.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}, KVCache* cache = nullptr,
                     const at::Tensor& position_ids = {});

  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // HF-named parameters in the compute dtype (for saving toy checkpoints and training).
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  void set_requires_grad(bool on);

 private:
  HookedTransformer(ModelConfig cfg, c10::ScalarType dtype, c10::Device device);
  void load_weights(const detail::WeightSource& src);
  at::Tensor attention(int64_t l, const at::Tensor& resid_pre, const at::Tensor& mask, const at::Tensor& cos,
                       const at::Tensor& sin, KVCache* cache, int64_t pos_offset);
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w) const;
  std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& position_ids) const;

  ModelConfig cfg_;
  c10::ScalarType dtype_;
  c10::Device device_;
  HookManager hooks_;
  at::Tensor embed_, final_norm_, lm_head_;  // lm_head_ aliases embed_ when tied
  std::vector<LayerWeights> layers_;
  at::Tensor inv_freq_;                      // [Dh/2] float32, scaling applied
  std::string stored_dtype_;
  std::string fingerprint_;
  std::string source_;
};

// RoPE inverse frequencies after rope scaling, float32 [head_dim/2]. Exposed for tests.
at::Tensor rope_inv_freq(const ModelConfig& cfg);

}  // namespace circuitscope
