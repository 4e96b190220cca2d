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
#include <ctime>
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
#include "circuitscope/pipeline.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {

constexpr int64_t kVocab = 16;
constexpr int64_t kSeq = 20;
constexpr int64_t kDModel = 64;
constexpr int64_t kHeads = 4;
constexpr int64_t kMinSeg = 4;
constexpr int64_t kMaxSeg = 8;
// Training: the loss sits on a plateau (copying any in-context token, accuracy ~0.3) until the
// previous-token and induction heads form together. The setup is chosen so that this happens well
// before the end of training on every seed, not near the last step where a CPU kernel's rounding
// decides whether it happens at all (issue #20: with repeated filler tokens, a constant learning rate
// and 1000 steps, 3 of 5 seeds were still on the plateau at the end, and seed 2 formed its heads at
// about step 800 on one machine and about step 1000 on another, where the test failed). Distinct
// filler tokens remove a one-layer shortcut (seeds 3 and 5 had reached 0.87-0.99 accuracy without an
// induction head), and a warm-up plus cosine decay keeps Adam at 1e-2 stable and sharpens the heads.
// Measured with scripts/kernel_variants.sh seeds (default kernels): on seeds 1-6 the loss is below
// 0.02 by step 800 (by step 300 on seeds 2, 3, 4 and 6), every seed copies with accuracy 1.000 and has
// an induction head scoring >= 0.95. The previous-token role is one head on seeds 2, 3 and 4 (0.945,
// 0.977, 0.996; no other layer-0 head above 0.16) but shared on seeds 1 (0.33 + 0.31), 5 (0.51 + 0.34)
// and 6 (0.87 + 0.65). The checks below are about one previous-token head, so the seed is one with a
// single sharp one; on seed 2 every check holds with margin on all 11 kernel variants (README,
// "Tests on other CPUs": previous-token score 0.945-0.986, next layer-0 head <= 0.149, mechanism
// zeroed <= 0.079, any other layer-0 head zeroed >= 0.860).
constexpr uint64_t kSeed = 2;
constexpr int kSteps = 1500;
constexpr int64_t kBatch = 64;
constexpr double kLr = 1e-2;
constexpr int kWarmup = 100;     // linear warm-up steps
constexpr double kLrEnd = 0.1;   // cosine decay to this fraction of kLr

// Sequences [filler][segment][segment]: all tokens of filler and segment are distinct, so the token
// after each repeated token is determined only by its first occurrence, and no token's count in the
// context gives the answer away.
// Segment and filler lengths vary, so no fixed relative position solves the task.
struct InductionData {
  at::Tensor ids;        // [N,T] int64
  at::Tensor targets;    // [N,T] next token (0 at the last position)
  at::Tensor loss_mask;  // [N,T] float, 1 where the next token is a copy (second occurrence, not its last token)
  std::vector<int64_t> filler, seg;  // per row
};

static_assert(kSeq - kMinSeg <= kVocab, "filler and segment must fit in the vocabulary without repeats");

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
    for (int64_t t = 0; t < p; ++t) ids[i][t] = perm[s + t];
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

