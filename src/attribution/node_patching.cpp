// Exact node patching: one clean forward pass per node (and position), with write hooks carrying
// the corrupted run's values.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "core/enum_names.hpp"

namespace circuitscope {

namespace {
constexpr detail::NameTable<PatchLevel, 3> kPatchLevelNames = {
    {{PatchLevel::kHead, "head"}, {PatchLevel::kMlp, "mlp"}, {PatchLevel::kResid, "resid"}}};
}  // namespace

PatchLevel parse_patch_level(const std::string& s) { return detail::parse_name(kPatchLevelNames, s, "patch level"); }
const char* patch_level_name(PatchLevel l) { return detail::name_of(kPatchLevelNames, l); }

std::string NodePatch::name() const {
  switch (level) {
    case PatchLevel::kHead: return "a" + std::to_string(layer) + ".h" + std::to_string(head);
    case PatchLevel::kMlp: return "m" + std::to_string(layer);
    case PatchLevel::kResid: return layer < 0 ? std::string("embed") : "resid" + std::to_string(layer);
  }
  return "?";
}

std::vector<NodePatch> patch_nodes(const ModelConfig& cfg, PatchLevel level) {
  std::vector<NodePatch> out;
  if (level == PatchLevel::kResid) out.push_back({level, -1, -1});
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    if (level == PatchLevel::kHead)
      for (int64_t h = 0; h < cfg.n_heads; ++h) out.push_back({level, l, h});
    else
      out.push_back({level, l, -1});
  }
  return out;
}

namespace {

std::string node_hook(const NodePatch& n) {
  switch (n.level) {
    case PatchLevel::kHead: return hook_name(n.layer, HookKind::kZ);
    case PatchLevel::kMlp: return hook_name(n.layer, HookKind::kMlpOut);
    case PatchLevel::kResid: return n.layer < 0 ? std::string("hook_embed") : hook_name(n.layer, HookKind::kResidPost);
  }
  return "";
}

AttributionBatch on_device(const AttributionBatch& in, const at::Device& dev) {
  AttributionBatch b = in;
  b.clean_ids = b.clean_ids.to(dev, at::kLong);
  b.corrupted_ids = b.corrupted_ids.to(dev, at::kLong);
  if (b.attention_mask.defined()) b.attention_mask = b.attention_mask.to(dev);
  // The corrupted run keeps its own mask (unequal lengths), as in eap_scores.
  b.corrupted_mask = b.corrupted_mask.defined() ? b.corrupted_mask.to(dev) : b.attention_mask;
  return b;
}

// [B,T] bool: each row's position-th real token.
at::Tensor position_mask(const AttributionBatch& b, int64_t position) {
  const int64_t B = b.clean_ids.size(0), T = b.clean_ids.size(1);
  const auto opts = at::TensorOptions().dtype(at::kLong).device(b.clean_ids.device());
  at::Tensor real = b.attention_mask.defined() ? b.attention_mask.to(at::kLong) : at::ones({B, T}, opts);
  at::Tensor idx = real.cumsum(1) - 1;
  return (idx == position).logical_and(real.to(at::kBool));
}

// Clean run with the nodes carrying values from `corr` (hook name -> corrupted activation).
at::Tensor run_patched(HookedTransformer& model, const AttributionBatch& b, const std::map<std::string, at::Tensor>& corr,
                       const std::vector<NodePatch>& nodes, MetricKind metric, int64_t position,
                       const at::Tensor& clean_logits) {
  at::Tensor pm;
  if (position >= 0) pm = position_mask(b, position);
  std::vector<HookHandle> hs;
  for (const NodePatch& n : nodes) {
    const std::string name = node_hook(n);
    const at::Tensor& c = corr.at(name);
    const int64_t head = n.level == PatchLevel::kHead ? n.head : -1;
    hs.push_back(model.hooks().add(name, [c, head, pm](const at::Tensor& x, const HookContext&) {
      at::Tensor src = head >= 0 ? c.select(2, head) : c;
      at::Tensor dst = head >= 0 ? x.select(2, head) : x;
      at::Tensor val = src;
      if (pm.defined()) {
        at::Tensor m = pm;
        while (m.dim() < dst.dim()) m = m.unsqueeze(-1);
        val = at::where(m, src, dst);
      }
      if (head < 0) return val.to(x.scalar_type());
      at::Tensor y = x.clone();
      y.select(2, head).copy_(val);
      return y;
    }));
  }
  at::Tensor logits = model.forward(b.clean_ids, b.attention_mask);
  hs.clear();
  return metric_per_example(metric, logits, b, clean_logits).to(at::kFloat).cpu();
}

std::map<std::string, at::Tensor> corrupted_values(HookedTransformer& model, const AttributionBatch& b,
                                                   const std::vector<NodePatch>& nodes) {
  std::vector<std::string> names;
  for (const NodePatch& n : nodes) names.push_back(node_hook(n));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  ActivationCache cache;
  {
    HookHandle h = cache.attach(model.hooks(), names);
    model.forward(b.corrupted_ids, b.corrupted_mask);
  }
  return cache.values();
}

}  // namespace

