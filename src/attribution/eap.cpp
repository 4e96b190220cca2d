// EAP, EAP-IG-inputs and EAP-IG-activations. The only autograd-API user of the library: gradients with respect to the
// hook points' tensors come from torch::autograd::grad, never from parameter gradients.
#include "circuitscope/eap.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "core/phase_timer.hpp"

namespace circuitscope {

namespace {

struct RunActs {
  at::Tensor acts;    // [B,T,U,D], a view of node-major [U,B,T,D] storage
  at::Tensor logits;  // [B,T,V]
};

// The logits that the runs of one batch compute: only the positions the metric reads (for logit-
// and prob-diff and KL, each example's metric position; for the sequence metrics, the span from
// the first to the last supervised position of any example), with the batch re-indexed to match.
// The metric is unchanged: a run's logits at other positions do not enter it, and their gradient is
// zero. It saves the unembedding's products and the [B,T,V] logits at the other positions.
struct MetricRows {
  at::Tensor pos;          // [B,P] int64 on the model's device
  AttributionBatch batch;  // positions, target_ids and target_mask indexed into the P positions
};

MetricRows metric_rows(MetricKind metric, const AttributionBatch& b) {
  MetricRows r;
  r.batch = b;
  const int64_t B = b.clean_ids.size(0);
  const auto dev = b.clean_ids.device();
  if (is_sequence_metric(metric)) {
    const at::Tensor any_t = b.target_mask.ne(0).any(0).nonzero().view(-1);
    const int64_t t0 = any_t.min().item<int64_t>(), span = any_t.max().item<int64_t>() - t0 + 1;
    r.pos = at::arange(t0, t0 + span, at::TensorOptions().dtype(at::kLong).device(dev)).unsqueeze(0).expand({B, span});
    r.batch.target_ids = b.target_ids.narrow(1, t0, span).contiguous();
    r.batch.target_mask = b.target_mask.narrow(1, t0, span).contiguous();
  } else {
    r.pos = b.positions.to(dev, at::kLong).view({B, 1});
    r.batch.positions = at::zeros({B}, r.pos.options());
  }
  return r;
}

// Hooks that write one run's upstream activations (hook_embed, each head's output from hook_z, and
// hook_mlp_out), detached, into node-major storage [U,B,T,D], so that delta_of's [U, B*T*D] matrix
// needs no further copy. Heads come from hook_z through the model's head_results_into: the model
// keeps its fused output projection, and no [B,T,H,D] hook_result tensor is formed.
class UpstreamCapture {
 public:
  UpstreamCapture(HookedTransformer& model, const Graph& graph) : model_(model), graph_(graph) {
    const auto& c = model.config();
    if (c.n_layers != graph.spec().n_layers || c.n_heads != graph.spec().n_heads || c.n_kv_heads != graph.spec().n_kv_heads)
      throw Error(ErrorCode::kInput, "graph shape (" + std::to_string(graph.spec().n_layers) + " layers, " +
                                         std::to_string(graph.spec().n_heads) + " heads, " +
                                         std::to_string(graph.spec().n_kv_heads) + " kv heads) does not match the model's config");
  }
  // Add these hooks after any that change the points' values: they record what the run uses.
  void attach(std::vector<HookHandle>& handles) {
    HookManager& hm = model_.hooks();
    handles.push_back(hm.add("hook_embed", [this](const at::Tensor& x, const HookContext&) {
      c10::AutoGradMode no_grad(false);
      buf_ = at::empty({graph_.n_upstream(), x.size(0), x.size(1), x.size(2)}, x.options());
      buf_.select(0, 0).copy_(x.detach());
      return x;
    }));
    handles.push_back(hm.add("blocks.*.attn.hook_z", [this](const at::Tensor& x, const HookContext& c) {
      c10::AutoGradMode no_grad(false);
      model_.head_results_into(c.layer, x, buf_.narrow(0, graph_.upstream_head(c.layer, 0), graph_.spec().n_heads));
      return x;
    }));
    handles.push_back(hm.add("blocks.*.hook_mlp_out", [this](const at::Tensor& x, const HookContext& c) {
      c10::AutoGradMode no_grad(false);
      buf_.select(0, graph_.upstream_mlp(c.layer)).copy_(x.detach());
      return x;
    }));
  }
  RunActs take(const at::Tensor& logits) {
    if (!buf_.defined()) throw Error(ErrorCode::kInternal, "upstream capture: the run did not reach hook_embed");
    RunActs out;
    out.acts = buf_.permute({1, 2, 0, 3});  // [B,T,U,D] view
    out.logits = logits;
    buf_ = at::Tensor();
    return out;
  }