// Adam by hand (no torch/optim headers in the tests); the MLP weights stay zero.
// `trace` gets the loss every 100 steps (where the plateau ends differs by seed and CPU kernel).
double train(HookedTransformer& m, uint64_t seed, int steps, int64_t batch, double lr, std::vector<double>& trace) {
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
    if (step % 100 == 0) trace.push_back(last);
    c10::AutoGradMode no_grad(false);
    const double c1 = 1.0 - std::pow(b1, step), c2 = 1.0 - std::pow(b2, step);
    const double warm = std::min(1.0, static_cast<double>(step) / kWarmup);
    const double schedule = warm * (kLrEnd + (1.0 - kLrEnd) * 0.5 * (1.0 + std::cos(M_PI * step / steps)));
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor g = params[i].grad();
      m1[i].mul_(b1).add_(g, 1.0 - b1);
      m2[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
      params[i].addcdiv_(m1[i] / c1, (m2[i] / c2).sqrt_().add_(eps), -lr * schedule);
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

enum class Corruption {
  kQueryToken,  // only the first occurrence of the token the metric is read at: its successor can no longer be found
  kSegment,     // the whole first occurrence: nothing can be copied
};

// Clean: a held-out sequence, the metric read at one position of the repeat (holding seg[j],
// the answer seg[j+1]). Corrupted tokens are distinct and none is from the segment.
//  kQueryToken: seg[j]'s first occurrence replaced by x; wrong = x. Only the induction head's key
//               (via the previous-token head) and query paths change, not the copied value.
//  kSegment:    the first occurrence replaced by x_0..x_{s-1}; wrong = x_{j+1}, the token that
//               stands where the answer stood.
AttributionBatch make_pairs(const InductionData& d, Corruption kind, std::mt19937_64& rng) {
  const int64_t B = d.ids.size(0);
  AttributionBatch b;
  b.clean_ids = d.ids.clone();
  b.corrupted_ids = d.ids.clone();
  b.answer_ids = at::empty({B}, at::kLong);
  b.wrong_ids = at::empty({B}, at::kLong);
  b.positions = at::empty({B}, at::kLong);
  auto c = b.corrupted_ids.accessor<int64_t, 2>();
  auto ids = d.ids.accessor<int64_t, 2>();
  auto ans = b.answer_ids.accessor<int64_t, 1>();
  auto wrong = b.wrong_ids.accessor<int64_t, 1>();
  auto pos = b.positions.accessor<int64_t, 1>();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t p = d.filler[i], sl = d.seg[i];
    std::vector<char> in_seg(kVocab, 0);
    for (int64_t t = p; t < p + sl; ++t) in_seg[ids[i][t]] = 1;
    std::vector<int64_t> fresh;
    for (int64_t v = 0; v < kVocab; ++v)
      if (!in_seg[v]) fresh.push_back(v);
    std::shuffle(fresh.begin(), fresh.end(), rng);
    const int64_t j = std::uniform_int_distribution<int64_t>(0, sl - 2)(rng);
    pos[i] = p + sl + j;
    ans[i] = ids[i][p + j + 1];
    if (kind == Corruption::kQueryToken) {
      c[i][p + j] = fresh[0];
      wrong[i] = fresh[0];
    } else {
      for (int64_t k = 0; k < sl; ++k) c[i][p + k] = fresh[k];
      wrong[i] = c[i][p + j + 1];
    }
  }
  return b;
}

// The model is trained once and shared by the test cases below.
struct Trained {
  std::unique_ptr<HookedTransformer> model;
  InductionData test;  // held out
  double seconds = 0.0, cpu_seconds = 0.0, final_loss = 0.0;
  std::vector<double> loss_trace;  // every 100 steps
};

// $CS_INDUCTION_SEED and $CS_INDUCTION_STEPS replace kSeed and kSteps, for scripts/kernel_variants.sh's
// seed sweep (how the constants were chosen); the suite runs with the constants.
uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::stoull(v) : fallback;
}
const uint64_t induction_seed = env_or("CS_INDUCTION_SEED", kSeed);
const int induction_steps = static_cast<int>(env_or("CS_INDUCTION_STEPS", kSteps));

Trained& trained() {
  static Trained t = [] {
    Trained r;
    const int threads = at::get_num_threads();
    at::set_num_threads(1);  // tiny tensors: one thread is faster, and the run is reproducible
    r.model = make_model(induction_seed);
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    r.final_loss = train(*r.model, induction_seed * 7919 + 1, induction_steps, kBatch, kLr, r.loss_trace);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.cpu_seconds = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    at::set_num_threads(threads);
    std::mt19937_64 rng(induction_seed + 1000003);
    r.test = make_data(256, rng);
    return r;
  }();
  return t;
}

struct Correlations {
  double eap = 0, ig5 = 0, ig16 = 0;
};

