#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>

#include "circuitscope/error.hpp"
#include "circuitscope/runtime.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/safetensors.hpp"
#include "shared_norm_proj.hpp"

namespace circuitscope {

c10::ScalarType parse_compute_dtype(const std::string& s) {
  if (s == "f32" || s == "float32" || s == "fp32") return c10::kFloat;
  if (s == "bf16" || s == "bfloat16") return c10::kBFloat16;
  throw Error(ErrorCode::kUsage, "compute dtype '" + s + "' is not supported; expected f32 or bf16");
}

const char* compute_dtype_name(c10::ScalarType t) {
  if (t == c10::kFloat) return "f32";
  if (t == c10::kBFloat16) return "bf16";
  throw Error(ErrorCode::kInternal, std::string("compute dtype ") + c10::toString(t) + " has no name");
}

c10::Device parse_device(const std::string& s) {
  c10::Device d(c10::kCPU);
  try {
    d = c10::Device(s);
  } catch (const std::exception&) {
    throw Error(ErrorCode::kUsage, "device '" + s + "' is not valid; expected cpu, cuda or cuda:N");
  }
  if (d.is_cuda() && !at::hasCUDA())
    throw Error(ErrorCode::kUnsupported, "device '" + s + "' requested, but this build of libtorch has no CUDA or no GPU is visible");
  if (d.is_cuda() && d.has_index()) {
    const int64_t n = static_cast<int64_t>(at::getNumGPUs());
    if (d.index() >= n)
      throw Error(ErrorCode::kUnsupported, "device '" + s + "' requested, but " + std::to_string(n) + " GPU(s) are visible (cuda:0" +
                                               (n > 1 ? " to cuda:" + std::to_string(n - 1) : std::string()) + ")");
  }
  if (!d.is_cpu() && !d.is_cuda()) throw Error(ErrorCode::kUnsupported, "device '" + s + "' is not supported; expected cpu or cuda");
  return d;
}

at::Tensor rope_inv_freq(const ModelConfig& cfg) {
  const int64_t half = cfg.head_dim / 2;
  // Same arithmetic as HF: float32 exponent on an int64 arange.
  at::Tensor idx = at::arange(0, cfg.head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(cfg.head_dim);
  at::Tensor inv = 1.0 / at::pow(cfg.rope_theta, idx);
  const RopeScaling& rs = cfg.rope_scaling;
  if (rs.type == "linear") {
    inv = inv / rs.factor;
  } else if (rs.type == "llama3") {
    const double old_ctx = static_cast<double>(rs.original_max_position_embeddings);
    const double low_wavelen = old_ctx / rs.low_freq_factor;
    const double high_wavelen = old_ctx / rs.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / rs.factor, inv);
    at::Tensor smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = at::where(medium, smoothed, scaled);
  }
  TORCH_CHECK(inv.numel() == half);
  return inv.contiguous();
}

HookedTransformer::HookedTransformer(ModelConfig cfg, c10::ScalarType dtype, c10::Device device)
    : cfg_(std::move(cfg)), dtype_(dtype), device_(device), hooks_(cfg_.n_layers) {}

namespace detail {
// Where weights come from (a checkpoint's TensorStore or in-memory tensors), for validated loading.
struct WeightSource {
  std::function<const std::vector<int64_t>*(const std::string&)> shape;  // nullptr when missing
  std::function<std::string(const std::string&)> dtype_name;
  std::function<at::Tensor(const std::string&, c10::ScalarType, c10::Device)> load;
  std::function<std::vector<std::string>()> names;
  std::string where;
};
}  // namespace detail

using detail::WeightSource;

void HookedTransformer::load_weights(const WeightSource& src) {
  const ModelConfig& c = cfg_;
  const TensorNames& n = c.arch->names;
  std::set<std::string> used;
  std::set<std::string> stored_dtypes;
  auto get = [&](const std::string& name, std::vector<int64_t> expect) -> at::Tensor {
    const std::vector<int64_t>* shape = src.shape(name);
    if (!shape)
      throw Error(ErrorCode::kFormat, "tensor '" + name + "' is missing from " + src.where + "; expected shape " + shape_str(expect));
    if (*shape != expect)
      throw Error(ErrorCode::kFormat, "tensor '" + name + "' in " + src.where + " has shape " + shape_str(*shape) +
                                          "; expected " + shape_str(expect));
    const std::string dt = src.dtype_name(name);
    if (dt != "F32" && dt != "BF16" && dt != "F16")
      throw Error(ErrorCode::kUnsupported, "tensor '" + name + "' in " + src.where + " has dtype " + dt +
                                               "; supported weight dtypes: F32, BF16, F16");
    stored_dtypes.insert(dt);
    used.insert(name);
    at::Tensor t = src.load(name, dtype_, device_);
    // Two reductions in the tensor's own dtype (no copy; NaN propagates through max); the exact
    // count only when one is not finite.
    if (!std::isfinite(t.max().item<double>()) || !std::isfinite(t.min().item<double>())) {
      const int64_t bad = t.numel() - at::isfinite(t).sum().item<int64_t>();
      if (bad > 0)
        report_non_finite("tensor '" + name + "' in " + src.where + " has " + std::to_string(bad) + " NaN or Inf value(s) of " +
                          std::to_string(t.numel()));
    }
    return t;
  };
  const int64_t D = c.d_model, H = c.n_heads, K = c.n_kv_heads, Dh = c.head_dim, M = c.d_mlp, V = c.vocab_size;
  embed_ = get(n.embed, {V, D});
  final_norm_ = get(n.final_norm, {D});
  if (c.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    lm_head_ = get(n.lm_head, {V, D});
  }
  layers_.clear();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto nm = [&](const char* t) { return c.tensor_name(t, l); };
    LayerWeights w;
    w.ln1 = get(nm(n.ln1), {D});
    w.ln2 = get(nm(n.ln2), {D});
    w.wq = get(nm(n.q_w), {H * Dh, D});
    w.wk = get(nm(n.k_w), {K * Dh, D});
    w.wv = get(nm(n.v_w), {K * Dh, D});
    w.wo = get(nm(n.o_w), {D, H * Dh});
    if (c.qkv_bias) {
      w.bq = get(nm(n.q_b), {H * Dh});
      w.bk = get(nm(n.k_b), {K * Dh});
      w.bv = get(nm(n.v_b), {K * Dh});
    }
    if (c.o_bias) w.bo = get(nm(n.o_b), {D});
    if (c.qk_norm) {
      w.q_norm = get(nm(n.q_norm), {Dh});
      w.k_norm = get(nm(n.k_norm), {Dh});
    }
    w.w_gate = get(nm(n.gate_w), {M, D});
    w.w_up = get(nm(n.up_w), {M, D});
    w.w_down = get(nm(n.down_w), {D, M});
    layers_.push_back(std::move(w));
  }
  for (const auto& name : src.names())
    if (!used.count(name)) spdlog::debug("ignoring tensor '{}' (not used by {})", name, c.architecture);
  for (const auto& d : stored_dtypes) stored_dtype_ += (stored_dtype_.empty() ? "" : "+") + d;
  inv_freq_ = rope_inv_freq(c).to(device_);
}