 private:
  HookedTransformer& model_;
  const Graph& graph_;
  at::Tensor buf_;  // [U,B,T,D]
};

// logit_pos: the positions whose logits the run computes (see MetricRows); all when undefined.
RunActs run_upstream(HookedTransformer& model, const Graph& graph, const at::Tensor& ids, const at::Tensor& mask,
                     const at::Tensor& logit_pos) {
  c10::AutoGradMode no_grad(false);
  UpstreamCapture cap(model, graph);
  at::Tensor logits;
  {
    std::vector<HookHandle> h;
    cap.attach(h);
    CS_SCOPE("cs::upstream_fwd");
    logits = model.forward(ids, mask, nullptr, {}, logit_pos);
  }
  return cap.take(logits);
}

// The running sums of a method's gradient runs: the heads' q/k/v inputs through the model's
// HeadInputGradSum, the MLP inputs and the final residual as tensors. add_scores turns them into
// scores.
class GradSum {
 public:
  explicit GradSum(const HookedTransformer& model) : heads_(model), mlp_(model.config().n_layers) {}
  HeadInputGradSum& heads() { return heads_; }
  void add_dense(int64_t l, const at::Tensor& g) { add_to(mlp_[l], g); }
  void add_logits(const at::Tensor& g) { add_to(logits_, g); }

  // scores[r0:r1, v] += scale * sum over b,t,d of delta[u,b,t,d] g_v[b,t,d] for every downstream
  // node v that sees the rows (u < v's n_visible); g_v is the summed gradient at v's input. delta is
  // [U, B*T*D], contiguous.
  void add_scores(at::Tensor& scores, const at::Tensor& delta, const Graph& graph, double scale, int64_t r0, int64_t r1) const;