// Pearson correlation of EAP, EAP-IG(5) and EAP-IG(16) with exact edge patching over the n edges
// with the largest |exact score|; the strongest edges are printed.
Correlations compare_with_exact(HookedTransformer& m, const Graph& g, const AttributionBatch& pairs, int64_t n,
                                const char* label) {
  EapOptions o;
  const std::vector<double> eap = edge_scores_from_matrix(g, eap_scores(m, g, pairs, o).scores);
  o.ig_steps = 5;
  const std::vector<double> ig5 = edge_scores_from_matrix(g, eap_scores(m, g, pairs, o).scores);
  o.ig_steps = 16;
  const std::vector<double> ig16 = edge_scores_from_matrix(g, eap_scores(m, g, pairs, o).scores);
  std::vector<int64_t> order(g.n_edges());
  std::iota(order.begin(), order.end(), 0);
  const std::vector<double> exact = exact_edge_scores(m, g, pairs, order, MetricKind::kLogitDiff);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return std::abs(exact[a]) > std::abs(exact[b]); });
  std::vector<double> x, a, b, c;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t e = order[i];
    x.push_back(exact[e]), a.push_back(eap[e]), b.push_back(ig5[e]), c.push_back(ig16[e]);
    if (i < 6)
      std::printf("[induction]   %-18s exact %7.3f  EAP %7.3f  EAP-IG(5) %7.3f  EAP-IG(16) %7.3f\n",
                  g.edge_name(e).c_str(), exact[e], eap[e], ig5[e], ig16[e]);
  }
  const Correlations r{cs_test::pearson(a, x), cs_test::pearson(b, x), cs_test::pearson(c, x)};
  std::printf("[induction] %s: over the %lld strongest edges (of %lld), exact edge patching vs EAP r = %.4f, "
              "vs EAP-IG(5) r = %.4f, vs EAP-IG(16) r = %.4f\n",
              label, (long long)n, (long long)g.n_edges(), r.eap, r.ig5, r.ig16);
  return r;
}

}  // namespace

