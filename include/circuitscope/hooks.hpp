// Hook points: the only seam between the model and everything else (patching, attribution,
// evaluation, ablation). Names follow TransformerLens, e.g. "blocks.3.attn.hook_z".
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace circuitscope {

// Per-layer hook kinds. Shapes (B batch, T query positions, S key positions, H heads,
// K kv heads, Dh head_dim, D d_model, M d_mlp):
enum class HookKind : int {
  kResidPre,       // blocks.{l}.hook_resid_pre        [B,T,D]
  kAttnIn,         // blocks.{l}.hook_attn_in          [B,T,D]  residual copy feeding attention (pre-LN)
  kQInput,         // blocks.{l}.hook_q_input          [B,T,H,D] per-head query input (split mode)
  kKInput,         // blocks.{l}.hook_k_input          [B,T,K,D]
  kVInput,         // blocks.{l}.hook_v_input          [B,T,K,D]
  kLn1Normalized,  // blocks.{l}.ln1.hook_normalized   [B,T,D] (not used in split mode)
  kQ,              // blocks.{l}.attn.hook_q           [B,T,H,Dh] (after q_norm when the arch has it)
  kK,              // blocks.{l}.attn.hook_k           [B,T,K,Dh]
  kV,              // blocks.{l}.attn.hook_v           [B,T,K,Dh]
  kRotQ,           // blocks.{l}.attn.hook_rot_q       [B,T,H,Dh]
  kRotK,           // blocks.{l}.attn.hook_rot_k       [B,T,K,Dh]
  kAttnScores,     // blocks.{l}.attn.hook_attn_scores [B,H,T,S] scaled and masked, before softmax
  kPattern,        // blocks.{l}.attn.hook_pattern     [B,H,T,S]
  kZ,              // blocks.{l}.attn.hook_z           [B,T,H,Dh]
  kResult,         // blocks.{l}.attn.hook_result      [B,T,H,D] each head's write into the residual
  kAttnOut,        // blocks.{l}.hook_attn_out         [B,T,D]
  kResidMid,       // blocks.{l}.hook_resid_mid        [B,T,D]
  kMlpIn,          // blocks.{l}.hook_mlp_in           [B,T,D] residual copy feeding the MLP (pre-LN)
  kLn2Normalized,  // blocks.{l}.ln2.hook_normalized   [B,T,D]
  kMlpPre,         // blocks.{l}.mlp.hook_pre          [B,T,M] gate pre-activation
  kMlpPreLinear,   // blocks.{l}.mlp.hook_pre_linear   [B,T,M] up projection
  kMlpPost,        // blocks.{l}.mlp.hook_post         [B,T,M]
  kMlpOut,         // blocks.{l}.hook_mlp_out          [B,T,D]
  kResidPost,      // blocks.{l}.hook_resid_post       [B,T,D]
  kCount
};
constexpr int kNumLayerHooks = static_cast<int>(HookKind::kCount);

// Global points: hook_embed [B,T,D] and ln_final.hook_normalized [B,T,D].
constexpr int kHookEmbed = 0;
constexpr int kHookLnFinal = 1;
constexpr int kNumGlobalHooks = 2;

const char* hook_kind_suffix(HookKind k);  // "attn.hook_z"
// The name of a per-layer point, "blocks.{layer}.{suffix}" (TransformerLens's get_act_name): the one
// place such names are built.
std::string hook_name(int64_t layer, HookKind kind);
// Which dimension indexes heads for a kind, or -1 when the tensor has no head dimension.
int head_dim_of(HookKind k);

struct HookContext {
  const std::string& name;
  int layer;          // -1 for global points
  HookKind kind;      // meaningful only when layer >= 0
  int64_t pos_offset; // absolute position of index 0 along T (non-zero during cached generation)
};

// A hook returns the tensor that continues the forward pass. Read hooks return their input.
using HookFn = std::function<at::Tensor(const at::Tensor&, const HookContext&)>;

class HookManager;

// Removes the hooks it owns when destroyed (RAII scope for write hooks and caches).
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(HookManager* mgr, std::vector<uint64_t> ids) : mgr_(mgr), ids_(std::move(ids)) {}
  HookHandle(HookHandle&& o) noexcept;
  HookHandle& operator=(HookHandle&& o) noexcept;
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle();
  void remove();
  size_t size() const { return ids_.size(); }

 private:
  HookManager* mgr_ = nullptr;
  std::vector<uint64_t> ids_;
};