std::unique_ptr<HookedTransformer> HookedTransformer::from_pretrained(const std::string& dir, const LoadOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  ModelConfig cfg = load_config(dir);
  const c10::ScalarType dtype = parse_compute_dtype(opts.dtype);
  const c10::Device device = parse_device(opts.device);
  TensorStore store = TensorStore::open_dir(dir);
  std::unique_ptr<HookedTransformer> m(new HookedTransformer(cfg, dtype, device));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& name : store.names()) shapes[name] = store.at(name).shape;
  WeightSource src;
  src.where = "'" + dir + "'";
  src.shape = [&](const std::string& name) -> const std::vector<int64_t>* {
    auto it = shapes.find(name);
    return it == shapes.end() ? nullptr : &it->second;
  };
  src.dtype_name = [&](const std::string& name) { return std::string(st_dtype_name(store.at(name).dtype)); };
  src.load = [&](const std::string& name, c10::ScalarType dt, c10::Device dev) { return store.load(name, dt, dev); };
  src.names = [&] { return store.names(); };
  m->load_weights(src);
  m->fingerprint_ = store.fingerprint();
  m->source_ = dir;
  // Each weight is read from the mapping and copied once, to its device and dtype.
  uint64_t stored = 0;
  for (const auto& name : store.names()) stored += store.at(name).end - store.at(name).begin;
  spdlog::debug("loaded {}: {} tensors, {:.2f} GiB stored ({}) in {} file(s), to {} as {}, in {:.2f} s", dir,
                store.names().size(), stored / (1024.0 * 1024.0 * 1024.0), m->stored_dtype_, store.num_files(),
                device.str(), c10::toString(dtype),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return m;
}

