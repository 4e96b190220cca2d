// Mean and mean-positional interventions: the means are the averages of the upstream activations
// over real tokens (checked example by example), a one-example dataset turns mean-positional (and,
// for one token, mean) into patching, and an empty circuit under a mean intervention is the run in
// which every node's output is replaced by its mean.
#include <c10/core/GradMode.h>

#include "circuitscope/circuit.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
std::vector<PairExample> examples() {
  std::vector<PairExample> ex(3);
  ex[0].clean_ids = {5, 17, 300, 42, 7, 99, 256, 3};
  ex[0].corrupted_ids = {5, 17, 301, 42, 7, 12, 256, 3};
  ex[1].clean_ids = {11, 400, 23, 8, 77, 150};
  ex[1].corrupted_ids = {11, 402, 23, 8, 90, 150};
  ex[2].clean_ids = {9, 9, 31, 200};
  ex[2].corrupted_ids = {9, 8, 31, 200};
  const int64_t ans[3][2] = {{300, 301}, {400, 402}, {31, 30}};
  for (int i = 0; i < 3; ++i) ex[i].answer_id = ans[i][0], ex[i].wrong_id = ans[i][1];
  return ex;
}
at::Tensor acts(HookedTransformer& m, const Graph& g, const std::vector<int64_t>& ids) {
  return upstream_activations(m, g, at::tensor(ids, at::kLong).unsqueeze(0), {}).squeeze(0).to(at::kFloat);  // [T,U,D]
}
}  // namespace

TEST_CASE("mean activations: over real tokens - overall and per position", "[attribution][interventions]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  const auto ex = examples();
  for (MeanSource src : {MeanSource::kClean, MeanSource::kCorrupted}) {
    std::vector<at::Tensor> per;  // each example alone: no padding anywhere
    for (const auto& e : ex) per.push_back(acts(*m, g, src == MeanSource::kClean ? e.clean_ids : e.corrupted_ids));
    // Overall: 18 real tokens.
    const at::Tensor expect = at::cat(per, 0).mean(0);
    // batch_size 2: the first batch pads one row, so padding must be left out.
    const at::Tensor got = mean_upstream_activations(*m, g, ex, false, src, 2);
    cs_test::require_close(got, expect, 1e-5, 1e-4, "mean");
    // Per position: 0..3 over three examples, 4..5 over two, 6..7 over one.
    const at::Tensor pos = mean_upstream_activations(*m, g, ex, true, src, 2);
    REQUIRE(pos.size(0) == 8);
    cs_test::require_close(pos[2], (per[0][2] + per[1][2] + per[2][2]) / 3, 1e-5, 1e-4, "position 2");
    cs_test::require_close(pos[5], (per[0][5] + per[1][5]) / 2, 1e-5, 1e-4, "position 5");
    cs_test::require_close(pos[7], per[0][7], 1e-5, 1e-4, "position 7");
  }
}

TEST_CASE("mean interventions on one example equal patching - an empty circuit under the mean is every node at its mean",
          "[attribution][interventions]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  Graph g({4, 4, 2, KvEdges::kPerKvHead});
  const auto ex = examples();
  std::vector<EdgeMask> masks;
  for (double frac : {0.0, 0.3, 0.7}) {  // deterministic mixes of edges (kv groups together: per-kv-head graph)
    EdgeMask k(g.n_edges(), 0);
    for (int64_t e = 0; e < g.n_edges(); ++e) k[e] = ((e * 7919) % 100) < frac * 100;
    masks.push_back(k);
  }
  const std::vector<PairExample> one = {ex[0]};
  const auto patch = faithfulness(*m, g, one, masks, MetricKind::kLogitDiff, false, 4, Intervention::kPatch);
  const auto mpos = faithfulness(*m, g, one, masks, MetricKind::kLogitDiff, false, 4, Intervention::kMeanPositional,
                                 MeanSource::kCorrupted);
  for (size_t i = 0; i < masks.size(); ++i) REQUIRE(mpos[i].circuit == Approx(patch[i].circuit).margin(1e-5));
  REQUIRE(std::abs(patch[1].circuit - patch[1].clean) > 1e-3);  // the mixes do something
  // One token: the mean over positions is that token's activation.
  PairExample tok;
  tok.clean_ids = {17};
  tok.corrupted_ids = {301};
  tok.answer_id = 300;
  tok.wrong_id = 301;
  const auto p1 = faithfulness(*m, g, {tok}, masks, MetricKind::kLogitDiff, false, 1, Intervention::kPatch);
  const auto m1 = faithfulness(*m, g, {tok}, masks, MetricKind::kLogitDiff, false, 1, Intervention::kMean,
                               MeanSource::kCorrupted);
  for (size_t i = 0; i < masks.size(); ++i) REQUIRE(m1[i].circuit == Approx(p1[i].circuit).margin(1e-5));

  // Empty circuit, mean over the clean inputs of all three examples: every upstream output replaced by
  // its mean, on each example (no padding: batch size 1).
  const at::Tensor means = mean_upstream_activations(*m, g, ex, false, MeanSource::kClean, 3);  // [U,D]
  const auto f = faithfulness(*m, g, ex, {EdgeMask(g.n_edges(), 0)}, MetricKind::kLogitDiff, false, 1,
                              Intervention::kMean, MeanSource::kClean);
  double expected = 0.0;
  for (const auto& e : ex) {
    const AttributionBatch b = make_attribution_batch({e}, 0, 1);
    const int64_t T = b.clean_ids.size(1);
    auto h1 = m->hooks().add("hook_embed", replace_hook(means[0].view({1, 1, 64}).expand({1, T, 64}).contiguous()));
    std::vector<HookHandle> hs;
    for (int64_t l = 0; l < 4; ++l) {
      const at::Tensor heads = means.narrow(0, g.upstream_head(l, 0), 4).view({1, 1, 4, 64}).expand({1, T, 4, 64});
      hs.push_back(m->hooks().add("blocks." + std::to_string(l) + ".attn.hook_result", replace_hook(heads.contiguous())));
      hs.push_back(m->hooks().add("blocks." + std::to_string(l) + ".hook_mlp_out",
                                  replace_hook(means[g.upstream_mlp(l)].view({1, 1, 64}).expand({1, T, 64}).contiguous())));
    }
    c10::AutoGradMode no_grad(false);
    expected += metric_per_example(MetricKind::kLogitDiff, m->forward(b.clean_ids), b).item<double>() / 3;
  }
  REQUIRE(std::abs(expected - f[0].clean) > 1e-3);
  REQUIRE(f[0].circuit == Approx(expected).margin(1e-4));
}