 private:
  static void add_to(at::Tensor& acc, const at::Tensor& g) {
    // The first run's tensor is cloned (autograd may hand out tensors that share storage).
    if (acc.defined())
      acc.add_(g);
    else
      acc = g.clone(at::MemoryFormat::Contiguous);
  }
  HeadInputGradSum heads_;
  std::vector<at::Tensor> mlp_;
  at::Tensor logits_;
};

// Block by block: block l < L holds the gradients at layer l's q, k and v inputs, then the MLP of
// layer l - 1; block L the final residual, then the last MLP. Each block is formed as [N_l, B*T*D]
// in the compute dtype into one buffer that every block reuses (fresh memory of that size costs
// more in first-touch page faults than forming it), then one GEMM gives the products with the
// rows that see it (the previous MLP sees one row fewer: the products it does not see are
// dropped). The heads' rows hold the projection part of HeadInputGradSum; the norm's part enters
// the scores through P below.
void GradSum::add_scores(at::Tensor& scores, const at::Tensor& delta, const Graph& graph, double scale, int64_t r0,
                         int64_t r1) const {
  CS_SCOPE("cs::add_scores");
  const int64_t L = graph.spec().n_layers, nkv = graph.kv_nodes_per_layer(), H = graph.spec().n_heads;
  const at::Tensor& like = logits_;  // [B,T,D], compute dtype
  if (!like.defined()) throw Error(ErrorCode::kInternal, "add_scores: no gradient run was added");
  const int64_t D = like.size(-1), BT = like.numel() / D, R = heads_.runs(0);
  struct Segment {
    int64_t first_down, n, vis;  // first downstream node, rows, upstream nodes that see them
    int stream;                  // 0, 1, 2: a layer's q, k or v heads (with a norm term); -1: dense
  };
  std::vector<std::vector<Segment>> blocks(L + 1);
  int64_t p_rows = 0, max_rows = 0;
  for (int64_t l = 0; l <= L; ++l) {
    auto& seg = blocks[l];
    auto push = [&](int64_t first, int64_t n, int stream) { seg.push_back({first, n, graph.downstream()[first].n_visible, stream}); };
    if (l < L) {
      push(graph.downstream_q(l, 0), H, 0);
      push(graph.downstream_k(l, 0), nkv, 1);
      push(graph.downstream_v(l, 0), nkv, 2);
    } else {
      push(graph.downstream_logits(), 1, -1);
    }
    if (l > 0) push(graph.downstream_mlp(l - 1), 1, -1);
    int64_t rows = 0;
    for (const auto& sg : seg) {
      rows += sg.n;
      if (sg.stream >= 0) p_rows = std::max(p_rows, std::min(sg.vis, r1) - r0);
    }
    max_rows = std::max(max_rows, rows);
  }
  // The norm's part of the heads' gradients, sum over runs r of w[r,bt,n] y_{l,r}[bt,:], enters
  // each score through P[bt, u, l*R + r] = delta[u,bt,:] . y_{l,r}[bt,:]: one batched product over
  // positions for every layer and run, instead of the [N,B*T,D] terms themselves.
  at::Tensor P;  // [BT, p_rows, L*R] float32
  if (p_rows > 0) {
    CS_SCOPE("cs::norm_term");
    const at::Tensor y = at::empty({BT, L * R, D}, delta.options());
    for (int64_t l = 0; l < L; ++l) {
      if (heads_.runs(l) != R) throw Error(ErrorCode::kInternal, "add_scores: layers disagree on the number of runs");
      for (int64_t r = 0; r < R; ++r) y.select(1, l * R + r).copy_(heads_.norm_input(l, r));
    }
    const at::Tensor dt = delta.narrow(0, r0, p_rows).view({p_rows, BT, D}).transpose(0, 1);  // [BT,rows,D]
    P = at::bmm(dt, y.transpose(1, 2)).to(at::kFloat);
  }
  at::Tensor buffer = at::empty({max_rows, BT * D}, like.options());
  for (int64_t b = 0; b <= L; ++b) {
    const auto& segs = blocks[b];
    int64_t hi = 0, rows = 0;
    for (const auto& sg : segs) {
      hi = std::max(hi, std::min(sg.vis, r1));
      rows += sg.n;
    }
    if (hi <= r0) continue;
    at::Tensor block = buffer.narrow(0, 0, rows);
    {
      CS_SCOPE("cs::form_block");
      int64_t c0 = 0;
      for (const auto& sg : segs) {
        const at::Tensor rows_i = block.narrow(0, c0, sg.n);
        if (sg.stream >= 0) {
          if (heads_.heads(b, sg.stream) != sg.n) throw Error(ErrorCode::kInternal, "head gradients have the wrong number of nodes");
          heads_.projection_into(b, sg.stream, rows_i);
        } else {
          rows_i.copy_((sg.first_down == graph.downstream_logits() ? logits_ : mlp_[b - 1]).reshape({1, -1}));
        }
        c0 += sg.n;
      }
    }
    at::Tensor prod = at::matmul(delta.narrow(0, r0, hi - r0), block.to(delta.scalar_type()).t()).to(at::kFloat);
    int64_t c0 = 0;
    for (const auto& sg : segs) {
      const int64_t top = std::min(sg.vis, r1);
      if (top > r0) {
        at::Tensor part = prod.narrow(0, 0, top - r0).narrow(1, c0, sg.n);
        if (sg.stream >= 0) {
          // [rows, R*BT] x [R*BT, n]
          const at::Tensor pl = P.narrow(1, 0, top - r0).narrow(2, b * R, R).permute({1, 2, 0}).reshape({top - r0, R * BT});
          part.sub_(at::mm(pl, heads_.norm_weights(b, sg.stream).reshape({R * BT, sg.n})));
        }
        scores.narrow(0, r0, top - r0).narrow(1, sg.first_down, sg.n).add_(part, scale);
      }
      c0 += sg.n;
    }
  }
}

using Grad = torch::autograd::variable_list;

at::Tensor or_zeros(const at::Tensor& g, const at::Tensor& like) { return g.defined() ? g : at::zeros_like(like); }

// A hook point whose output a gradient run replaces (hook_embed, blocks.{l}.attn.hook_result or
// blocks.{l}.hook_mlp_out); none when value is undefined.
struct Replace {
  std::string hook;
  at::Tensor value;
};

// One backward pass on `ids` under `mask`, the metric read as `batch` says, added to `sum`.
// The model runs without split mode: gradients are taken at the projections' outputs (hook_q,
// hook_k, hook_v) and the model's HeadInputGradSum turns them into each head's own input gradient.
// With `capture`, the run's upstream activations and logits (detached) are stored there too, so a
// gradient run on the clean or the corrupted input doubles as that input's forward run. Without
// clean_logits (KL metrics), the run's own logits are the reference.
void gradient_run(HookedTransformer& model, const Graph& graph, const MetricRows& rows, const at::Tensor& ids,
                  const at::Tensor& mask, const Replace& rep, const at::Tensor& clean_logits, const EapOptions& opts,
                  GradSum& sum, RunActs* capture = nullptr) {
  c10::AutoGradMode grad_on(true);
  HookManager& hm = model.hooks();
  const auto& cfg = model.config();
  const int64_t L = cfg.n_layers, H = cfg.n_heads, K = cfg.n_kv_heads, G = H / K, Dh = cfg.head_dim;
  // Without GQA (G == 1) each kv head already belongs to one query head.
  const bool per_q = graph.spec().kv_edges == KvEdges::kPerQueryHead && G > 1;

  std::vector<at::Tensor> xin(L), q(L), k(L), v(L), xm(L), rq(L), rk(L), sc(L), pat(L), z(L);
  at::Tensor xr;
  // Each capture returns a fresh alias (its own autograd node), so that the gradient at it is
  // this reader's share only: hook_mlp_in and hook_resid_post hand the hook the residual tensor
  // itself, which every other reader of the residual shares.
  auto store = [](std::vector<at::Tensor>& dst) {
    return [&dst](const at::Tensor& x, const HookContext& c) {
      dst[c.layer] = x.view_as(x);
      return dst[c.layer];
    };
  };
  auto read = [](std::vector<at::Tensor>& dst) {
    return [&dst](const at::Tensor& x, const HookContext& c) {
      dst[c.layer] = x.detach();
      return x;
    };
  };
  std::vector<HookHandle> handles;
  const bool new_embed = rep.value.defined() && rep.hook == "hook_embed";
  handles.push_back(hm.add("hook_embed", [&](const at::Tensor& x, const HookContext&) {
    return (new_embed ? rep.value : x).detach().requires_grad_(true);
  }));
  if (rep.value.defined() && !new_embed)
    handles.push_back(hm.add(rep.hook, [&rep](const at::Tensor&, const HookContext&) { return rep.value; }));
  handles.push_back(hm.add("blocks.*.hook_resid_pre", read(xin)));
  handles.push_back(hm.add("blocks.*.attn.hook_q", store(q)));
  handles.push_back(hm.add("blocks.*.attn.hook_k", store(k)));
  if (per_q)
    handles.push_back(hm.add("blocks.*.attn.hook_v", read(v)));
  else
    handles.push_back(hm.add("blocks.*.attn.hook_v", store(v)));
  handles.push_back(hm.add("blocks.*.hook_mlp_in", store(xm)));
  handles.push_back(hm.add(hook_name(L - 1, HookKind::kResidPost), [&xr](const at::Tensor& x, const HookContext&) {
    xr = x.view_as(x);
    return xr;
  }));
  if (per_q) {
    handles.push_back(hm.add("blocks.*.attn.hook_rot_q", read(rq)));
    handles.push_back(hm.add("blocks.*.attn.hook_rot_k", store(rk)));
    handles.push_back(hm.add("blocks.*.attn.hook_attn_scores", store(sc)));
    handles.push_back(hm.add("blocks.*.attn.hook_pattern", read(pat)));
    handles.push_back(hm.add("blocks.*.attn.hook_z", store(z)));
  }
  UpstreamCapture up(model, graph);
  if (capture) up.attach(handles);
  at::Tensor logits;
  { CS_SCOPE("cs::fwd"); logits = model.forward(ids, mask, nullptr, {}, rows.pos); }
  handles.clear();  // the captured tensors stay alive; the hooks are no longer needed
  if (capture) *capture = up.take(logits.detach());

  at::Tensor metric =
      metric_per_example(opts.metric, logits, rows.batch, clean_logits.defined() ? clean_logits : logits.detach()).mean();
  if (opts.loss) metric = -metric;

  // Inputs: per layer hook_q, then hook_k and hook_v (per kv head) or scores and z (per query
  // head), the MLP input; last the final residual.
  Grad inputs;
  for (int64_t l = 0; l < L; ++l) {
    inputs.push_back(q[l]);
    if (per_q) {
      inputs.push_back(sc[l]);
      inputs.push_back(z[l]);
    } else {
      inputs.push_back(k[l]);
      inputs.push_back(v[l]);
    }
    inputs.push_back(xm[l]);
  }
  inputs.push_back(xr);
  Grad g;
  { CS_SCOPE("cs::bwd"); g = torch::autograd::grad({metric}, inputs, {}, /*retain_graph=*/per_q, /*create_graph=*/false, /*allow_unused=*/true); }

  size_t i = 0;
  for (int64_t l = 0; l < L; ++l) {
    const at::Tensor gq = or_zeros(g[i++], q[l]);
    at::Tensor gk, gv;
    if (per_q) {
      CS_SCOPE("cs::post");
      // Each query head's own use of its kv head's key and value (the "ungrouped" gradients):
      // d(metric)/d(rot_k) through head h = scale * sum_t dM/dscores[h,t,s] rot_q[t,h], pulled back
      // through RoPE to hook_k one group member at a time; d(metric)/d(v) through head h =
      // sum_t pattern[h,t,s] dM/dz[t,h].
      const at::Tensor gs = or_zeros(g[i], sc[l]), gz = or_zeros(g[i + 1], z[l]);
      i += 2;
      const int64_t B = gs.size(0), S = gs.size(3);
      const at::Tensor ck = at::einsum("bhts,bthe->bshe", {gs, rq[l]}) * (1.0 / std::sqrt(static_cast<double>(Dh)));
      gv = at::einsum("bhts,bthe->bshe", {pat[l].to(gz.scalar_type()), gz});  // [B,S,H,Dh]
      gk = at::empty({B, S, K, G, Dh}, ck.options());
      for (int64_t j = 0; j < G; ++j) {  // head g*G + j uses kv head g
        const at::Tensor cot = ck.view({B, S, K, G, Dh}).select(3, j).contiguous();
        Grad p = torch::autograd::grad({rk[l]}, {k[l]}, {cot}, /*retain_graph=*/true, false, true);
        gk.select(3, j).copy_(or_zeros(p[0], k[l]));
      }
      gk = gk.view({B, S, H, Dh});
    } else {
      gk = or_zeros(g[i], k[l]);
      gv = or_zeros(g[i + 1], v[l]);
      i += 2;
    }
    {
      CS_SCOPE("cs::heads_add");
      sum.heads().add(l, xin[l], {gq, q[l].detach()}, {gk, k[l].detach()}, {gv, v[l].detach()});
    }
    sum.add_dense(l, or_zeros(g[i++], xm[l]).detach());
  }
  sum.add_logits(or_zeros(g[i], xr).detach());
}

}  // namespace

at::Tensor upstream_activations(HookedTransformer& model, const Graph& graph, const at::Tensor& ids,
                                const at::Tensor& attention_mask) {
  // The logits are not needed: the cheapest row.
  const at::Tensor one = at::zeros({ids.size(0), 1}, at::TensorOptions().dtype(at::kLong).device(model.device()));
  return run_upstream(model, graph, ids, attention_mask, one).acts;
}

namespace {

// (z_u(clean) - z_u(corrupted)) as [U, B*T*D] (contiguous, for add_scores' GEMMs): float32 for
// float32 models; in the compute dtype otherwise (the GEMMs accumulate in float32 and their results
// are added to float32 scores), which halves the largest buffer of a bf16 run.
// With in_place, the difference overwrites the clean run's activations (their node-major storage
// is what the GEMMs need), saving a buffer as large as the two runs' activations each.
at::Tensor delta_of(RunActs& clean, const RunActs& corr, bool in_place) {
  c10::AutoGradMode no_grad(false);
  CS_SCOPE("cs::delta");
  at::Tensor d = clean.acts.permute({2, 0, 1, 3});  // [U,B,T,D]
  if (in_place && d.is_contiguous()) {
    d.sub_(corr.acts.permute({2, 0, 1, 3}));
    clean.acts = at::Tensor();  // no longer the clean activations
  } else {
    d = (d - corr.acts.permute({2, 0, 1, 3})).contiguous();
  }
  return d.view({d.size(0), -1});
}

struct Stopwatch {
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
  double lap() {  // seconds since the last lap
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - t).count();
    t = now;
    return s;
  }
};

}  // namespace