std::unique_ptr<HookedTransformer> HookedTransformer::from_tensors(const ModelConfig& cfg,
                                                                   const std::map<std::string, at::Tensor>& tensors,
                                                                   const LoadOptions& opts) {
  if (!cfg.arch) throw Error(ErrorCode::kInternal, "ModelConfig without architecture row");
  std::unique_ptr<HookedTransformer> m(
      new HookedTransformer(cfg, parse_compute_dtype(opts.dtype), parse_device(opts.device)));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [k, v] : tensors) shapes[k] = v.sizes().vec();
  WeightSource src;
  src.where = "the given tensors";
  src.shape = [&](const std::string& name) -> const std::vector<int64_t>* {
    auto it = shapes.find(name);
    return it == shapes.end() ? nullptr : &it->second;
  };
  src.dtype_name = [&](const std::string& name) {
    return std::string(st_dtype_name(from_scalar_type(tensors.at(name).scalar_type())));
  };
  src.load = [&](const std::string& name, c10::ScalarType dt, c10::Device dev) {
    return tensors.at(name).detach().to(dev, dt, false, /*copy=*/true);
  };
  src.names = [&] {
    std::vector<std::string> out;
    for (const auto& kv : tensors) out.push_back(kv.first);
    return out;
  };
  m->load_weights(src);
  m->source_ = "<memory>";
  return m;
}

std::vector<std::pair<std::string, at::Tensor>> HookedTransformer::named_parameters() const {
  const TensorNames& n = cfg_.arch->names;
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back(n.embed, embed_);
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    const LayerWeights& w = layers_[l];
    auto add = [&](const char* t, const at::Tensor& x) {
      if (x.defined()) out.emplace_back(cfg_.tensor_name(t, l), x);
    };
    add(n.ln1, w.ln1);
    add(n.q_w, w.wq);
    add(n.k_w, w.wk);
    add(n.v_w, w.wv);
    add(n.o_w, w.wo);
    add(n.q_b, w.bq);
    add(n.k_b, w.bk);
    add(n.v_b, w.bv);
    add(n.o_b, w.bo);
    add(n.q_norm, w.q_norm);
    add(n.k_norm, w.k_norm);
    add(n.ln2, w.ln2);
    add(n.gate_w, w.w_gate);
    add(n.up_w, w.w_up);
    add(n.down_w, w.w_down);
  }
  out.emplace_back(n.final_norm, final_norm_);
  if (!cfg_.tie_word_embeddings) out.emplace_back(n.lm_head, lm_head_);
  return out;
}

void HookedTransformer::set_requires_grad(bool on) {
  for (auto& [name, t] : named_parameters()) t.set_requires_grad(on);
}

int64_t HookedTransformer::num_parameters() const {
  int64_t total = 0;
  for (const auto& [name, t] : named_parameters()) total += t.numel();
  return total;
}

