// Per-head q/k/v input gradients of split mode, from fused runs (see HeadInputGradSum in model.hpp).
//
// Head n's projection reads h = ln1 * y, y = x r, r = rsqrt(mean(x^2) + eps) (HF's RMSNorm, float32
// statistics). With go_n the gradient at the projection's output p_n = W_n h + b_n, the gradient at
// head n's own copy of x is
//   dx_n = (W_n diag(ln1))^T (r go_n) - (r dot_n) y,   dot_n = go_n . (p_n - b_n) / D.
// The first term is linear in r go_n, with run-independent weights, so it is summed over runs
// before the projection; the second needs each run's y and the scalars r dot_n.
#include <ATen/ATen.h>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"

namespace circuitscope {

HeadInputGradSum::HeadInputGradSum(const HookedTransformer& model) : model_(model), acc_(model.config().n_layers) {}

namespace {
const char* stream_name(int s) { return s == 0 ? "q" : s == 1 ? "k" : "v"; }
}  // namespace

void HeadInputGradSum::add(int64_t layer, const at::Tensor& resid, const Stream& q, const Stream& k, const Stream& v) {
  const ModelConfig& cfg = model_.cfg_;
  if (layer < 0 || layer >= cfg.n_layers)
    throw Error(ErrorCode::kInternal, "head input gradients: layer " + std::to_string(layer) + " out of range");
  const int64_t D = cfg.d_model, H = cfg.n_heads, K = cfg.n_kv_heads, Dh = cfg.head_dim;
  if (resid.dim() != 3 || resid.size(2) != D)
    throw Error(ErrorCode::kInternal, "head input gradients: layer input has shape " + shape_str(resid.sizes()) +
                                          "; expected [B,T," + std::to_string(D) + "]");
  const int64_t B = resid.size(0), T = resid.size(1), BT = B * T;
  Layer& acc = acc_[layer];
  if (!acc.y.empty() && (acc.b != B || acc.t != T))
    throw Error(ErrorCode::kInternal, "head input gradients: runs of one sum must have one shape");
  acc.b = B;
  acc.t = T;
  const LayerWeights& w = model_.layers_[layer];
  const at::Tensor x = resid.reshape({BT, D}).to(at::kFloat);
  const at::Tensor r = at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + cfg.rms_norm_eps);  // [BT,1]
  const at::Tensor y = x * r;                                                               // [BT,D]
  at::Tensor h;  // the projections' input in the compute dtype, only where a pre-norm output is recomputed
  const Stream* streams[3] = {&q, &k, &v};
  for (int s = 0; s < 3; ++s) {
    const at::Tensor& wt = s == 0 ? w.wq : s == 1 ? w.wk : w.wv;
    const at::Tensor& bias = s == 0 ? w.bq : s == 1 ? w.bk : w.bv;
    const at::Tensor& qk_w = s == 0 ? w.q_norm : s == 1 ? w.k_norm : at::Tensor();
    const int64_t np = s == 0 ? H : K;
    const at::Tensor& g = streams[s]->grad;
    const int64_t n = g.defined() && g.dim() == 4 ? g.size(2) : -1;
    if (!g.defined() || g.dim() != 4 || g.size(0) != B || g.size(1) != T || g.size(3) != Dh || (n != np && !(s > 0 && n == H)))
      throw Error(ErrorCode::kInternal, std::string("head input gradients: ") + stream_name(s) + " gradient has shape " +
                                            (g.defined() ? shape_str(g.sizes()) : std::string("none")) + "; expected [" +
                                            std::to_string(B) + "," + std::to_string(T) + "," + std::to_string(np) + "," +
                                            std::to_string(Dh) + "]");
    const int64_t grp = n / np;  // query heads per projection head in this stream's gradient
    at::Tensor go = g.reshape({BT, np, grp, Dh}).to(at::kFloat);
    at::Tensor p;  // [BT,np,1,Dh] the projection's output, before any q/k norm
    if (qk_w.defined()) {
      if (!h.defined()) h = w.ln1 * y.to(model_.dtype_);
      p = at::linear(h, wt, bias).view({BT, np, 1, Dh});
    } else {
      p = streams[s]->out.reshape({BT, np, 1, Dh});
    }
    at::Tensor pf = p;  // the product with go below computes in float32 (type promotion) without a converted copy
    if (qk_w.defined()) {
      pf = p.to(at::kFloat);
      // Back through the per-head RMSNorm on q or k: d = r2 (w g) - r2 y2 mean(w g y2).
      const at::Tensor r2 = at::rsqrt(pf.pow(2).mean(-1, true) + cfg.rms_norm_eps);
      const at::Tensor y2 = pf * r2;
      const at::Tensor wg = go * qk_w.to(at::kFloat);
      go = r2 * (wg - y2 * (wg * y2).mean(-1, true));
    }
    if (bias.defined()) pf = pf.to(at::kFloat) - bias.to(at::kFloat).view({np, 1, Dh});
    // [BT,np,grp] -> [BT,n]: query head kv*grp + j is (kv, j)
    const at::Tensor dot = (go * pf).sum(-1).reshape({BT, n}) / static_cast<double>(D);
    acc.c[s].push_back(r * dot);
    const at::Tensor go_n = go.reshape({BT, n, Dh}).permute({1, 0, 2});  // [n,BT,Dh]
    if (!acc.s[s].defined()) {
      acc.s[s] = at::zeros({n, BT, Dh}, go.options());
    } else if (acc.s[s].size(0) != n) {
      throw Error(ErrorCode::kInternal, "head input gradients: runs disagree on the head count");
    }
    acc.s[s].addcmul_(go_n, r.view({1, BT, 1}));
  }
  acc.y.push_back(y.to(model_.dtype_));  // only ever multiplied with compute-dtype activation differences
}

