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
const char* compute_dtype_name(c10::ScalarType t);  // "f32" | "bf16" (reports' method.dtype)
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
  // Returns logits [B,T,V] in the compute dtype. With logit_positions [B,P] int64 (indices into
  // the T new positions), only the logits at those positions, [B,P,V]: the unembedding is the
  // largest single product of a forward pass with a large vocabulary, and a metric often reads a
  // few positions. Every hook point still sees all T positions.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}, KVCache* cache = nullptr,
                     const at::Tensor& position_ids = {}, const at::Tensor& logit_positions = {});

  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // Each head's output in layer `layer` (what blocks.{layer}.attn.hook_result holds, without the
  // output bias) from that layer's blocks.{layer}.attn.hook_z value z [B,T,H,Dh], written into
  // `out`: contiguous, [H,B,T,D] elements, the compute dtype. Lets a caller capture hook_z (the
  // model then keeps its fused output projection) and lay the results out as it needs them.
  void head_results_into(int64_t layer, const at::Tensor& z, const at::Tensor& out) const;

  // HF-named parameters in the compute dtype (for saving toy checkpoints and training).
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  void set_requires_grad(bool on);

 private:
  friend class HeadInputGradSum;
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
  // The last few input tensors (ids, logit positions) whose values forward() has range-checked,
  // with their version counters. Reading values on a GPU is a device-to-host sync; EAP-IG runs m+2
  // forwards on the same tensors, so each is checked once (changed in place, it is checked again).
  struct CheckedInput {
    at::Tensor tensor;
    int64_t version;
    int64_t bound;  // its values were found in [0, bound)
  };
  std::vector<CheckedInput> checked_inputs_;
  bool input_checked(const at::Tensor& t, int64_t bound) const;
  void remember_checked(const at::Tensor& t, int64_t bound);
};

// Sums over gradient runs of d(metric)/d(each head's own q, k or v input): what split mode's
// hook_q_input, hook_k_input and hook_v_input points would receive, but from runs without split
// mode. A run adds, per layer, the gradients at hook_q, hook_k and hook_v with those points' values
// and the layer's input. It keeps only the gradients at the projections' outputs and the norm's
// run-dependent terms, so a run costs O(heads x positions x head_dim); the [head, B, T, d_model]
// sums are formed once, when read.
class HeadInputGradSum {
 public:
  // Each head's gradient at a projection's output (hook_q, hook_k or hook_v) and that point's value.
  struct Stream {
    at::Tensor grad;  // [B,T,N,Dh]
    at::Tensor out;   // [B,T,N',Dh]: the hook point's value in the same run
  };
  explicit HeadInputGradSum(const HookedTransformer& model);
  // resid: the layer's input (hook_resid_pre) [B,T,D]. For q, N = N' = n_heads. For k and v, N' =
  // n_kv_heads and N is n_kv_heads, or n_heads for each query head's own use of its kv head (query
  // head h reads kv head h / (n_heads / n_kv_heads)). Every run must have the same B and T.
  void add(int64_t layer, const at::Tensor& resid, const Stream& q, const Stream& k, const Stream& v);
  // The sum over the runs added so far, [N,B,T,D] in the model's compute dtype; stream 0 = q, 1 = k, 2 = v.
  // It is projection - sum over runs r of norm_weights[r,:,n] * norm_inputs[r] (per position):
  // a consumer that only takes inner products with it (attribution scores) can use the two parts
  // and never form the second one at full size.
  at::Tensor sum(int64_t layer, int stream) const;
  // The projection part, written into `out` (contiguous, [N,B,T,D] elements, the compute dtype).
  void projection_into(int64_t layer, int stream, const at::Tensor& out) const;
  at::Tensor norm_weights(int64_t layer, int stream) const;  // [R,B*T,N] float32
  at::Tensor norm_inputs(int64_t layer) const;               // [R,B*T,D] compute dtype: each run's normalized layer input
  const at::Tensor& norm_input(int64_t layer, int64_t run) const;  // [B*T,D]: run `run`'s part of norm_inputs, no copy
  int64_t runs(int64_t layer) const { return static_cast<int64_t>(acc_.at(layer).y.size()); }
  int64_t heads(int64_t layer, int stream) const { return acc_.at(layer).s[stream].defined() ? acc_.at(layer).s[stream].size(0) : 0; }

 private:
  struct Layer {
    at::Tensor s[3];               // per stream [N,BT,Dh] float32: sum over runs of r * (grad at the projection output)
    std::vector<at::Tensor> c[3];  // per stream, per run [BT,N] float32: the norm's correction weights
    std::vector<at::Tensor> y;     // per run [BT,D] compute dtype: the normalized layer input
    int64_t b = 0, t = 0;
  };
  const Layer& added(int64_t layer) const;  // a layer's sums; at least one run must have been added
  const HookedTransformer& model_;
  std::vector<Layer> acc_;
};

// RoPE inverse frequencies after rope scaling, float32 [head_dim/2]. Exposed for tests.
at::Tensor rope_inv_freq(const ModelConfig& cfg);

}  // namespace circuitscope
