#include "circuitscope/patching.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <map>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "core/enum_names.hpp"

namespace circuitscope {

namespace {

double mean_metric(MetricKind metric, const at::Tensor& logits, const AttributionBatch& b, const at::Tensor& clean_logits,
                   bool loss) {
  const double v = metric_per_example(metric, logits, b, clean_logits).mean().item<double>();
  return loss ? -v : v;
}

}  // namespace

namespace {
constexpr detail::NameTable<Intervention, 4> kInterventionNames = {{{Intervention::kPatch, "patch"},
                                                                    {Intervention::kZero, "zero"},
                                                                    {Intervention::kMean, "mean"},
                                                                    {Intervention::kMeanPositional, "mean-positional"}}};
constexpr detail::NameTable<MeanSource, 2> kMeanSourceNames = {
    {{MeanSource::kClean, "clean"}, {MeanSource::kCorrupted, "corrupted"}}};
}  // namespace

Intervention parse_intervention(const std::string& s) { return detail::parse_name(kInterventionNames, s, "intervention"); }
const char* intervention_name(Intervention i) { return detail::name_of(kInterventionNames, i); }
MeanSource parse_mean_source(const std::string& s) { return detail::parse_name(kMeanSourceNames, s, "mean source"); }
const char* mean_source_name(MeanSource m) { return detail::name_of(kMeanSourceNames, m); }

namespace {
// Index of each token among its row's real tokens, [B,T] int64 (padding: 0).
at::Tensor real_positions(const at::Tensor& mask, int64_t B, int64_t T, const at::Device& dev) {
  if (!mask.defined()) return at::arange(T, at::TensorOptions().dtype(at::kLong).device(dev)).unsqueeze(0).expand({B, T});
  at::Tensor m = mask.to(dev, at::kLong);
  return (m.cumsum(1) - 1).clamp_min(0);
}
}  // namespace

at::Tensor mean_upstream_activations(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                                     bool positional, MeanSource source, int64_t batch_size) {
  c10::AutoGradMode no_grad(false);
  if (examples.empty()) throw Error(ErrorCode::kInput, "no examples to take means over");
  if (batch_size <= 0) throw Error(ErrorCode::kUsage, "batch size must be positive; found " + std::to_string(batch_size));
  const auto dev = model.device();
  const int64_t U = graph.n_upstream(), D = model.config().d_model;
  int64_t P = 1;
  for (const PairExample& e : examples)
    P = std::max<int64_t>(P, static_cast<int64_t>(std::max(e.clean_ids.size(), e.corrupted_ids.size())));
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(dev);
  at::Tensor sums = at::zeros({positional ? P : 1, U, D}, f32);
  at::Tensor counts = at::zeros({positional ? P : 1}, f32);
  const size_t N = examples.size();
  for (size_t begin = 0; begin < N; begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(N, begin + static_cast<size_t>(batch_size));
    const AttributionBatch b = make_attribution_batch(examples, begin, end);
    const bool from_clean = source == MeanSource::kClean;
    const at::Tensor ids = (from_clean ? b.clean_ids : b.corrupted_ids).to(dev, at::kLong);
    const at::Tensor& src_mask = !from_clean && b.corrupted_mask.defined() ? b.corrupted_mask : b.attention_mask;
    const at::Tensor mask = src_mask.defined() ? src_mask.to(dev) : at::Tensor();
    const int64_t B = ids.size(0), T = ids.size(1);
    at::Tensor z = upstream_activations(model, graph, ids, mask).to(at::kFloat).reshape({B * T, U, D});
    at::Tensor real = mask.defined() ? mask.to(at::kBool).reshape({B * T}) : at::ones({B * T}, f32.dtype(at::kBool));
    at::Tensor rows = real.nonzero().squeeze(1);
    at::Tensor pos = positional ? real_positions(mask, B, T, dev).reshape({B * T}).index_select(0, rows).clamp_max(P - 1)
                                : at::zeros({rows.size(0)}, f32.dtype(at::kLong));
    sums.index_add_(0, pos, z.index_select(0, rows));
    counts.index_add_(0, pos, at::ones({rows.size(0)}, f32));
  }
  at::Tensor means = sums / counts.clamp_min(1.0).view({-1, 1, 1});
  return positional ? means : means.squeeze(0);
}

at::Tensor mean_reference(const at::Tensor& means, const AttributionBatch& b, bool positional, at::ScalarType dtype) {
  const int64_t B = b.clean_ids.size(0), T = b.clean_ids.size(1);
  const int64_t U = means.size(-2), D = means.size(-1);
  if (!positional) return means.to(dtype).view({1, 1, U, D}).expand({B, T, U, D});
  const at::Tensor pos = real_positions(b.attention_mask, B, T, means.device()).clamp_max(means.size(0) - 1);
  return means.to(dtype).index_select(0, pos.reshape({B * T})).view({B, T, U, D});
}

double circuit_metric(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch_in,
                      const at::Tensor& in_circuit, MetricKind metric, bool loss, const at::Tensor& reference) {
  c10::AutoGradMode no_grad(false);
  const auto& s = graph.spec();
  const int64_t L = s.n_layers, H = s.n_heads, K = s.n_kv_heads, G = H / K, U = graph.n_upstream();
  if (in_circuit.dim() != 2 || in_circuit.size(0) != U || in_circuit.size(1) != graph.n_downstream())
    throw Error(ErrorCode::kInput, "circuit mask has shape " + shape_str(in_circuit.sizes()) + "; expected [" +
                                       std::to_string(U) + "," + std::to_string(graph.n_downstream()) + "]");
  const auto dev = model.device();
  AttributionBatch b = batch_in;
  b.clean_ids = b.clean_ids.to(dev, at::kLong);
  b.corrupted_ids = b.corrupted_ids.to(dev, at::kLong);
  if (b.attention_mask.defined()) b.attention_mask = b.attention_mask.to(dev);

  // out[u][v] = 1 where a graph edge is patched; float weights in the compute dtype.
  at::Tensor out = in_circuit.to(at::kCPU, at::kBool).logical_not().to(at::kFloat);
  for (int64_t v = 0; v < graph.n_downstream(); ++v) {
    const int64_t vis = graph.downstream()[v].n_visible;
    if (vis < U) out.narrow(0, vis, U - vis).select(1, v).zero_();
  }
  const bool per_q = s.kv_edges == KvEdges::kPerQueryHead;
  // Per query head with GQA: collapse each group to its kv head, which must be uniform.
  auto kv_weights = [&](int64_t first_down) -> at::Tensor {  // [U, K]
    at::Tensor w = out.narrow(1, first_down, graph.kv_nodes_per_layer());
    if (!per_q || G == 1) return w;
    at::Tensor g = w.view({U, K, G});
    if (!at::equal(g, g.select(2, 0).unsqueeze(2).expand({U, K, G})))
      throw Error(ErrorCode::kUnsupported,
                  "patching single query heads' k/v edges of a grouped-query model is not supported; keep each group's "
                  "k/v edges together or use a per-kv-head graph");
    return g.select(2, 0);
  };

  at::Tensor clean_logits = model.forward(b.clean_ids, b.attention_mask);
  at::Tensor corr;  // [B,T,U,D]
  if (reference.defined()) {
    const int64_t B = b.clean_ids.size(0), T = b.clean_ids.size(1);
    if (reference.dim() != 4 || reference.size(0) != B || reference.size(1) != T || reference.size(2) != U ||
        reference.size(3) != model.config().d_model)
      throw Error(ErrorCode::kInput, "patch reference has shape " + shape_str(reference.sizes()) + "; expected [" +
                                         std::to_string(B) + "," + std::to_string(T) + "," + std::to_string(U) + "," +
                                         std::to_string(model.config().d_model) + "]");
    corr = reference.to(dev, model.dtype());
  } else {
    corr = upstream_activations(model, graph, b.corrupted_ids, b.corrupted_mask.defined() ? b.corrupted_mask : b.attention_mask);
  }
  if (!out.any().item<bool>()) return mean_metric(metric, clean_logits, b, clean_logits, loss);

  const auto dt = corr.scalar_type();
  std::vector<at::Tensor> cur;  // upstream outputs of this run so far, each [B,T,n,D]
  auto diff = [&](int64_t vis) { return corr.narrow(2, 0, vis) - at::cat(cur, 2); };
  std::vector<HookHandle> hs;
  hs.push_back(model.hooks().add("hook_embed", [&](const at::Tensor& x, const HookContext&) {
    cur.clear();
    cur.push_back(x.unsqueeze(2));
    return x;
  }));
  hs.push_back(model.hooks().add("blocks.*.attn.hook_result", [&](const at::Tensor& x, const HookContext&) {
    cur.push_back(x);
    return x;
  }));
  hs.push_back(model.hooks().add("blocks.*.hook_mlp_out", [&](const at::Tensor& x, const HookContext&) {
    cur.push_back(x.unsqueeze(2));
    return x;
  }));
  // Each input's weights [vis, N] go to the device once, not in every hook call (a host-to-device
  // copy), and whether any edge into it is patched is read here on the host, not from the device.
  struct PatchWeights {
    at::Tensor w;  // [vis, N] on the model's device, compute dtype; undefined when nothing is patched
    int64_t vis = 0;
  };
  auto prepare = [&](const at::Tensor& w_cpu, int64_t vis) {
    PatchWeights p;
    p.vis = vis;
    const at::Tensor w = w_cpu.narrow(0, 0, vis);
    if (w.any().item<bool>()) p.w = w.to(dev, dt).contiguous();
    return p;
  };
  // Split inputs [B,T,N,D]: add sum over patched u of (corr - current).
  auto add_split = [&](const at::Tensor& x, const PatchWeights& p) {
    if (!p.w.defined()) return x;
    return x + at::einsum("btud,un->btnd", {diff(p.vis), p.w});
  };
  std::vector<PatchWeights> wq(L), wk(L), wv(L), wm(L);
  for (int64_t l = 0; l < L; ++l) {
    const int64_t vis = 1 + l * (H + 1);
    wq[l] = prepare(out.narrow(1, graph.downstream_q(l, 0), H), vis);
    wk[l] = prepare(kv_weights(graph.downstream_k(l, 0)), vis);
    wv[l] = prepare(kv_weights(graph.downstream_v(l, 0)), vis);
    wm[l] = prepare(out.narrow(1, graph.downstream_mlp(l), 1), vis + H);
  }
  const PatchWeights wl = prepare(out.narrow(1, graph.downstream_logits(), 1), U);
  hs.push_back(model.hooks().add("blocks.*.hook_q_input", [&](const at::Tensor& x, const HookContext& c) { return add_split(x, wq[c.layer]); }));
  hs.push_back(model.hooks().add("blocks.*.hook_k_input", [&](const at::Tensor& x, const HookContext& c) { return add_split(x, wk[c.layer]); }));
  hs.push_back(model.hooks().add("blocks.*.hook_v_input", [&](const at::Tensor& x, const HookContext& c) { return add_split(x, wv[c.layer]); }));
  auto add_dense = [&](const at::Tensor& x, const PatchWeights& w) {  // x [B,T,D], w [vis,1]
    return add_split(x.unsqueeze(2), w).squeeze(2);
  };
  hs.push_back(model.hooks().add("blocks.*.hook_mlp_in", [&](const at::Tensor& x, const HookContext& c) { return add_dense(x, wm[c.layer]); }));
  hs.push_back(model.hooks().add(hook_name(L - 1, HookKind::kResidPost),
                                 [&](const at::Tensor& x, const HookContext&) { return add_dense(x, wl); }));
  at::Tensor logits = model.forward(b.clean_ids, b.attention_mask);
  hs.clear();
  return mean_metric(metric, logits, b, clean_logits, loss);
}

std::vector<double> exact_edge_scores(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch,
                                      const std::vector<int64_t>& edges, MetricKind metric, bool loss) {
  at::Tensor all = at::ones({graph.n_upstream(), graph.n_downstream()}, at::kBool);
  const double clean = circuit_metric(model, graph, batch, all, metric, loss);
  std::vector<double> out;
  out.reserve(edges.size());
  for (int64_t e : edges) {
    auto [u, d] = graph.edge_nodes(e);
    at::Tensor m = all.clone();
    m[u][d] = false;
    out.push_back(clean - circuit_metric(model, graph, batch, m, metric, loss));
  }
  return out;
}

at::Tensor edge_mask_matrix(const Graph& graph, const std::vector<char>& edge_mask) {
  if (static_cast<int64_t>(edge_mask.size()) != graph.n_edges())
    throw Error(ErrorCode::kInput, "circuit mask has " + std::to_string(edge_mask.size()) + " entries for a graph of " +
                                       std::to_string(graph.n_edges()) + " edges");
  at::Tensor m = at::zeros({graph.n_upstream(), graph.n_downstream()}, at::kBool);
  auto a = m.accessor<bool, 2>();
  for (int64_t e = 0; e < graph.n_edges(); ++e) {
    auto [u, d] = graph.edge_nodes(e);
    a[u][d] = edge_mask[e] != 0;
  }
  return m;
}

std::unique_ptr<HookedTransformer> ungrouped_copy(const HookedTransformer& model) {
  ModelConfig cfg = model.config();
  const int64_t H = cfg.n_heads, K = cfg.n_kv_heads, G = H / K, Dh = cfg.head_dim;
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, t] : model.named_parameters()) tensors[name] = t;
  const TensorNames& n = cfg.arch->names;
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    for (const char* tmpl : {n.k_w, n.v_w, n.k_b, n.v_b}) {
      if (!tmpl || !*tmpl) continue;
      const std::string name = cfg.tensor_name(tmpl, l);
      auto it = tensors.find(name);
      if (it == tensors.end()) continue;  // no bias
      const at::Tensor& t = it->second;
      at::Tensor r = t.reshape({K, Dh, -1}).repeat_interleave(G, 0);
      it->second = t.dim() == 1 ? r.reshape({H * Dh}) : r.reshape({H * Dh, t.size(1)});
    }
  }
  cfg.n_kv_heads = H;
  LoadOptions lo;
  lo.dtype = model.dtype() == at::kBFloat16 ? "bf16" : "f32";
  lo.device = model.device().str();
  return HookedTransformer::from_tensors(cfg, tensors, lo);
}

