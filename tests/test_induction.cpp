// A 2-layer attention-only Llama-architecture model trained inside the test on an induction task
// (random tokens, then a segment, then the same segment again; loss on the repeat). The mechanism
// is found from attention patterns alone (a previous-token head in layer 0, an induction head in
// layer 1), then checked against attribution (EAP-IG's circuit), ablation, and exact edge patching.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "circuitscope/circuit.hpp"
#include "circuitscope/config.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {

int64_t env_int(const char* k, int64_t d) { return std::getenv(k) ? std::atoll(std::getenv(k)) : d; }
const int64_t kVocab = env_int("CS_V", 32);
const int64_t kSeq = env_int("CS_T", 20);
const int64_t kDModel = env_int("CS_D", 64);
const int64_t kHeads = env_int("CS_H", 4);
const int64_t kMinSeg = env_int("CS_SMIN", 4);
const int64_t kMaxSeg = env_int("CS_SMAX", 8);

// Sequences [filler][segment][segment]: the segment has distinct tokens, none of which appear in
// the filler, so the token after each repeated token is determined only by its first occurrence.
// Segment and filler lengths vary, so no fixed relative position solves the task.
struct InductionData {
  at::Tensor ids;        // [N,T] int64
  at::Tensor targets;    // [N,T] next token (0 at the last position)
  at::Tensor loss_mask;  // [N,T] float, 1 where the next token is a copy (second occurrence, not its last token)
  std::vector<int64_t> filler, seg;  // per row
};

InductionData make_data(int64_t n, std::mt19937_64& rng) {
  InductionData d;
  d.ids = at::empty({n, kSeq}, at::kLong);
  d.loss_mask = at::zeros({n, kSeq}, at::kFloat);
  auto ids = d.ids.accessor<int64_t, 2>();
  auto mask = d.loss_mask.accessor<float, 2>();
  std::vector<int64_t> perm(kVocab);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = std::uniform_int_distribution<int64_t>(kMinSeg, kMaxSeg)(rng);
    const int64_t p = kSeq - 2 * s;
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::uniform_int_distribution<int64_t> other(s, kVocab - 1);
    for (int64_t t = 0; t < p; ++t) ids[i][t] = perm[other(rng)];
    for (int64_t j = 0; j < s; ++j) ids[i][p + j] = ids[i][p + s + j] = perm[j];
    for (int64_t t = p + s; t < p + 2 * s - 1; ++t) mask[i][t] = 1.0f;
    d.filler.push_back(p);
    d.seg.push_back(s);
  }
  d.targets = at::cat({d.ids.slice(1, 1), at::zeros({n, 1}, at::kLong)}, 1);
  return d;
}

ModelConfig induction_config() {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"vocab_size", kVocab},
                      {"hidden_size", kDModel},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", kHeads},
                      {"num_key_value_heads", kHeads},
                      {"intermediate_size", 4},
                      {"tie_word_embeddings", false},
                      {"rope_theta", 10000.0},
                      {"rms_norm_eps", 1e-5}};
  return parse_config(j, "induction toy");
}

// Random weights; the MLPs are zero (attention-only) and stay frozen.
std::unique_ptr<HookedTransformer> make_model(uint64_t seed) {
  const ModelConfig c = induction_config();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std_w = 1.0 / std::sqrt(static_cast<double>(kDModel));
  auto randn = [&](std::vector<int64_t> shape) { return at::normal(0.0, std_w, shape, gen); };
  const TensorNames& n = c.arch->names;
  const int64_t D = c.d_model, HD = c.n_heads * c.head_dim, M = c.d_mlp;
  std::map<std::string, at::Tensor> w;
  w[n.embed] = randn({kVocab, D});
  w[n.lm_head] = randn({kVocab, D});
  w[n.final_norm] = at::ones({D});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto nm = [&](const char* t) { return c.tensor_name(t, l); };
    w[nm(n.ln1)] = at::ones({D});
    w[nm(n.ln2)] = at::ones({D});
    w[nm(n.q_w)] = randn({HD, D});
    w[nm(n.k_w)] = randn({HD, D});
    w[nm(n.v_w)] = randn({HD, D});
    w[nm(n.o_w)] = randn({D, HD});
    w[nm(n.gate_w)] = at::zeros({M, D});
    w[nm(n.up_w)] = at::zeros({M, D});
    w[nm(n.down_w)] = at::zeros({D, M});
  }
  return HookedTransformer::from_tensors(c, w);
}