KVCache HookedTransformer::make_cache(int64_t batch, int64_t capacity) const {
  KVCache c;
  c.capacity = capacity;
  auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    c.k.push_back(at::zeros({batch, cfg_.n_kv_heads, capacity, cfg_.head_dim}, opts));
    c.v.push_back(at::zeros({batch, cfg_.n_kv_heads, capacity, cfg_.head_dim}, opts));
  }
  return c;
}

at::Tensor HookedTransformer::rms_norm(const at::Tensor& x, const at::Tensor& w) const {
  // As HF: statistics in float32, cast back before the weight multiply.
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return w * (xf * at::rsqrt(var + cfg_.rms_norm_eps)).to(x.scalar_type());
}

std::pair<at::Tensor, at::Tensor> HookedTransformer::rope_cos_sin(const at::Tensor& position_ids) const {
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B,T,Dh/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);                               // [B,T,Dh]
  return {emb.cos().to(dtype_).unsqueeze(2), emb.sin().to(dtype_).unsqueeze(2)};  // [B,T,1,Dh]
}

namespace {
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

// Per-head projection for split q/k/v inputs: x [B,T,N,D], w [N*Dh,D] -> [B,T,N,Dh].
at::Tensor split_proj(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t n, int64_t dh) {
  at::Tensor out = at::einsum("btnd,ned->btne", {x, w.view({n, dh, w.size(1)})});
  if (b.defined()) out = out + b.view({n, dh});
  return out;
}
}  // namespace

