// Exact edge patching and circuit metrics: the full circuit is the clean run, the empty circuit and
// the circuit without `input`'s edges are the corrupted run, cutting every edge of a node is
// replacing that node's output, and exact edge patching against EAP / EAP-IG.
#include <c10/core/GradMode.h>

#include <cstdio>

#include "circuitscope/eap.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "attribution_fixtures.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {

double run_metric(HookedTransformer& m, const at::Tensor& ids, const AttributionBatch& b, MetricKind kind,
                  const at::Tensor& clean_logits) {
  c10::AutoGradMode no_grad(false);
  return metric_per_example(kind, m.forward(ids), b, clean_logits).mean().item<double>();
}

}  // namespace

TEST_CASE("circuit metric: full circuit = clean - empty circuit and cut input = corrupted", "[attribution][patching]") {
  struct Case {
    const char* model;
    KvEdges mode;
  };
  for (const Case& c : {Case{"hf-tiny/qwen2-tiny", KvEdges::kPerKvHead}, Case{"hf-tiny/llama-tiny", KvEdges::kPerQueryHead}}) {
    INFO(c.model);
    auto m = cs_test::load_model(c.model);
    const auto& cfg = m->config();
    Graph g({cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, c.mode});
    const AttributionBatch b = cs_test::make_batch();
    at::Tensor clean_logits;
    {
      c10::AutoGradMode no_grad(false);
      clean_logits = m->forward(b.clean_ids);
    }
    for (MetricKind kind : {MetricKind::kLogitDiff, MetricKind::kKl}) {
      const double clean = run_metric(*m, b.clean_ids, b, kind, clean_logits);
      const double corr = run_metric(*m, b.corrupted_ids, b, kind, clean_logits);
      REQUIRE(std::abs(clean - corr) > 0.1);
      at::Tensor all = at::ones({g.n_upstream(), g.n_downstream()}, at::kBool);
      REQUIRE(circuit_metric(*m, g, b, all, kind) == Approx(clean).margin(1e-5));
      REQUIRE(circuit_metric(*m, g, b, at::zeros_like(all), kind) == Approx(corr).margin(1e-4));
      at::Tensor no_input = all.clone();
      no_input[0].fill_(false);  // every edge leaving `input`: every node reads the corrupted embedding
      REQUIRE(circuit_metric(*m, g, b, no_input, kind) == Approx(corr).margin(1e-4));
      REQUIRE(circuit_metric(*m, g, b, all, kind, /*loss=*/true) == Approx(-clean).margin(1e-5));
    }
  }
}

TEST_CASE("circuit metric: cutting every edge of a node = replacing the node's output", "[attribution][patching]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  const AttributionBatch b = cs_test::make_batch();
  const at::Tensor corr = upstream_activations(*m, g, b.corrupted_ids, {});
  double expected;
  {
    auto h1 = m->hooks().add("blocks.0.attn.hook_result", replace_hook(corr.select(2, g.upstream_head(0, 1)), 1));
    auto h2 = m->hooks().add("blocks.2.attn.hook_result", replace_hook(corr.select(2, g.upstream_head(2, 3)), 3));
    auto h3 = m->hooks().add("blocks.1.hook_mlp_out", replace_hook(corr.select(2, g.upstream_mlp(1))));
    expected = run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {});
  }
  at::Tensor mask = at::ones({g.n_upstream(), g.n_downstream()}, at::kBool);
  for (int64_t u : {g.upstream_head(0, 1), g.upstream_head(2, 3), g.upstream_mlp(1)}) mask[u].fill_(false);
  const double got = circuit_metric(*m, g, b, mask, MetricKind::kLogitDiff);
  REQUIRE(std::abs(expected - run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {})) > 1e-3);
  REQUIRE(got == Approx(expected).margin(1e-5));
  // A single query head's k edge of a GQA group cannot be patched through [B,T,K,D] inputs.
  at::Tensor one = at::ones({g.n_upstream(), g.n_downstream()}, at::kBool);
  one[0][g.downstream_k(1, 0)] = false;
  REQUIRE_THROWS_AS(circuit_metric(*m, g, b, one, MetricKind::kLogitDiff), Error);
}