at::Tensor copy_loss(HookedTransformer& m, const InductionData& d) {
  const at::Tensor logp = at::log_softmax(m.forward(d.ids).to(at::kFloat), -1);
  const at::Tensor nll = -logp.gather(-1, d.targets.unsqueeze(-1)).squeeze(-1);
  return (nll * d.loss_mask).sum() / d.loss_mask.sum();
}

// Adam by hand (no torch/optim headers in the tests); MLP and norm weights stay as they are.
double train(HookedTransformer& m, uint64_t seed, int steps, int64_t batch, double lr) {
  std::mt19937_64 rng(seed);
  std::vector<at::Tensor> params;
  for (auto& [name, t] : m.named_parameters())
    if (name.find("mlp") == std::string::npos) params.push_back(t);
  for (auto& p : params) p.set_requires_grad(true);
  std::vector<at::Tensor> m1, m2;
  for (auto& p : params) m1.push_back(at::zeros_like(p)), m2.push_back(at::zeros_like(p));
  const double b1 = 0.9, b2 = 0.98, eps = 1e-8;
  double last = 0.0;
  for (int step = 1; step <= steps; ++step) {
    const InductionData d = make_data(batch, rng);
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    at::Tensor loss;
    {
      c10::AutoGradMode grad_on(true);
      loss = copy_loss(m, d);
      loss.backward();
    }
    last = loss.item<double>();
    if (std::getenv("CS_INDUCTION_LOG") && step % 100 == 0) std::printf("[induction]   step %d loss %.4f\n", step, last);
    c10::AutoGradMode no_grad(false);
    const double c1 = 1.0 - std::pow(b1, step), c2 = 1.0 - std::pow(b2, step);
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor g = params[i].grad();
      m1[i].mul_(b1).add_(g, 1.0 - b1);
      m2[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
      params[i].addcdiv_(m1[i] / c1, (m2[i] / c2).sqrt_().add_(eps), -lr);
    }
  }
  m.set_requires_grad(false);
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  return last;
}

// Fraction of copy positions where the argmax is the right token.
double copy_accuracy(HookedTransformer& m, const InductionData& d) {
  c10::AutoGradMode no_grad(false);
  const at::Tensor pred = m.forward(d.ids).argmax(-1);
  const at::Tensor ok = (pred == d.targets).to(at::kFloat) * d.loss_mask;
  return (ok.sum() / d.loss_mask.sum()).item<double>();
}

struct PatternScores {
  std::vector<double> prev;       // per head of layer 0: mean attention to t-1
  std::vector<double> induction;  // per head of layer 1: mean attention to the token after the previous occurrence
};

PatternScores pattern_scores(HookedTransformer& m, const InductionData& d) {
  ActivationCache cache;
  {
    c10::AutoGradMode no_grad(false);
    auto h = cache.attach(m.hooks(), {"blocks.*.attn.hook_pattern"});
    m.forward(d.ids);
  }
  const at::Tensor p0 = cache.at("blocks.0.attn.hook_pattern");  // [B,H,T,S]
  const at::Tensor p1 = cache.at("blocks.1.attn.hook_pattern");
  PatternScores s;
  s.prev.assign(kHeads, 0.0);
  s.induction.assign(kHeads, 0.0);
  auto a0 = p0.accessor<float, 4>();
  auto a1 = p1.accessor<float, 4>();
  const int64_t B = d.ids.size(0);
  double n_prev = 0, n_ind = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t p = d.filler[b], sl = d.seg[b];
    for (int64_t t = 1; t < kSeq; ++t) {
      for (int64_t h = 0; h < kHeads; ++h) s.prev[h] += a0[b][h][t][t - 1];
      n_prev += 1;
    }
    // Second occurrence, position t holds seg[j]; its first occurrence's successor is at t - sl + 1.
    for (int64_t t = p + sl; t < p + 2 * sl - 1; ++t) {
      for (int64_t h = 0; h < kHeads; ++h) s.induction[h] += a1[b][h][t][t - sl + 1];
      n_ind += 1;
    }
  }
  for (int64_t h = 0; h < kHeads; ++h) s.prev[h] /= n_prev, s.induction[h] /= n_ind;
  return s;
}

