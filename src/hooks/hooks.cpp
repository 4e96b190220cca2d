#include "circuitscope/hooks.hpp"

#include <ATen/ATen.h>

#include "circuitscope/error.hpp"

namespace circuitscope {

namespace {
constexpr const char* kSuffixes[kNumLayerHooks] = {
    "hook_resid_pre",       "hook_attn_in",         "hook_q_input",       "hook_k_input",
    "hook_v_input",         "ln1.hook_normalized",  "attn.hook_q",        "attn.hook_k",
    "attn.hook_v",          "attn.hook_rot_q",      "attn.hook_rot_k",    "attn.hook_attn_scores",
    "attn.hook_pattern",    "attn.hook_z",          "attn.hook_result",   "hook_attn_out",
    "hook_resid_mid",       "hook_mlp_in",          "ln2.hook_normalized", "mlp.hook_pre",
    "mlp.hook_pre_linear",  "mlp.hook_post",        "hook_mlp_out",       "hook_resid_post",
};
}  // namespace

const char* hook_kind_suffix(HookKind k) { return kSuffixes[static_cast<int>(k)]; }

std::string hook_name(int64_t layer, HookKind kind) {
  return "blocks." + std::to_string(layer) + "." + hook_kind_suffix(kind);
}

int head_dim_of(HookKind k) {
  switch (k) {
    case HookKind::kQInput: case HookKind::kKInput: case HookKind::kVInput:
    case HookKind::kQ: case HookKind::kK: case HookKind::kV:
    case HookKind::kRotQ: case HookKind::kRotK: case HookKind::kZ: case HookKind::kResult:
      return 2;
    case HookKind::kAttnScores: case HookKind::kPattern:
      return 1;
    default:
      return -1;
  }
}

bool glob_match(const std::string& p, const std::string& t) {
  // Iterative matcher with backtracking on the last '*'.
  size_t pi = 0, ti = 0, star = std::string::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

HookHandle::HookHandle(HookHandle&& o) noexcept : mgr_(o.mgr_), ids_(std::move(o.ids_)) { o.mgr_ = nullptr; }
HookHandle& HookHandle::operator=(HookHandle&& o) noexcept {
  if (this != &o) {
    remove();
    mgr_ = o.mgr_;
    ids_ = std::move(o.ids_);
    o.mgr_ = nullptr;
  }
  return *this;
}
HookHandle::~HookHandle() { remove(); }
void HookHandle::remove() {
  if (mgr_ && !ids_.empty()) mgr_->remove_ids(ids_);
  ids_.clear();
  mgr_ = nullptr;
}

HookManager::HookManager(int64_t n_layers) : n_layers_(n_layers) {
  names_.resize(kNumGlobalHooks + n_layers * kNumLayerHooks);
  names_[kHookEmbed] = "hook_embed";
  names_[kHookLnFinal] = "ln_final.hook_normalized";
  for (int64_t l = 0; l < n_layers; ++l)
    for (int k = 0; k < kNumLayerHooks; ++k)
      names_[point_id(l, static_cast<HookKind>(k))] = hook_name(l, static_cast<HookKind>(k));
  for (size_t i = 0; i < names_.size(); ++i) by_name_[names_[i]] = static_cast<int>(i);
  hooks_.resize(names_.size());
}

std::optional<int> HookManager::find(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::vector<int> HookManager::match(const std::string& pattern) const {
  std::vector<int> out;
  if (auto id = find(pattern)) return {*id};
  for (size_t i = 0; i < names_.size(); ++i)
    if (glob_match(pattern, names_[i])) out.push_back(static_cast<int>(i));
  if (out.empty())
    throw Error(ErrorCode::kUsage, "hook pattern '" + pattern + "' matches no hook point; names look like "
                                   "'blocks.0.attn.hook_z', 'blocks.*.hook_resid_post', 'hook_embed'");
  return out;
}

HookHandle HookManager::add(const std::string& pattern, HookFn fn) { return add(match(pattern), std::move(fn)); }

HookHandle HookManager::add(const std::vector<int>& ids, HookFn fn) {
  std::vector<uint64_t> handles;
  for (int id : ids) {
    if (id < 0 || id >= num_points()) throw Error(ErrorCode::kInternal, "hook point id out of range");
    const uint64_t h = next_id_++;
    hooks_[id].emplace_back(h, fn);
    handles.push_back(h);
  }
  return HookHandle(this, std::move(handles));
}

void HookManager::remove_ids(const std::vector<uint64_t>& ids) {
  for (auto& v : hooks_)
    for (uint64_t h : ids)
      for (auto it = v.begin(); it != v.end(); ++it)
        if (it->first == h) {
          v.erase(it);
          break;
        }
}

void HookManager::clear() {
  for (auto& v : hooks_) v.clear();
}

bool HookManager::any_active(int64_t layer, std::initializer_list<HookKind> kinds) const {
  for (HookKind k : kinds)
    if (active(point_id(layer, k))) return true;
  return false;
}

at::Tensor HookManager::apply_slow(int id, const at::Tensor& x, int64_t pos_offset) const {
  int layer = -1;
  HookKind kind = HookKind::kCount;
  if (id >= kNumGlobalHooks) {
    layer = (id - kNumGlobalHooks) / kNumLayerHooks;
    kind = static_cast<HookKind>((id - kNumGlobalHooks) % kNumLayerHooks);
  }
  HookContext ctx{names_[id], layer, kind, pos_offset};
  at::Tensor cur = x;
  // Copy: a hook may add or remove hooks while running.
  auto fns = hooks_[id];
  for (auto& [h, fn] : fns) {
    at::Tensor next = fn(cur, ctx);
    if (!next.defined()) throw Error(ErrorCode::kInternal, "hook on '" + names_[id] + "' returned an undefined tensor");
    if (next.sizes() != cur.sizes())
      throw Error(ErrorCode::kInput, "hook on '" + names_[id] + "' returned shape " + shape_str(next.sizes()) +
                                         "; expected " + shape_str(cur.sizes()));
    cur = next;
  }
  return cur;
}

HookHandle ActivationCache::attach(HookManager& mgr, const std::vector<std::string>& patterns, bool detach, bool to_cpu) {
  std::vector<int> ids;
  for (const auto& p : patterns)
    for (int id : mgr.match(p)) ids.push_back(id);
  return mgr.add(ids, [this, detach, to_cpu](const at::Tensor& x, const HookContext& ctx) {
    at::Tensor v = detach ? x.detach() : x;
    if (to_cpu) v = v.to(c10::kCPU);
    auto it = values_.find(ctx.name);
    // During cached generation each step adds positions: concatenate along T.
    if (it != values_.end() && ctx.pos_offset > 0 && it->second.dim() == v.dim()) {
      const int64_t tdim = (ctx.kind == HookKind::kAttnScores || ctx.kind == HookKind::kPattern) ? -1 : 1;
      if (tdim == 1) it->second = at::cat({it->second, v}, 1);
      else it->second = v;  // patterns change key length each step; keep the latest
    } else {
      values_[ctx.name] = v;
    }
    return x;
  });
}

const at::Tensor& ActivationCache::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error(ErrorCode::kUsage, "activation '" + name + "' is not in the cache");
  return it->second;
}

namespace {
// Broadcast shape for a per-head factor: ones except the head dim.
at::Tensor head_mask(const at::Tensor& x, int dim, int64_t head, double inside, double outside) {
  if (dim < 0) throw Error(ErrorCode::kUsage, "this hook point has no head dimension");
  if (head < 0 || head >= x.size(dim))
    throw Error(ErrorCode::kUsage, "head " + std::to_string(head) + " out of range [0," + std::to_string(x.size(dim)) + ")");
  std::vector<int64_t> shape(x.dim(), 1);
  shape[dim] = x.size(dim);
  at::Tensor m = at::full({x.size(dim)}, outside, x.options());
  m[head] = inside;
  return m.view(shape);
}
}  // namespace

HookFn replace_hook(at::Tensor value, std::optional<int64_t> head) {
  return [value, head](const at::Tensor& x, const HookContext& ctx) {
    at::Tensor v = value.to(x.device(), x.scalar_type());
    if (!head) return v.expand_as(x).clone();
    const int d = head_dim_of(ctx.kind);
    at::Tensor keep = head_mask(x, d, *head, 0.0, 1.0);
    // v matches the slice (head dim removed) or the full tensor.
    if (v.dim() == x.dim() - 1) v = v.unsqueeze(d);
    return x * keep + v * (1 - keep);
  };
}

HookFn add_hook(at::Tensor delta, std::optional<int64_t> head) {
  return [delta, head](const at::Tensor& x, const HookContext& ctx) {
    at::Tensor v = delta.to(x.device(), x.scalar_type());
    if (!head) return x + v;
    const int d = head_dim_of(ctx.kind);
    at::Tensor sel = head_mask(x, d, *head, 1.0, 0.0);
    if (v.dim() == x.dim() - 1) v = v.unsqueeze(d);
    return x + v * sel;
  };
}

HookFn scale_hook(double factor, std::optional<int64_t> head) {
  return [factor, head](const at::Tensor& x, const HookContext& ctx) {
    if (!head) return x * factor;
    return x * head_mask(x, head_dim_of(ctx.kind), *head, factor, 1.0);
  };
}

}  // namespace circuitscope