class HookManager {
 public:
  explicit HookManager(int64_t n_layers);

  int64_t n_layers() const { return n_layers_; }
  int num_points() const { return static_cast<int>(names_.size()); }
  static int point_id(int64_t layer, HookKind kind) { return kNumGlobalHooks + static_cast<int>(layer) * kNumLayerHooks + static_cast<int>(kind); }
  const std::string& name(int id) const { return names_[id]; }
  const std::vector<std::string>& names() const { return names_; }
  std::optional<int> find(const std::string& name) const;
  // Points whose names match a glob ('*' any run of characters, '?' one character).
  // Throws when the pattern matches nothing.
  std::vector<int> match(const std::string& pattern) const;

  HookHandle add(const std::string& pattern, HookFn fn);
  HookHandle add(const std::vector<int>& ids, HookFn fn);
  void clear();

  // Hot path: a vector lookup when nothing is attached.
  bool active(int id) const { return !hooks_[id].empty(); }
  bool any_active(int64_t layer, std::initializer_list<HookKind> kinds) const;
  at::Tensor apply(int id, const at::Tensor& x, int64_t pos_offset = 0) const {
    if (hooks_[id].empty()) return x;
    return apply_slow(id, x, pos_offset);
  }

 private:
  friend class HookHandle;
  at::Tensor apply_slow(int id, const at::Tensor& x, int64_t pos_offset) const;
  void remove_ids(const std::vector<uint64_t>& ids);

  int64_t n_layers_;
  std::vector<std::string> names_;
  std::map<std::string, int> by_name_;
  std::vector<std::vector<std::pair<uint64_t, HookFn>>> hooks_;
  uint64_t next_id_ = 1;
};

bool glob_match(const std::string& pattern, const std::string& text);

// Read hooks: stores activations by hook name.
class ActivationCache {
 public:
  // detach=false keeps the autograd graph, so gradients can be taken with respect to cached
  // activations (attribution). to_cpu moves values off the device as they are recorded.
  HookHandle attach(HookManager& mgr, const std::vector<std::string>& patterns, bool detach = true, bool to_cpu = false);
  bool contains(const std::string& name) const { return values_.count(name) > 0; }
  const at::Tensor& at(const std::string& name) const;
  const std::map<std::string, at::Tensor>& values() const { return values_; }
  void clear() { values_.clear(); }

 private:
  std::map<std::string, at::Tensor> values_;
};

// Write-hook builders. `head` (when given) restricts the edit to one head along the kind's
// head dimension; the tensor value must then match the slice's shape (or broadcast to it).
HookFn replace_hook(at::Tensor value, std::optional<int64_t> head = std::nullopt);
HookFn add_hook(at::Tensor delta, std::optional<int64_t> head = std::nullopt);
HookFn scale_hook(double factor, std::optional<int64_t> head = std::nullopt);

}  // namespace circuitscope

namespace circuitscope {

// Head-level interventions as in the Thinking Sparks study: zero a head's output, or scale it.
// Applied on blocks.{layer}.attn.hook_z (a head's output is W_O applied to its z, and o_proj has
// no per-head bias), so they hold during generation too.
struct HeadIntervention {
  int64_t layer = 0;
  int64_t head = 0;
  double factor = 0.0;  // 0 = ablate (zero)
};

// "3.1" (ablate layer 3 head 1) or "3.1=1.3" / "3.1:1.3" (scale by 1.3).
HeadIntervention parse_head_intervention(const std::string& spec);
std::vector<HookHandle> apply_head_interventions(HookManager& hooks, const std::vector<HeadIntervention>& edits,
                                                 int64_t n_heads);

}  // namespace circuitscope