int64_t argmax(const std::vector<double>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i] / n, mb += b[i] / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

// Clean: a held-out sequence with the metric read at one copy position. Corrupted: the first
// occurrence replaced by other tokens (distinct, none from the segment), so nothing can be copied.
// Logit difference: the right next token minus the corrupted sequence's token in its place.
AttributionBatch make_pairs(const InductionData& d, std::mt19937_64& rng) {
  const int64_t B = d.ids.size(0);
  AttributionBatch b;
  b.clean_ids = d.ids.clone();
  b.corrupted_ids = d.ids.clone();
  b.answer_ids = at::empty({B}, at::kLong);
  b.wrong_ids = at::empty({B}, at::kLong);
  b.positions = at::empty({B}, at::kLong);
  auto c = b.corrupted_ids.accessor<int64_t, 2>();
  auto ids = d.ids.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t p = d.filler[i], sl = d.seg[i];
    std::vector<char> used(kVocab, 0);
    for (int64_t t = p; t < p + sl; ++t) used[ids[i][t]] = 1;
    std::vector<int64_t> fresh;
    for (int64_t v = 0; v < kVocab; ++v)
      if (!used[v]) fresh.push_back(v);
    std::shuffle(fresh.begin(), fresh.end(), rng);
    for (int64_t j = 0; j < sl; ++j) c[i][p + j] = fresh[j];
    const int64_t j = std::uniform_int_distribution<int64_t>(0, sl - 2)(rng);  // read at seg[j], predict seg[j+1]
    b.positions[i] = p + sl + j;
    b.answer_ids[i] = ids[i][p + j + 1];
    b.wrong_ids[i] = c[i][p + j + 1];
  }
  return b;
}

std::vector<double> edge_vector(const Graph& g, const at::Tensor& scores) {
  std::vector<double> out(g.n_edges());
  auto a = scores.accessor<float, 2>();
  for (int64_t e = 0; e < g.n_edges(); ++e) {
    auto [u, d] = g.edge_nodes(e);
    out[e] = a[u][d];
  }
  return out;
}

uint64_t test_seed() {
  const char* s = std::getenv("CS_INDUCTION_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 1;
}

}  // namespace