const HeadInputGradSum::Layer& HeadInputGradSum::added(int64_t layer) const {
  const Layer& acc = acc_.at(layer);
  if (acc.y.empty()) throw Error(ErrorCode::kInternal, "head input gradients: no run was added for this layer");
  return acc;
}

void HeadInputGradSum::projection_into(int64_t layer, int stream, const at::Tensor& out) const {
  const Layer& acc = added(layer);
  const ModelConfig& cfg = model_.cfg_;
  const LayerWeights& w = model_.layers_[layer];
  const int64_t D = cfg.d_model, Dh = cfg.head_dim, np = stream == 0 ? cfg.n_heads : cfg.n_kv_heads;
  const at::Tensor& wt = stream == 0 ? w.wq : stream == 1 ? w.wk : w.wv;
  const at::Tensor& s = acc.s[stream];  // [n,BT,Dh] float32
  const int64_t n = s.size(0), BT = acc.b * acc.t;
  if (!out.is_contiguous() || out.numel() != n * BT * D || out.scalar_type() != model_.dtype_)
    throw Error(ErrorCode::kInternal, "head input gradients: the output must be a contiguous [" + std::to_string(n) + ",B,T," +
                                          std::to_string(D) + "] tensor in the compute dtype");
  at::Tensor wn = wt.to(at::kFloat).view({np, Dh, D}) * w.ln1.to(at::kFloat);  // W_n diag(ln1)
  // Each kv head's rows repeated for its query heads, as repeat_interleave would, but without
  // its host sync (libtorch 1.13 reads the output size back from the device).
  if (n != np) wn = wn.unsqueeze(1).expand({np, n / np, Dh, D}).reshape({n, Dh, D});
  // In the compute dtype (bfloat16 products run at twice the float32 rate), into memory the
  // caller already holds (a fresh [n,BT,D] result costs as much again in first-touch page faults).
  at::Tensor o = out.view({n, BT, D});
  at::bmm_out(o, s.to(model_.dtype_), wn.to(model_.dtype_));
}

at::Tensor HeadInputGradSum::norm_weights(int64_t layer, int stream) const {
  const Layer& acc = added(layer);
  return at::stack(acc.c[stream], 0);
}

at::Tensor HeadInputGradSum::norm_inputs(int64_t layer) const {
  const Layer& acc = added(layer);
  return at::stack(acc.y, 0);
}

const at::Tensor& HeadInputGradSum::norm_input(int64_t layer, int64_t run) const {
  const Layer& acc = added(layer);
  if (run < 0 || run >= static_cast<int64_t>(acc.y.size()))
    throw Error(ErrorCode::kInternal, "head input gradients: run " + std::to_string(run) + " of " +
                                          std::to_string(acc.y.size()) + " added");
  return acc.y[run];
}

at::Tensor HeadInputGradSum::sum(int64_t layer, int stream) const {
  const Layer& acc = added(layer);
  const int64_t n = acc.s[stream].size(0), D = model_.cfg_.d_model;
  const at::Tensor out = at::empty({n, acc.b, acc.t, D}, acc.s[stream].options().dtype(model_.dtype_));
  projection_into(layer, stream, out);
  const at::Tensor corr = at::einsum("rbn,rbd->nbd", {norm_weights(layer, stream), norm_inputs(layer).to(at::kFloat)});  // [n,BT,D]
  out.view({n, acc.b * acc.t, D}).sub_(corr);
  return out;
}

}  // namespace circuitscope