TEST_CASE("exact edge patching = one write hook on the downstream input - correlations with EAP printed",
          "[attribution][patching]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  Graph g({4, 4, 2, KvEdges::kPerKvHead});
  const AttributionBatch b = cs_test::make_batch();
  std::vector<int64_t> edges(g.n_edges());
  for (int64_t e = 0; e < g.n_edges(); ++e) edges[e] = e;
  const std::vector<double> exact = exact_edge_scores(*m, g, b, edges, MetricKind::kLogitDiff);

  const at::Tensor zc = upstream_activations(*m, g, b.clean_ids, {});
  const at::Tensor zx = upstream_activations(*m, g, b.corrupted_ids, {});
  const double clean = run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {});
  for (const char* name : {"a0.h1->a2.h3<q>", "input->a1.kv0<k>", "m0->a2.kv1<v>", "a3.h2->m3", "m2->logits", "input->m0"}) {
    INFO(name);
    const int64_t e = *g.find_edge(name);
    auto [u, d] = g.edge_nodes(e);
    const DownstreamNode& v = g.downstream()[d];
    const std::string p = "blocks." + std::to_string(v.layer) + ".";
    std::string hook;
    std::optional<int64_t> head;
    switch (v.kind) {
      case DownstreamKind::kQ: hook = p + "hook_q_input", head = v.head; break;
      case DownstreamKind::kK: hook = p + "hook_k_input", head = v.head; break;
      case DownstreamKind::kV: hook = p + "hook_v_input", head = v.head; break;
      case DownstreamKind::kMlp: hook = p + "hook_mlp_in"; break;
      case DownstreamKind::kLogits: hook = "blocks.3.hook_resid_post"; break;
    }
    double patched;
    {
      auto h = m->hooks().add(hook, add_hook(zx.select(2, u) - zc.select(2, u), head));
      patched = run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {});
    }
    REQUIRE(std::abs(clean - patched) > 1e-4);
    REQUIRE(exact[e] == Approx(clean - patched).margin(1e-5));
  }

  EapOptions o;
  const EapResult eap = eap_scores(*m, g, b, o);
  o.ig_steps = 16;
  const EapResult ig = eap_scores(*m, g, b, o);
  std::vector<double> se, si;
  for (int64_t e : edges) {
    auto [u, d] = g.edge_nodes(e);
    se.push_back(eap.scores[u][d].item<double>());
    si.push_back(ig.scores[u][d].item<double>());
  }
  // Random-weight model, two substituted tokens per pair: far from linear, so these are reported,
  // not asserted (the issue asks for the comparison on a trained toy model).
  std::printf("[attribution] exact edge patching vs EAP: r = %.4f, vs EAP-IG(16): r = %.4f over %zu edges\n",
              cs_test::pearson(se, exact), cs_test::pearson(si, exact), edges.size());
}

TEST_CASE("faithfulness: full circuit 1 - empty 0 - GQA per-query-head circuits on an ungrouped copy", "[attribution][patching]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  std::vector<PairExample> ex(3);
  ex[0] = {{5, 17, 300, 42, 7, 99, 256, 3}, {5, 17, 301, 42, 7, 12, 256, 3}, 300, 301, 1};
  ex[1] = {{11, 400, 23, 8, 77, 150}, {11, 402, 23, 8, 90, 150}, 400, 402, 2};
  ex[2] = {{9, 9, 31, 200}, {9, 8, 31, 200}, 31, 30, 3};
  std::vector<char> all(g.n_edges(), 1), none(g.n_edges(), 0);
  const Faithfulness fa = faithfulness(*m, g, ex, all, MetricKind::kLogitDiff, false, 2);
  REQUIRE(fa.circuit == Approx(fa.clean).margin(1e-5));
  REQUIRE(fa.normalized == Approx(1.0).margin(1e-4));
  const Faithfulness fn = faithfulness(*m, g, ex, none, MetricKind::kLogitDiff, false, 2);
  REQUIRE(fn.normalized == Approx(0.0).margin(1e-4));
  // Baselines are the model's own metric on the pairs (grouped model, one pair at a time).
  double clean = 0;
  for (const auto& e : ex) {
    const AttributionBatch b = make_attribution_batch(ex, &e - ex.data(), &e - ex.data() + 1);
    clean += run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {}) / 3;
  }
  REQUIRE(fa.clean == Approx(clean).margin(1e-5));

  // One query head's k edge out: on the grouped model only a whole group can be patched.
  const int64_t e = *g.find_edge("input->a1.h1<k>");
  std::vector<char> one = all;
  one[e] = 0;
  REQUIRE_THROWS_AS(circuit_metric(*m, g, make_attribution_batch(ex, 0, 1), edge_mask_matrix(g, one),
                                   MetricKind::kLogitDiff),
                    Error);
  const Faithfulness f1 = faithfulness(*m, g, ex, one, MetricKind::kLogitDiff, false, 3);
  // The same patch by hand on the ungrouped copy: a write hook on head 1's own k input.
  auto um = ungrouped_copy(*m);
  REQUIRE(um->config().n_kv_heads == 4);
  double expected = 0;
  for (size_t i = 0; i < ex.size(); ++i) {
    const AttributionBatch b = make_attribution_batch(ex, i, i + 1);
    const Graph ug({4, 4, 4, KvEdges::kPerQueryHead});
    const at::Tensor zc = upstream_activations(*um, ug, b.clean_ids, {}).select(2, 0);
    const at::Tensor zx = upstream_activations(*um, ug, b.corrupted_ids, {}).select(2, 0);
    auto h = um->hooks().add("blocks.1.hook_k_input", add_hook(zx - zc, 1));
    expected += run_metric(*um, b.clean_ids, b, MetricKind::kLogitDiff, {}) / 3;
  }
  REQUIRE(std::abs(f1.circuit - f1.clean) > 1e-4);
  REQUIRE(f1.circuit == Approx(expected).margin(1e-5));
}