at::Tensor HookedTransformer::attention(int64_t l, const at::Tensor& resid, const at::Tensor& mask, const at::Tensor& cos,
                                        const at::Tensor& sin, KVCache* cache, int64_t pos_offset) {
  const LayerWeights& w = layers_[l];
  const int64_t B = resid.size(0), T = resid.size(1), D = cfg_.d_model;
  const int64_t H = cfg_.n_heads, K = cfg_.n_kv_heads, G = H / K, Dh = cfg_.head_dim;
  auto hid = [l](HookKind k) { return HookManager::point_id(l, k); };
  auto hook = [&](HookKind k, const at::Tensor& x) { return hooks_.apply(hid(k), x, pos_offset); };

  at::Tensor q, k, v;  // [B,T,H,Dh], [B,T,K,Dh], [B,T,K,Dh]
  if (hooks_.any_active(l, {HookKind::kQInput, HookKind::kKInput, HookKind::kVInput})) {
    // Split mode: each head reads its own copy of the residual, so edges into a single head's
    // q, k or v can be patched or differentiated separately.
    at::Tensor xq = hook(HookKind::kQInput, resid.unsqueeze(2).expand({B, T, H, D}));
    at::Tensor xk = hook(HookKind::kKInput, resid.unsqueeze(2).expand({B, T, K, D}));
    at::Tensor xv = hook(HookKind::kVInput, resid.unsqueeze(2).expand({B, T, K, D}));
    // Copies still equal to the residual (read hooks, gradient runs) are normalized and
    // projected once; patched ones head by head.
    auto proj = [&](const at::Tensor& xs, const at::Tensor& wt, const at::Tensor& bias, int64_t n) {
      if (shared_norm_proj_applies(xs, w.ln1, wt, bias)) return shared_norm_proj(xs, w.ln1, wt, bias, cfg_.rms_norm_eps, n, Dh);
      return split_proj(rms_norm(xs, w.ln1), wt, bias, n, Dh);
    };
    q = proj(xq, w.wq, w.bq, H);
    k = proj(xk, w.wk, w.bk, K);
    v = proj(xv, w.wv, w.bv, K);
  } else {
    // A fresh alias when hooked, so the hook's tensor feeds only attention: a gradient taken at it
    // is attention's share, not the whole residual's.
    const bool attn_in = hooks_.active(hid(HookKind::kAttnIn));
    at::Tensor h = hook(HookKind::kLn1Normalized, rms_norm(hook(HookKind::kAttnIn, attn_in ? resid.view_as(resid) : resid), w.ln1));
    q = at::linear(h, w.wq, w.bq).view({B, T, H, Dh});
    k = at::linear(h, w.wk, w.bk).view({B, T, K, Dh});
    v = at::linear(h, w.wv, w.bv).view({B, T, K, Dh});
  }
  if (cfg_.qk_norm) {
    q = rms_norm(q, w.q_norm);
    k = rms_norm(k, w.k_norm);
  }
  q = hook(HookKind::kQ, q);
  k = hook(HookKind::kK, k);
  v = hook(HookKind::kV, v);
  at::Tensor rq = hook(HookKind::kRotQ, q * cos + rotate_half(q) * sin);
  at::Tensor rk = hook(HookKind::kRotK, k * cos + rotate_half(k) * sin);

  // Grouped-query attention without repeating K/V: query heads of one group are stacked along
  // the row dimension, so each kv head is read once per group. Head h uses kv head h / G.
  at::Tensor qg = rq.permute({0, 2, 1, 3}).contiguous().view({B, K, G * T, Dh});  // [B,K,G*T,Dh]
  at::Tensor kt = rk.permute({0, 2, 1, 3});                                       // [B,K,T,Dh]
  at::Tensor vt = v.permute({0, 2, 1, 3});
  if (cache) {
    const int64_t len = cache->length;
    if (len + T > cache->capacity)
      throw Error(ErrorCode::kInternal, "KV cache capacity " + std::to_string(cache->capacity) + " exceeded");
    cache->k[l].narrow(2, len, T).copy_(kt);
    cache->v[l].narrow(2, len, T).copy_(vt);
    kt = cache->k[l].narrow(2, 0, len + T);
    vt = cache->v[l].narrow(2, 0, len + T);
  }
  const int64_t S = kt.size(2);
  at::Tensor scores = at::matmul(qg, kt.transpose(-1, -2)).view({B, H, T, S}) * (1.0 / std::sqrt(static_cast<double>(Dh)));
  if (mask.defined()) scores = scores + mask;  // [B,1,T,S] additive
  scores = hook(HookKind::kAttnScores, scores);
  at::Tensor pattern = hook(HookKind::kPattern, at::softmax(scores, -1, at::kFloat).to(dtype_));  // [B,H,T,S]
  at::Tensor z = at::matmul(pattern.view({B, K, G * T, S}), vt).view({B, H, T, Dh}).transpose(1, 2);  // [B,T,H,Dh]
  z = hook(HookKind::kZ, z);
  if (hooks_.active(hid(HookKind::kResult))) {
    at::Tensor wo_h = w.wo.view({D, H, Dh}).permute({1, 2, 0});  // [H,Dh,D]
    at::Tensor result = hook(HookKind::kResult, at::einsum("bthe,hed->bthd", {z, wo_h}));  // [B,T,H,D]
    at::Tensor out = result.sum(2);
    return w.bo.defined() ? out + w.bo : out;
  }
  return at::linear(z.reshape({B, T, H * Dh}), w.wo, w.bo);
}

void HookedTransformer::head_results_into(int64_t l, const at::Tensor& z, const at::Tensor& out) const {
  const int64_t D = cfg_.d_model, H = cfg_.n_heads, Dh = cfg_.head_dim;
  if (l < 0 || l >= cfg_.n_layers)
    throw Error(ErrorCode::kUsage, "head results: layer " + std::to_string(l) + " out of range [0," +
                                       std::to_string(cfg_.n_layers) + ")");
  if (z.dim() != 4 || z.size(2) != H || z.size(3) != Dh)
    throw Error(ErrorCode::kUsage, "head results: hook_z value has shape " + shape_str(z.sizes()) + "; expected [B,T," +
                                       std::to_string(H) + "," + std::to_string(Dh) + "]");
  const int64_t BT = z.size(0) * z.size(1);
  if (!out.is_contiguous() || out.numel() != H * BT * D || out.scalar_type() != dtype_ || out.device() != z.device())
    throw Error(ErrorCode::kUsage, "head results: the output must be a contiguous tensor of [" + std::to_string(H) + "," +
                                       shape_str(z.sizes().slice(0, 2)) + "," + std::to_string(D) +
                                       "] elements in the compute dtype on the model's device; found " +
                                       shape_str(out.sizes()) + (out.is_contiguous() ? "" : " (not contiguous)"));
  const at::Tensor zh = z.detach().to(dtype_).permute({2, 0, 1, 3}).reshape({H, BT, Dh});
  const at::Tensor wo_h = layers_[l].wo.view({D, H, Dh}).permute({1, 2, 0});  // [H,Dh,D]
  at::Tensor o = out.view({H, BT, D});
  at::bmm_out(o, zh, wo_h);
}