TEST_CASE("induction toy: the previous-token and induction heads found from attention patterns are EAP-IG's "
          "circuit - ablating them breaks copying",
          "[induction][training]") {
  Trained& t = trained();
  HookedTransformer& m = *t.model;
  const double acc = copy_accuracy(m, t.test);
  std::printf("[induction] seed %llu: %d steps in %.1f s (%.1f s CPU), final loss %.4f, held-out copy accuracy %.4f\n",
              (unsigned long long)induction_seed, induction_steps, t.seconds, t.cpu_seconds, t.final_loss, acc);
  std::printf("[induction] loss every 100 steps:");
  for (double l : t.loss_trace) std::printf(" %.3f", l);
  std::printf("\n");
  // The mechanism from attention patterns alone (printed before the accuracy check, for the seed sweep).
  const PatternScores ps = pattern_scores(m, t.test);
  for (int64_t h = 0; h < kHeads; ++h)
    std::printf("[induction]   head %lld: previous-token score %.3f (layer 0), induction score %.3f (layer 1)\n",
                (long long)h, ps.prev[h], ps.induction[h]);
  REQUIRE(acc > 0.95);
  const int64_t prev = argmax(ps.prev), ind = argmax(ps.induction);
  REQUIRE(ps.prev[prev] > 0.5);
  REQUIRE(ps.induction[ind] > 0.8);
  for (int64_t h = 0; h < kHeads; ++h)
    if (h != prev) CHECK(ps.prev[h] < 0.3);  // one previous-token head, not a blend

  // Attribution ranks them first. Where two layer-1 heads share the induction work, either may
  // carry the top edges: the heads with an induction score > 0.8 count as induction heads.
  std::vector<int64_t> induction_heads;
  for (int64_t h = 0; h < kHeads; ++h)
    if (ps.induction[h] > 0.8) induction_heads.push_back(h);
  std::mt19937_64 rng(induction_seed + 2000003);
  const AttributionBatch pairs = make_pairs(t.test, Corruption::kQueryToken, rng);
  const Graph g({2, kHeads, kHeads, KvEdges::kPerQueryHead});
  EapOptions o;
  o.ig_steps = 5;
  const EapResult ig = eap_scores(m, g, pairs, o);
  std::printf("[induction] logit difference clean %.3f, corrupted %.3f\n", ig.metric_clean, ig.metric_corrupted);
  REQUIRE(ig.metric_clean - ig.metric_corrupted > 5.0);
  const std::vector<double> s = edge_scores_from_matrix(g, ig.scores);
  const std::string a0 = "a0.h" + std::to_string(prev), a1 = "a1.h" + std::to_string(ind);
  // The mechanism's edges: input -> a0.prev<v>, a0.prev -> a1.X<k>, a1.X -> logits (X an induction head).
  std::vector<char> mechanism(g.n_edges(), 0);
  mechanism[*g.find_edge("input->" + a0 + "<v>")] = 1;
  for (int64_t h : induction_heads) {
    const std::string x = "a1.h" + std::to_string(h);
    mechanism[*g.find_edge(a0 + "->" + x + "<k>")] = 1;
    mechanism[*g.find_edge(x + "->logits")] = 1;
  }
  std::vector<int64_t> order(g.n_edges());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
  for (int i = 0; i < 5; ++i)
    std::printf("[induction]   EAP-IG(5) #%d %-18s %.3f\n", i + 1, g.edge_name(order[i]).c_str(), s[order[i]]);
  for (int i = 0; i < 3; ++i) {
    INFO("EAP-IG's #" << i + 1 << " edge " << g.edge_name(order[i]));
    CHECK(mechanism[order[i]]);
  }
  // The strongest edge into any layer-1 key input is the K-composition edge from the previous-token head.
  int64_t best_k = -1;
  for (int64_t e = 0; e < g.n_edges(); ++e) {
    const DownstreamNode& d = g.downstream()[g.edge_nodes(e).second];
    if (d.layer == 1 && d.kind == DownstreamKind::kK && (best_k < 0 || s[e] > s[best_k])) best_k = e;
  }
  INFO("strongest edge into a layer-1 key: " << g.edge_name(best_k));
  CHECK(mechanism[best_k]);
  EdgeMask circuit = select_top_n(g, s, 10);
  prune(g, circuit);
  CHECK(circuit[*g.find_edge("input->" + a0 + "<v>")]);
  CHECK(circuit[*g.find_edge(a0 + "->" + a1 + "<k>")]);
  CHECK(circuit[*g.find_edge(a1 + "->logits")]);

  // Ablation (zeroing the heads' outputs through hook_z): the previous-token head and every
  // induction head together.
  auto ablated = [&](std::vector<HeadIntervention> edits) {
    auto handles = apply_head_interventions(m.hooks(), edits, kHeads);
    return copy_accuracy(m, t.test);
  };
  std::vector<HeadIntervention> mechanism_heads = {{0, prev, 0.0}};
  std::string zeroed = a0;
  for (int64_t h : induction_heads) mechanism_heads.push_back({1, h, 0.0}), zeroed += " a1.h" + std::to_string(h);
  const double all = ablated(mechanism_heads);
  std::printf("[induction] accuracy with %s zeroed: %.4f\n", zeroed.c_str(), all);
  CHECK(all < 0.3);  // the plateau level: a guess among the tokens in context
  // Any other head zeroed alone. Layer-1 heads outside the mechanism do nothing for copying (1.000 in
  // every run measured). Zeroing a layer-0 head also removes its share of the residual stream that
  // layer 1's RMSNorm scales by, so it costs accuracy without being part of the mechanism (0.64 and
  // 0.80 on seeds 4 and 3, 0.86-0.96 on seed 2 across kernel variants): the bound there is well above
  // the mechanism's plateau level, not near 1.
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t h = 0; h < kHeads; ++h) {
      const bool in_mechanism = l == 0 ? h == prev : std::count(induction_heads.begin(), induction_heads.end(), h) > 0;
      if (in_mechanism) continue;
      const double other = ablated({{l, h, 0.0}});
      std::printf("[induction]   a%lld.h%lld zeroed alone: %.4f\n", (long long)l, (long long)h, other);
      CHECK(other > (l == 0 ? 0.6 : 0.9));
    }
}

TEST_CASE("induction toy: EAP-IG agrees with exact edge patching on the strongest edges at least as well as EAP",
          "[induction][training]") {
  Trained& t = trained();
  HookedTransformer& m = *t.model;
  const Graph g({2, kHeads, kHeads, KvEdges::kPerQueryHead});
  std::mt19937_64 rng(induction_seed + 2000003);
  const AttributionBatch pairs = make_pairs(t.test, Corruption::kQueryToken, rng);
  const Correlations r = compare_with_exact(m, g, pairs, 30, "query-token corruption");
  CHECK(r.ig5 >= r.eap);
  CHECK(r.ig16 >= r.eap);
  // Reported, not asserted: with the whole first occurrence corrupted, the value the induction
  // head copies flips from the wrong token to the answer along the IG path while the key match
  // switches on, and EAP-IG-inputs gives the key edges negative credit (exact patching: large
  // positive), so on this model EAP-IG correlates worse than EAP with exact patching.
  const AttributionBatch seg_pairs = make_pairs(t.test, Corruption::kSegment, rng);
  compare_with_exact(m, g, seg_pairs, 30, "segment corruption (reported only)");
}