Faithfulness faithfulness(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                          const std::vector<char>& edge_mask, MetricKind metric, bool loss, int64_t batch_size,
                          Intervention intervention) {
  return faithfulness(model, graph, examples, std::vector<std::vector<char>>{edge_mask}, metric, loss, batch_size,
                      intervention)[0];
}

std::vector<Faithfulness> faithfulness(HookedTransformer& model, const Graph& graph,
                                       const std::vector<PairExample>& examples,
                                       const std::vector<std::vector<char>>& edge_masks, MetricKind metric, bool loss,
                                       int64_t batch_size, Intervention intervention, MeanSource mean_source) {
  if (examples.empty()) throw Error(ErrorCode::kInput, "no examples to evaluate");
  if (batch_size <= 0) throw Error(ErrorCode::kUsage, "batch size must be positive; found " + std::to_string(batch_size));
  std::vector<at::Tensor> in;
  for (const auto& m : edge_masks) in.push_back(edge_mask_matrix(graph, m));
  const at::Tensor all = at::ones({graph.n_upstream(), graph.n_downstream()}, at::kBool);
  const at::Tensor none = at::zeros_like(all);
  const auto& s = graph.spec();
  std::unique_ptr<HookedTransformer> ungrouped;
  HookedTransformer* m = &model;
  Graph g = graph;
  if (s.kv_edges == KvEdges::kPerQueryHead && s.n_kv_heads != s.n_heads) {
    ungrouped = ungrouped_copy(model);
    m = ungrouped.get();
    g = Graph({s.n_layers, s.n_heads, s.n_heads, KvEdges::kPerQueryHead});  // same names and indices
  }
  const bool mean = intervention == Intervention::kMean || intervention == Intervention::kMeanPositional;
  const bool positional = intervention == Intervention::kMeanPositional;
  at::Tensor means;
  if (mean) means = mean_upstream_activations(*m, g, examples, positional, mean_source, batch_size);
  std::vector<Faithfulness> out(edge_masks.size());
  double clean = 0.0, corrupted = 0.0;
  const size_t N = examples.size();
  for (size_t begin = 0; begin < N; begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(N, begin + static_cast<size_t>(batch_size));
    const AttributionBatch b = make_attribution_batch(examples, begin, end);
    const double w = static_cast<double>(end - begin) / static_cast<double>(N);
    at::Tensor ref;
    if (intervention == Intervention::kZero)
      ref = at::zeros({b.clean_ids.size(0), b.clean_ids.size(1), g.n_upstream(), m->config().d_model},
                      at::TensorOptions().dtype(m->dtype()).device(m->device()));
    else if (mean)
      ref = mean_reference(means, b, positional, m->dtype());
    // The corrupted run once per batch, not once per circuit.
    // The corrupted run under its own mask (unequal lengths), as eap_scores runs it.
    const at::Tensor& cmask = b.corrupted_mask.defined() ? b.corrupted_mask : b.attention_mask;
    const at::Tensor mask = cmask.defined() ? cmask.to(m->device()) : at::Tensor();
    const at::Tensor corr = upstream_activations(*m, g, b.corrupted_ids.to(m->device(), at::kLong), mask);
    if (!ref.defined()) ref = corr;
    for (size_t i = 0; i < in.size(); ++i) out[i].circuit += w * circuit_metric(*m, g, b, in[i], metric, loss, ref);
    clean += w * circuit_metric(*m, g, b, all, metric, loss, corr);
    corrupted += w * circuit_metric(*m, g, b, none, metric, loss, corr);
  }
  for (Faithfulness& f : out) {
    f.clean = clean;
    f.corrupted = corrupted;
    f.normalized = (f.circuit - corrupted) / (clean - corrupted);
  }
  return out;
}

}  // namespace circuitscope