bool HookedTransformer::input_checked(const at::Tensor& t, int64_t bound) const {
  for (const auto& c : checked_inputs_)
    if (c.tensor.is_same(t) && c.version == static_cast<int64_t>(t._version()) && c.bound <= bound) return true;
  return false;
}

void HookedTransformer::remember_checked(const at::Tensor& t, int64_t bound) {
  constexpr size_t kRemembered = 4;  // clean and corrupted ids, their logit positions
  if (input_checked(t, bound)) return;
  if (checked_inputs_.size() == kRemembered) checked_inputs_.erase(checked_inputs_.begin());
  checked_inputs_.push_back({t, static_cast<int64_t>(t._version()), bound});
}

at::Tensor HookedTransformer::forward(const at::Tensor& input_ids_in, const at::Tensor& attention_mask_in, KVCache* cache,
                                      const at::Tensor& position_ids_in, const at::Tensor& logit_positions_in) {
  if (input_ids_in.dim() != 2)
    throw Error(ErrorCode::kInput, "input_ids must be [batch, pos]; found shape " + shape_str(input_ids_in.sizes()));
  at::Tensor ids = input_ids_in.to(device_, at::kLong);
  const int64_t B = ids.size(0), T = ids.size(1);
  if (T == 0) throw Error(ErrorCode::kInput, "input_ids has no positions");
  if (!input_checked(ids, cfg_.vocab_size)) {
    at::Tensor bad = (ids < 0).logical_or(ids >= cfg_.vocab_size);
    if (bad.any().item<bool>()) {
      at::Tensor where = bad.nonzero().to(at::kCPU);
      const int64_t b = where[0][0].item<int64_t>(), t = where[0][1].item<int64_t>();
      throw Error(ErrorCode::kInput, "token id " + std::to_string(ids[b][t].item<int64_t>()) + " at batch " +
                                         std::to_string(b) + ", position " + std::to_string(t) +
                                         " is out of range: vocab_size is " + std::to_string(cfg_.vocab_size));
    }
    remember_checked(ids, cfg_.vocab_size);
  }
  at::Tensor logit_pos;  // [B,P]
  if (logit_positions_in.defined()) {
    if (logit_positions_in.dim() != 2 || logit_positions_in.size(0) != B)
      throw Error(ErrorCode::kInput, "logit_positions has shape " + shape_str(logit_positions_in.sizes()) + "; expected [" +
                                         std::to_string(B) + ",P]");
    logit_pos = logit_positions_in.to(device_, at::kLong);
    if (logit_pos.numel() > 0 && !input_checked(logit_pos, T)) {
      if (logit_pos.min().item<int64_t>() < 0 || logit_pos.max().item<int64_t>() >= T)
        throw Error(ErrorCode::kInput, "logit_positions: a position is outside [0," + std::to_string(T) + ")");
      remember_checked(logit_pos, T);
    }
  }
  const int64_t offset = cache ? cache->length : 0;
  const int64_t S = offset + T;
  at::Tensor key_mask;  // [B,S] bool
  if (attention_mask_in.defined()) {
    if (attention_mask_in.dim() != 2 || attention_mask_in.size(0) != B || attention_mask_in.size(1) != S)
      throw Error(ErrorCode::kInput, "attention_mask has shape " + shape_str(attention_mask_in.sizes()) + "; expected [" +
                                         std::to_string(B) + "," + std::to_string(S) + "]");
    key_mask = attention_mask_in.to(device_).to(at::kBool);
  }
  at::Tensor pos;
  if (position_ids_in.defined()) {
    pos = position_ids_in.to(device_, at::kLong);
  } else if (key_mask.defined()) {
    pos = (key_mask.to(at::kLong).cumsum(-1) - 1).clamp_min(0).narrow(1, offset, T);
  } else {
    pos = at::arange(offset, S, at::TensorOptions().dtype(at::kLong).device(device_)).unsqueeze(0).expand({B, T});
  }
  auto [cos, sin] = rope_cos_sin(pos);

  // Additive masks [B,1,T,S]: causal, key padding, and (where a layer uses it) a sliding window.
  auto build_mask = [&](int64_t window) -> at::Tensor {
    if (T == 1 && !key_mask.defined() && (window <= 0 || S <= window)) return {};
    auto lopts = at::TensorOptions().dtype(at::kLong).device(device_);
    at::Tensor qi = at::arange(offset, S, lopts).view({T, 1});
    at::Tensor kj = at::arange(0, S, lopts).view({1, S});
    at::Tensor allowed = kj <= qi;
    if (window > 0) allowed = allowed.logical_and((qi - kj) < window);
    allowed = allowed.view({1, 1, T, S});
    if (key_mask.defined()) allowed = allowed.logical_and(key_mask.view({B, 1, 1, S}));
    const double neg = dtype_ == at::kBFloat16 ? -3.3895313892515355e38 : static_cast<double>(std::numeric_limits<float>::lowest());
    return at::zeros(allowed.sizes(), at::TensorOptions().dtype(dtype_).device(device_)).masked_fill(allowed.logical_not(), neg);
  };
  at::Tensor full_mask = build_mask(0);
  at::Tensor window_mask;
  if (cfg_.sliding_window > 0) window_mask = build_mask(cfg_.sliding_window);

  at::Tensor x = hooks_.apply(kHookEmbed, at::embedding(embed_, ids), offset);  // [B,T,D]
  for (int64_t l = 0; l < cfg_.n_layers; ++l) {
    const LayerWeights& w = layers_[l];
    auto hook = [&](HookKind k, const at::Tensor& t) { return hooks_.apply(HookManager::point_id(l, k), t, offset); };
    x = hook(HookKind::kResidPre, x);
    const at::Tensor& m = cfg_.layer_uses_sliding_window(l) ? window_mask : full_mask;
    at::Tensor attn_out = hook(HookKind::kAttnOut, attention(l, x, m, cos, sin, cache, offset));
    x = hook(HookKind::kResidMid, x + attn_out);
    // Fresh alias when hooked (see hook_attn_in): the hook's tensor feeds only the MLP.
    const bool mlp_in = hooks_.active(HookManager::point_id(l, HookKind::kMlpIn));
    at::Tensor h2 = hook(HookKind::kLn2Normalized, rms_norm(hook(HookKind::kMlpIn, mlp_in ? x.view_as(x) : x), w.ln2));
    at::Tensor pre = hook(HookKind::kMlpPre, at::linear(h2, w.w_gate));
    at::Tensor pre_lin = hook(HookKind::kMlpPreLinear, at::linear(h2, w.w_up));
    at::Tensor post = hook(HookKind::kMlpPost, at::silu(pre) * pre_lin);
    at::Tensor mlp_out = hook(HookKind::kMlpOut, at::linear(post, w.w_down));
    x = hook(HookKind::kResidPost, x + mlp_out);
  }
  if (cache) cache->length += T;
  at::Tensor normed = hooks_.apply(kHookLnFinal, rms_norm(x, final_norm_), offset);
  if (logit_pos.defined()) {
    const int64_t P = logit_pos.size(1), D = normed.size(2);
    normed = normed.gather(1, logit_pos.view({B, P, 1}).expand({B, P, D}));
  }
  return at::linear(normed, lm_head_);
}

}  // namespace circuitscope