namespace {

// One batch's result, left on the model's device: a run of batches adds them up there and reads
// them back once (each read is a device-to-host sync that stalls the queue of work).
struct DeviceEapResult {
  at::Tensor scores;            // [U, n_downstream] float32
  at::Tensor metric_clean;      // [] float64
  at::Tensor metric_corrupted;  // [] float64
  int64_t n_examples = 0;
};

DeviceEapResult eap_batch(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch_in, const EapOptions& opts) {
  CS_SCOPE("cs::batch");
  check_metric_batch(model, batch_in, opts.metric);
  if (opts.ig_steps < 0) throw Error(ErrorCode::kUsage, "ig steps must be >= 0; found " + std::to_string(opts.ig_steps));
  if (opts.clean_corrupted && opts.ig_steps != 0)
    throw Error(ErrorCode::kUsage, "clean-corrupted takes no ig steps; found " + std::to_string(opts.ig_steps));
  const auto dev = model.device();
  // The IG-inputs run k = 0 feeds exactly the corrupted embeddings; under the clean mask it is the
  // corrupted run whenever both runs have the same mask (equal lengths). Compared where the batch
  // was made (the host, usually), not on the device.
  const bool same_masks = (!batch_in.attention_mask.defined() && !batch_in.corrupted_mask.defined()) ||
                          (batch_in.attention_mask.defined() &&
                           (!batch_in.corrupted_mask.defined() || at::equal(batch_in.attention_mask, batch_in.corrupted_mask)));
  AttributionBatch batch = batch_in;
  batch.clean_ids = batch.clean_ids.to(dev, at::kLong);
  batch.corrupted_ids = batch.corrupted_ids.to(dev, at::kLong);
  if (batch.attention_mask.defined()) batch.attention_mask = batch.attention_mask.to(dev);
  batch.corrupted_mask = batch.corrupted_mask.defined() ? batch.corrupted_mask.to(dev) : batch.attention_mask;
  batch.positions = metric_positions(batch, dev);
  const at::Tensor& clean_mask = batch.attention_mask;
  const at::Tensor& ids = batch.clean_ids;
  const int64_t U = graph.n_upstream();
  const double sign = opts.loss ? -1.0 : 1.0;
  const bool ig_inputs = opts.ig_steps > 0 && opts.ig_mode == IgMode::kInputs;
  const bool ig_acts = opts.ig_steps > 0 && opts.ig_mode == IgMode::kActivations;
  const MetricRows rows = metric_rows(opts.metric, batch);
  Stopwatch sw;

  // Forward runs that no gradient run stands in for (EAP's and clean-corrupted's gradient runs
  // are themselves the clean and the corrupted run).
  RunActs clean, corr;
  if (ig_inputs || ig_acts) clean = run_upstream(model, graph, ids, clean_mask, rows.pos);
  if (ig_acts || (ig_inputs && !same_masks)) corr = run_upstream(model, graph, batch.corrupted_ids, batch.corrupted_mask, rows.pos);
  const double t_fwd = sw.lap();

  GradSum sum(model);
  int n_runs = 1;
  at::Tensor scores;  // [U, n_downstream] float32
  if (ig_acts) {
    // Each upstream group (the embeddings, one layer's heads, one MLP) interpolated in its own m runs.
    const auto& s = graph.spec();
    const int64_t L = s.n_layers, H = s.n_heads;
    const at::Tensor d = delta_of(clean, corr, /*in_place=*/false);  // the runs below interpolate the activations
    scores = at::zeros({U, graph.n_downstream()}, d.options().dtype(at::kFloat));
    const double inv_steps = 1.0 / opts.ig_steps;
    for (int64_t gi = 0; gi < 2 * L + 1; ++gi) {
      const int64_t l = (gi - 1) / 2;
      const bool attn = gi > 0 && gi % 2 == 1;
      const int64_t r0 = gi == 0 ? 0 : 1 + l * (H + 1) + (attn ? 0 : H);
      const int64_t n = attn ? H : 1;
      const std::string hook = gi == 0 ? std::string("hook_embed") : hook_name(l, attn ? HookKind::kResult : HookKind::kMlpOut);
      at::Tensor zc = clean.acts.narrow(2, r0, n), zx = corr.acts.narrow(2, r0, n);
      if (!attn) {
        zc = zc.squeeze(2);
        zx = zx.squeeze(2);
      }
      GradSum group(model);
      for (int k = 1; k <= opts.ig_steps; ++k) {
        const double a = static_cast<double>(k) / opts.ig_steps;
        gradient_run(model, graph, rows, ids, clean_mask, {hook, zx + a * (zc - zx)}, clean.logits, opts, group);
      }
      c10::AutoGradMode no_grad(false);
      group.add_scores(scores, d, graph, inv_steps, r0, r0 + n);
    }
  } else if (opts.clean_corrupted) {
    gradient_run(model, graph, rows, ids, clean_mask, {}, {}, opts, sum, &clean);
    gradient_run(model, graph, rows, batch.corrupted_ids, batch.corrupted_mask, {}, clean.logits, opts, sum, &corr);
    n_runs = 2;
  } else if (!ig_inputs) {
    gradient_run(model, graph, rows, ids, clean_mask, {}, {}, opts, sum, &clean);
    corr = run_upstream(model, graph, batch.corrupted_ids, batch.corrupted_mask, rows.pos);
  } else {
    n_runs = opts.ig_steps;
    const at::Tensor e_clean = clean.acts.select(2, 0);
    for (int k = 0; k < opts.ig_steps; ++k) {
      if (k == 0 && same_masks) {
        // The corrupted input itself, which also records the corrupted run.
        gradient_run(model, graph, rows, batch.corrupted_ids, clean_mask, {}, clean.logits, opts, sum, &corr);
        continue;
      }
      const double a = static_cast<double>(k) / opts.ig_steps;
      const at::Tensor e_corr = corr.acts.select(2, 0);
      gradient_run(model, graph, rows, ids, clean_mask, {"hook_embed", e_corr + a * (e_clean - e_corr)}, clean.logits,
                   opts, sum);
    }
  }
  const double t_grad = sw.lap();

  DeviceEapResult res;
  res.n_examples = batch.clean_ids.size(0);
  {
    c10::AutoGradMode no_grad(false);
    res.metric_clean = metric_per_example(opts.metric, clean.logits, rows.batch, clean.logits).mean().to(at::kDouble) * sign;
    res.metric_corrupted = metric_per_example(opts.metric, corr.logits, rows.batch, clean.logits).mean().to(at::kDouble) * sign;
    if (!ig_acts) {
      // Scores in float32: delta [B,T,U,D] against each downstream node's averaged gradient.
      const at::Tensor d = delta_of(clean, corr, /*in_place=*/true);
      scores = at::zeros({U, graph.n_downstream()}, d.options().dtype(at::kFloat));
      sum.add_scores(scores, d, graph, 1.0 / n_runs, 0, U);
    }
  }
  res.scores = scores;
  // On a GPU these times are of queueing the work, unless something synchronised in between.
  spdlog::debug("eap batch of {}: forward runs {:.3f} s, gradient runs {:.3f} s, scores {:.3f} s", res.n_examples, t_fwd,
                t_grad, sw.lap());
  return res;
}

EapResult to_host(const DeviceEapResult& r) {
  EapResult res;
  res.n_examples = r.n_examples;
  res.scores = r.scores.to(at::kCPU);
  // One transfer for both metrics.
  const at::Tensor m = at::stack({r.metric_clean, r.metric_corrupted}).to(at::kCPU);
  res.metric_clean = m[0].item<double>();
  res.metric_corrupted = m[1].item<double>();
  return res;
}

}  // namespace