TEST_CASE("zero ablation of edges: empty circuit = zero residual stream - a cut node = a zeroed output", "[attribution][patching]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");  // no o_proj bias
  Graph g({4, 4, 2, KvEdges::kPerKvHead});
  const AttributionBatch b = cs_test::make_batch();
  const at::Tensor zeros = at::zeros({2, 8, g.n_upstream(), 64});
  at::Tensor none = at::zeros({g.n_upstream(), g.n_downstream()}, at::kBool);
  double expected;
  {
    auto h1 = m->hooks().add("hook_embed", replace_hook(at::zeros({2, 8, 64})));
    auto h2 = m->hooks().add("blocks.*.attn.hook_result", replace_hook(at::zeros({2, 8, 4, 64})));
    auto h3 = m->hooks().add("blocks.*.hook_mlp_out", replace_hook(at::zeros({2, 8, 64})));
    expected = run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {});
  }
  // x - sum of its parts leaves float cancellation residue (~1e-7) where the exact residual is 0, and
  // RMSNorm scales it by up to 1/sqrt(eps) = 1e3: a degenerate case, hence the wider margin.
  REQUIRE(expected == 0.0);
  REQUIRE(circuit_metric(*m, g, b, none, MetricKind::kLogitDiff, false, zeros) == Approx(expected).margin(1e-3));
  {
    auto h = m->hooks().add("blocks.1.attn.hook_result", replace_hook(at::zeros({2, 8, 64}), 2));
    expected = run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {});
  }
  at::Tensor cut = at::ones_like(none);
  cut[g.upstream_head(1, 2)].fill_(false);
  REQUIRE(std::abs(expected - run_metric(*m, b.clean_ids, b, MetricKind::kLogitDiff, {})) > 1e-4);
  REQUIRE(circuit_metric(*m, g, b, cut, MetricKind::kLogitDiff, false, zeros) == Approx(expected).margin(1e-5));
  REQUIRE_THROWS_AS(circuit_metric(*m, g, b, cut, MetricKind::kLogitDiff, false, at::zeros({2, 8, 3, 64})), Error);
  REQUIRE(parse_intervention("zero") == Intervention::kZero);
  REQUIRE(parse_intervention("mean-positional") == Intervention::kMeanPositional);
  REQUIRE_THROWS_AS(parse_intervention("median"), Error);
}

TEST_CASE("faithfulness with unequal-length pairs: the corrupted run under its own mask - as eap_scores runs it",
          "[attribution][patching]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  Graph g({4, 4, 2, KvEdges::kPerKvHead});
  std::vector<PairExample> ex(3);
  ex[0].clean_ids = {5, 17, 300, 42, 7, 9};  // corrupted shorter: the read falls on a corrupted pad
  ex[0].corrupted_ids = {5, 18, 301, 42};
  ex[1].clean_ids = {9, 8, 7, 6, 5};         // corrupted longer
  ex[1].corrupted_ids = {9, 8, 70, 6, 5, 4, 3};
  ex[2].clean_ids = {11, 12, 13};
  ex[2].corrupted_ids = {11, 14, 13};
  for (auto& e : ex) e.answer_id = 31, e.wrong_id = 30;
  EapOptions eo;
  const EapResult r = eap_scores(*m, g, ex, eo, 3);
  const std::vector<char> none(g.n_edges(), 0), all(g.n_edges(), 1);
  const Faithfulness fn = faithfulness(*m, g, ex, none, MetricKind::kLogitDiff, false, 2);
  const Faithfulness fa = faithfulness(*m, g, ex, all, MetricKind::kLogitDiff, false, 2);
  REQUIRE(std::abs(r.metric_clean - r.metric_corrupted) > 1e-3);
  CHECK(fn.corrupted == Approx(r.metric_corrupted).margin(1e-5));
  CHECK(fn.circuit == Approx(r.metric_corrupted).margin(1e-5));
  CHECK(fa.circuit == Approx(r.metric_clean).margin(1e-5));
}