TEST_CASE("induction toy: trained heads found from patterns are EAP-IG's circuit and ablating them breaks copying",
          "[induction]") {
  const uint64_t seed = test_seed();
  at::manual_seed(seed);
  auto model = make_model(seed);
  HookedTransformer& m = *model;
  const auto t0 = std::chrono::steady_clock::now();
  const int steps = std::getenv("CS_INDUCTION_STEPS") ? std::atoi(std::getenv("CS_INDUCTION_STEPS")) : 600;
  const int64_t batch = std::getenv("CS_INDUCTION_BATCH") ? std::atoi(std::getenv("CS_INDUCTION_BATCH")) : 64;
  const double lr = std::getenv("CS_INDUCTION_LR") ? std::atof(std::getenv("CS_INDUCTION_LR")) : 1e-2;
  if (std::getenv("CS_INDUCTION_THREADS")) at::set_num_threads(std::atoi(std::getenv("CS_INDUCTION_THREADS")));
  const double loss = train(m, seed * 7919 + 1, steps, batch, lr);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::mt19937_64 rng(seed + 1000003);
  const InductionData test = make_data(256, rng);
  const double acc = copy_accuracy(m, test);
  std::printf("[induction] seed %llu: %d steps in %.1f s, final loss %.4f, held-out copy accuracy %.4f\n",
              (unsigned long long)seed, steps, secs, loss, acc);

  const PatternScores ps = pattern_scores(m, test);
  for (int64_t h = 0; h < kHeads; ++h)
    std::printf("[induction]   head %lld: prev-token %.3f (layer 0), induction %.3f (layer 1)\n", (long long)h,
                ps.prev[h], ps.induction[h]);
  const int64_t prev = argmax(ps.prev), ind = argmax(ps.induction);

  // Ablation
  auto ablated_accuracy = [&](std::vector<HeadIntervention> edits) {
    auto hs = apply_head_interventions(m.hooks(), edits, kHeads);
    return copy_accuracy(m, test);
  };
  const double acc_both = ablated_accuracy({{0, prev, 0.0}, {1, ind, 0.0}});
  std::printf("[induction] ablate a0.h%lld + a1.h%lld: accuracy %.4f\n", (long long)prev, (long long)ind, acc_both);
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t h = 0; h < kHeads; ++h)
      std::printf("[induction]   ablate a%lld.h%lld alone: accuracy %.4f\n", (long long)l, (long long)h,
                  ablated_accuracy({{l, h, 0.0}}));

  // Attribution
  const AttributionBatch pairs = make_pairs(test, rng);
  const Graph g({2, kHeads, kHeads, KvEdges::kPerQueryHead});
  EapOptions o;
  const EapResult eap = eap_scores(m, g, pairs, o);
  o.ig_steps = 5;
  const EapResult ig5 = eap_scores(m, g, pairs, o);
  o.ig_steps = 16;
  const EapResult ig16 = eap_scores(m, g, pairs, o);
  std::printf("[induction] metric clean %.3f corrupted %.3f\n", ig5.metric_clean, ig5.metric_corrupted);
  const std::vector<double> s_eap = edge_vector(g, eap.scores), s_ig5 = edge_vector(g, ig5.scores),
                            s_ig16 = edge_vector(g, ig16.scores);
  std::vector<int64_t> all(g.n_edges());
  std::iota(all.begin(), all.end(), 0);
  const std::vector<double> exact = exact_edge_scores(m, g, pairs, all, MetricKind::kLogitDiff);
  std::vector<int64_t> order = all;
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return std::abs(exact[a]) > std::abs(exact[b]); });
  for (int i = 0; i < 12; ++i) {
    const int64_t e = order[i];
    std::printf("[induction]   %-22s exact %8.3f  eap %8.3f  ig5 %8.3f  ig16 %8.3f\n", g.edge_name(e).c_str(), exact[e],
                s_eap[e], s_ig5[e], s_ig16[e]);
  }
  for (int64_t k : {int64_t{10}, int64_t{20}, int64_t{30}, g.n_edges()}) {
    std::vector<double> a, b, c, x;
    for (int64_t i = 0; i < k && i < (int64_t)order.size(); ++i) {
      x.push_back(exact[order[i]]);
      a.push_back(s_eap[order[i]]);
      b.push_back(s_ig5[order[i]]);
      c.push_back(s_ig16[order[i]]);
    }
    std::printf("[induction] top %lld by |exact|: r(EAP) %.4f  r(EAP-IG 5) %.4f  r(EAP-IG 16) %.4f\n", (long long)k,
                pearson(a, x), pearson(b, x), pearson(c, x));
  }
  EdgeMask circ = select_top_n(g, s_ig5, 8);
  prune(g, circ);
  std::printf("[induction] EAP-IG(5) top-8 circuit after pruning:");
  for (int64_t e = 0; e < g.n_edges(); ++e)
    if (circ[e]) std::printf(" %s", g.edge_name(e).c_str());
  std::printf("\n");
  CHECK(acc > 0.9);
}