EapResult eap_scores(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch, const EapOptions& opts) {
  return to_host(eap_batch(model, graph, batch, opts));
}


EapResult eap_scores(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                     const EapOptions& opts, int64_t batch_size, const std::function<void(size_t, size_t)>& on_batch) {
  if (examples.empty()) throw Error(ErrorCode::kInput, "no examples to attribute");
  if (batch_size <= 0) throw Error(ErrorCode::kUsage, "batch size must be positive; found " + std::to_string(batch_size));
  DeviceEapResult total;
  const size_t N = examples.size();
  for (size_t begin = 0; begin < N; begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(N, begin + static_cast<size_t>(batch_size));
    DeviceEapResult r = eap_batch(model, graph, make_attribution_batch(examples, begin, end), opts);
    const double w = static_cast<double>(end - begin) / static_cast<double>(N);  // batch means -> dataset mean
    if (!total.scores.defined()) {
      total.scores = r.scores.mul_(w);
      total.metric_clean = r.metric_clean * w;
      total.metric_corrupted = r.metric_corrupted * w;
    } else {
      // w x r rounded, then added: the same float operations as summing on the host did.
      total.scores.add_(r.scores.mul_(w));
      total.metric_clean.add_(r.metric_clean * w);
      total.metric_corrupted.add_(r.metric_corrupted * w);
    }
    // On a GPU this counts batches queued, which run ahead of the device by at most its launch queue.
    if (on_batch) on_batch(end, N);
  }
  total.n_examples = static_cast<int64_t>(N);
  return to_host(total);
}

}  // namespace circuitscope