at::Tensor patched_metric(HookedTransformer& model, const AttributionBatch& batch, const std::vector<NodePatch>& nodes,
                          MetricKind metric, int64_t position) {
  c10::AutoGradMode no_grad(false);
  const AttributionBatch b = on_device(batch, model.device());
  const at::Tensor clean_logits = model.forward(b.clean_ids, b.attention_mask);
  return run_patched(model, b, corrupted_values(model, b, nodes), nodes, metric, position, clean_logits);
}

NodePatchingResult node_patching(HookedTransformer& model, const std::vector<PairExample>& examples, PatchLevel level,
                                 bool per_position, MetricKind metric, bool loss, int64_t batch_size) {
  c10::AutoGradMode no_grad(false);
  if (examples.empty()) throw Error(ErrorCode::kInput, "no examples to patch");
  if (batch_size <= 0) throw Error(ErrorCode::kUsage, "batch size must be positive; found " + std::to_string(batch_size));
  NodePatchingResult r;
  r.nodes = patch_nodes(model.config(), level);
  const size_t n_nodes = r.nodes.size();
  int64_t P = 0;
  for (const PairExample& e : examples) P = std::max<int64_t>(P, static_cast<int64_t>(e.clean_ids.size()));
  r.scores.assign(n_nodes, 0.0);
  if (per_position) {
    r.per_position.assign(n_nodes, std::vector<double>(P, 0.0));
    r.position_counts.assign(P, 0);
  }
  const double sign = loss ? -1.0 : 1.0;
  const double N = static_cast<double>(examples.size());
  for (size_t begin = 0; begin < examples.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(examples.size(), begin + static_cast<size_t>(batch_size));
    const AttributionBatch b = on_device(make_attribution_batch(examples, begin, end), model.device());
    const at::Tensor clean_logits = model.forward(b.clean_ids, b.attention_mask);
    const at::Tensor m_clean = metric_per_example(metric, clean_logits, b, clean_logits).to(at::kFloat).cpu();
    const at::Tensor corr_logits = model.forward(b.corrupted_ids, b.corrupted_mask);
    const at::Tensor m_corr = metric_per_example(metric, corr_logits, b, clean_logits).to(at::kFloat).cpu();
    r.metric_clean += sign * m_clean.sum().item<double>() / N;
    r.metric_corrupted += sign * m_corr.sum().item<double>() / N;
    const auto corr = corrupted_values(model, b, r.nodes);
    for (size_t i = 0; i < n_nodes; ++i) {
      const at::Tensor m = run_patched(model, b, corr, {r.nodes[i]}, metric, -1, clean_logits);
      r.scores[i] += sign * (m_clean - m).sum().item<double>() / N;
    }
    if (!per_position) continue;
    for (int64_t k = 0; k < P; ++k) {
      const at::Tensor has = position_mask(b, k).any(1).cpu();  // [B]
      const int64_t cnt = has.sum().item<int64_t>();
      if (cnt == 0) continue;
      r.position_counts[k] += cnt;
      for (size_t i = 0; i < n_nodes; ++i) {
        const at::Tensor m = run_patched(model, b, corr, {r.nodes[i]}, metric, k, clean_logits);
        r.per_position[i][k] += sign * ((m_clean - m) * has.to(at::kFloat)).sum().item<double>();
      }
    }
  }
  for (size_t i = 0; i < r.per_position.size(); ++i)
    for (int64_t k = 0; k < P; ++k)
      if (r.position_counts[k] > 0) r.per_position[i][k] /= static_cast<double>(r.position_counts[k]);
  return r;
}

}  // namespace circuitscope
