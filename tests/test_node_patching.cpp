// Exact node patching: all heads of a layer at once = the layer's attention output patched; the
// last residual stream at the read position = the corrupted run; positions where clean and
// corrupted agree change nothing; the CLI writes the library's numbers.
#include <c10/core/GradMode.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/eap.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "attribution_fixtures.hpp"
#include "test_util.hpp"

using namespace circuitscope;

TEST_CASE("node patching: a layer's heads together = its attention output - last resid at the read position = corrupted",
          "[attribution][node-patching]") {
  for (const char* name : {"hf-tiny/qwen2-tiny", "hf-tiny/llama-tiny"}) {
    INFO(name);
    auto m = cs_test::load_model(name);
    const auto& cfg = m->config();
    const AttributionBatch b = cs_test::make_batch();
    c10::AutoGradMode no_grad(false);
    const at::Tensor clean_logits = m->forward(b.clean_ids);
    const at::Tensor m_clean = metric_per_example(MetricKind::kLogitDiff, clean_logits, b, {});
    const at::Tensor m_corr = metric_per_example(MetricKind::kLogitDiff, m->forward(b.corrupted_ids), b, {});
    for (int64_t layer : {int64_t{0}, cfg.n_layers - 1}) {
      ActivationCache cache;
      {
        auto h = cache.attach(m->hooks(), {"blocks." + std::to_string(layer) + ".hook_attn_out"});
        m->forward(b.corrupted_ids);
      }
      at::Tensor expected;
      {
        auto h = m->hooks().add("blocks." + std::to_string(layer) + ".hook_attn_out",
                                replace_hook(cache.at("blocks." + std::to_string(layer) + ".hook_attn_out")));
        expected = metric_per_example(MetricKind::kLogitDiff, m->forward(b.clean_ids), b, {});
      }
      std::vector<NodePatch> heads;
      for (int64_t h = 0; h < cfg.n_heads; ++h) heads.push_back({PatchLevel::kHead, layer, h});
      const at::Tensor got = patched_metric(*m, b, heads, MetricKind::kLogitDiff);
      REQUIRE((expected - m_clean).abs().max().item<double>() > 1e-3);
      cs_test::require_close(got, expected, 1e-4, 1e-4, "all heads of a layer vs attn_out");
      // One head alone is something else.
      REQUIRE((patched_metric(*m, b, {heads[0]}, MetricKind::kLogitDiff) - expected).abs().max().item<double>() > 1e-5);
    }
    const NodePatch last{PatchLevel::kResid, cfg.n_layers - 1, -1};
    cs_test::require_close(patched_metric(*m, b, {last}, MetricKind::kLogitDiff, 7), m_corr, 1e-4, 1e-4,
                           "last resid at the read position");
    cs_test::require_close(patched_metric(*m, b, {last}, MetricKind::kLogitDiff, 6), m_clean, 1e-5, 1e-5,
                           "last resid elsewhere");
    // The embedding at position 0 (the same token in both runs) changes nothing; at 2 it does for row 0.
    const NodePatch embed{PatchLevel::kResid, -1, -1};
    cs_test::require_close(patched_metric(*m, b, {embed}, MetricKind::kLogitDiff, 0), m_clean, 1e-5, 1e-5, "embed 0");
    const at::Tensor e2 = patched_metric(*m, b, {embed}, MetricKind::kLogitDiff, 2);
    REQUIRE(std::abs(e2[0].item<double>() - m_clean[0].item<double>()) > 1e-4);
    REQUIRE(e2[1].item<double>() == Approx(m_clean[1].item<double>()).margin(1e-5));
  }
}

TEST_CASE("patch command: scores - per-position scores and their sign", "[attribution][node-patching][cli]") {
  const std::string dir = cs_test::make_temp_dir("patch");
  const std::string data = dir + "/p.jsonl";
  std::ofstream(data) << "{\"clean_ids\": [5, 17, 300, 42, 7, 99, 256, 3], \"corrupted_ids\": [5, 17, 301, 42, 7, 12, 256, "
                         "3], \"answer_id\": 300, \"wrong_id\": 301}\n"
                         "{\"clean_ids\": [9, 9, 31, 200], \"corrupted_ids\": [9, 8, 31, 200], \"answer_id\": 31, "
                         "\"wrong_id\": 30}\n";
  const std::string model = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  std::string log;
  int rc = cs_test::run_command(cs_test::binary_path() + " patch " + model + " --data " + data +
                                    " --level head --per-position --batch-size 2 --out " + dir + "/h.json",
                                log);
  INFO(log);
  REQUIRE(rc == 0);
  nlohmann::json j;
  std::ifstream(dir + "/h.json") >> j;
  REQUIRE(j["nodes"].size() == 16);
  REQUIRE(j["position_counts"] == nlohmann::json({2, 2, 2, 2, 1, 1, 1, 1}));
  // The library on the same two pairs, one at a time (no padding): the mean of the per-pair scores.
  auto m = HookedTransformer::from_pretrained(model);
  std::vector<PairExample> ex(2);
  ex[0].clean_ids = {5, 17, 300, 42, 7, 99, 256, 3};
  ex[0].corrupted_ids = {5, 17, 301, 42, 7, 12, 256, 3};
  ex[0].answer_id = 300, ex[0].wrong_id = 301;
  ex[1].clean_ids = {9, 9, 31, 200};
  ex[1].corrupted_ids = {9, 8, 31, 200};
  ex[1].answer_id = 31, ex[1].wrong_id = 30;
  const NodePatchingResult r = node_patching(*m, ex, PatchLevel::kHead, true, MetricKind::kLogitDiff, false, 1);
  REQUIRE(r.nodes[6].name() == "a1.h2");
  REQUIRE(j["nodes"]["a1.h2"]["score"].get<double>() == Approx(r.scores[6]).margin(1e-5));
  REQUIRE(j["nodes"]["a1.h2"]["per_position"][1].get<double>() == Approx(r.per_position[6][1]).margin(1e-5));
  // Position 0 is the same token in both runs of both pairs: nothing changes anywhere.
  for (const auto& [n, v] : j["nodes"].items()) REQUIRE(v["per_position"][0].get<double>() == Approx(0.0).margin(1e-5));
  // Sign: each score is M(clean) - M(patched); with --loss all flip.
  const NodePatchingResult neg = node_patching(*m, ex, PatchLevel::kHead, false, MetricKind::kLogitDiff, true, 2);
  for (size_t i = 0; i < r.scores.size(); ++i) REQUIRE(neg.scores[i] == Approx(-r.scores[i]).margin(1e-5));
  rc = cs_test::run_command(cs_test::binary_path() + " patch " + model + " --data " + data + " --level mlp --out " + dir +
                                "/m.json",
                            log);
  REQUIRE(rc == 0);
  std::ifstream(dir + "/m.json") >> j;
  REQUIRE(j["nodes"].size() == 4);
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " patch " + model + " --data " + data + " --level neuron --out " +
                                   dir + "/x.json",
                               log) == 2);
  cs_test::remove_tree(dir);
}
