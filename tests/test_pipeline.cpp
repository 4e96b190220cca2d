// The attribute pipeline as a library call (include/circuitscope/pipeline.hpp), without the CLI.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pipeline.hpp"
#include "circuitscope/report.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
const char* kPipelinePairs =
    "{\"clean_ids\": [5, 17, 300, 42, 7, 99, 256, 3], \"corrupted_ids\": [5, 17, 301, 42, 7, 12, 256, 3], "
    "\"answer_id\": 300, \"wrong_id\": 301}\n"
    "{\"clean_ids\": [11, 400, 23, 8, 77, 150], \"corrupted_ids\": [11, 402, 23, 8, 90, 150], \"answer_id\": 400, "
    "\"wrong_id\": 402}\n"
    "{\"clean_ids\": [9, 9, 31, 200], \"corrupted_ids\": [9, 8, 31, 200], \"answer_id\": 31, \"wrong_id\": 30}\n"
    "{\"clean_ids\": [14, 60, 61, 62, 63], \"corrupted_ids\": [14, 70, 61, 62, 63], \"answer_id\": 62, "
    "\"wrong_id\": 70}\n";

PairDataset read_fixture_pairs(const std::string& dir, const HookedTransformer& model) {
  PairReadOptions ro;
  ro.vocab_size = model.config().vocab_size;
  return read_pairs_jsonl(cs_test::write_file(dir, "p.jsonl", kPipelinePairs), ro);
}

using cs_test::error_code_of;
}  // namespace

TEST_CASE("edge_scores_from_matrix reads entry [u][v] of each edge, in edge order", "[pipeline]") {
  const Graph g({3, 4, 2, KvEdges::kPerKvHead});
  // Entry [u][v] = 1000 u + v, so each value names its cell.
  const at::Tensor m = (at::arange(g.n_upstream(), at::kFloat).unsqueeze(1) * 1000 +
                        at::arange(g.n_downstream(), at::kFloat).unsqueeze(0));
  const std::vector<double> s = edge_scores_from_matrix(g, m);
  REQUIRE(static_cast<int64_t>(s.size()) == g.n_edges());
  REQUIRE(s[*g.find_edge("input->a0.h2<q>")] == 1000.0 * 0 + g.downstream_q(0, 2));
  REQUIRE(s[*g.find_edge("a1.h3->a2.kv1<v>")] == 1000.0 * g.upstream_head(1, 3) + g.downstream_v(2, 1));
  REQUIRE(s[*g.find_edge("m2->logits")] == 1000.0 * g.upstream_mlp(2) + g.downstream_logits());
  REQUIRE(error_code_of([&] { edge_scores_from_matrix(g, at::zeros({2, 2})); }) ==
          static_cast<int>(ErrorCode::kInternal));
}

TEST_CASE("attribute specs: method names, EAP options, and usage errors before any model loads", "[pipeline]") {
  REQUIRE(parse_attribution_method("eap-ig-activations") == AttributionMethod::kEapIgActivations);
  for (AttributionMethod m : {AttributionMethod::kEap, AttributionMethod::kEapIgInputs,
                              AttributionMethod::kEapIgActivations, AttributionMethod::kCleanCorrupted})
    REQUIRE(parse_attribution_method(attribution_method_name(m)) == m);
  REQUIRE(error_code_of([] { parse_attribution_method("eap-ig"); }) == static_cast<int>(ErrorCode::kUsage));

  AttributeSpec s;
  s.method = AttributionMethod::kCleanCorrupted;
  s.ig_steps = 7;  // ignored by clean-corrupted
  EapOptions eo = s.eap_options();
  REQUIRE(eo.clean_corrupted);
  REQUIRE(eo.ig_steps == 0);
  s.method = AttributionMethod::kEapIgActivations;
  eo = s.eap_options();
  REQUIRE(eo.ig_steps == 7);
  REQUIRE(eo.ig_mode == IgMode::kActivations);
  REQUIRE(!eo.clean_corrupted);

  s.ig_steps = 0;
  REQUIRE(error_code_of([&] { s.validate(); }) == static_cast<int>(ErrorCode::kUsage));
  s.method = AttributionMethod::kEap;
  REQUIRE(error_code_of([&] { s.validate(); }) == 0);  // eap takes no steps
  s.batch_size = 0;
  REQUIRE(error_code_of([&] { s.validate(); }) == static_cast<int>(ErrorCode::kUsage));
  s.batch_size = 8;
  s.faithfulness.sizes = {10, -1};
  REQUIRE(error_code_of([&] { s.validate(); }) == static_cast<int>(ErrorCode::kUsage));
}

TEST_CASE("attribute() equals eap_scores, select_circuit and faithfulness called one by one, and the CLI's report",
          "[pipeline][cli]") {
  cs_test::TempDir tmp("pipeline");
  const std::string model_dir = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  auto model = HookedTransformer::from_pretrained(model_dir);
  const PairDataset ds = read_fixture_pairs(tmp.path, *model);
  const std::string& data = ds.path;

  AttributeSpec spec;
  spec.method = AttributionMethod::kEapIgInputs;
  spec.ig_steps = 3;
  spec.batch_size = 3;  // two batches of unequal size
  spec.selection.kind = SelectionKind::kTopN;
  spec.selection.n = 40;
  spec.faithfulness.intervention = Intervention::kMean;
  spec.faithfulness.sizes = {25, 479};
  size_t last_done = 0, calls = 0;
  const AttributeResult r = attribute(*model, ds.examples, spec, [&](size_t done, size_t total) {
    REQUIRE(total == 4);
    last_done = done;
    ++calls;
  });
  REQUIRE(calls == 2);
  REQUIRE(last_done == 4);

  // Stage 1 against eap_scores and the graph's own edge indexing.
  const Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  EapOptions eo;
  eo.ig_steps = 3;
  const EapResult ref = eap_scores(*model, g, ds.examples, eo, 3);
  REQUIRE(r.scores.n_examples == 4);
  REQUIRE(r.scores.metric_clean == Approx(ref.metric_clean).epsilon(1e-12));
  REQUIRE(r.scores.metric_corrupted == Approx(ref.metric_corrupted).epsilon(1e-12));
  REQUIRE(static_cast<int64_t>(r.scores.scores.size()) == g.n_edges());
  for (const char* e : {"a0.h1->a2.h3<q>", "input->m0", "m3->logits", "a1.h2->a3.h1<k>", "m0->a2.h0<v>"}) {
    INFO(e);
    const auto [u, d] = g.edge_nodes(*g.find_edge(e));
    REQUIRE(r.scores.scores[*g.find_edge(e)] == ref.scores[u][d].item<double>());
  }

  // Stage 2 against select_circuit and faithfulness.
  const SelectedCircuit sc = select_circuit(g, r.scores.scores, spec.selection);
  REQUIRE(r.circuit.circuit.mask == sc.mask);
  REQUIRE(r.circuit.circuit.pruned == sc.pruned);
  REQUIRE(r.circuit.faithfulness.has_value());
  const FaithfulnessResult& f = *r.circuit.faithfulness;
  REQUIRE(f.measured);
  REQUIRE(f.circuit.has_value());
  const Faithfulness fr =
      faithfulness(*model, g, ds.examples, sc.mask, MetricKind::kLogitDiff, false, 3, Intervention::kMean);
  REQUIRE(f.circuit->circuit == Approx(fr.circuit).margin(1e-6));
  REQUIRE(f.clean == Approx(fr.clean).margin(1e-6));
  REQUIRE(f.curve.size() == 2);
  REQUIRE(f.curve[1].top_n == 479);
  REQUIRE(f.curve[1].edges == g.n_edges());    // every edge: the clean run
  REQUIRE(f.curve[1].normalized == Approx(1.0).margin(1e-4));

  // The report the library assembles is the one the CLI writes with the same options.
  const std::string lib_text = attribute_report(r, spec, *model, model_dir, ds).dump(1) + "\n";
  std::string log;
  // The same thread count: libtorch's reductions split by thread, and so do their roundings.
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " -q --threads " + std::to_string(at::get_num_threads()) +
                                   " attribute " + model_dir + " --data " + data +
                                   " --ig-steps 3 --batch-size 3 --top-n 40 --intervention mean --sizes 25,479 --out " +
                                   tmp.path + "/cli.json",
                               log) == 0);
  std::ifstream in(tmp.path + "/cli.json");
  const std::string cli_text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(lib_text == cli_text);
  const nlohmann::json j = nlohmann::json::parse(lib_text);
  REQUIRE(j["schema_version"] == kReportSchemaVersion);
  REQUIRE(j["faithfulness"]["sizes"].size() == 2);
  REQUIRE(!j["faithfulness"].contains("sweep"));
}

TEST_CASE("warm_up_attribution leaves the model as it found it", "[pipeline]") {
  // score_edges calls it on CUDA only; here it runs on the CPU to check that a warm-up changes
  // nothing that the timed passes then compute.
  cs_test::TempDir tmp("pipeline_warmup");
  auto model = cs_test::load_model("hf-tiny/qwen2-tiny");
  const PairDataset ds = read_fixture_pairs(tmp.path, *model);
  REQUIRE(ds.examples.size() >= 2);
  AttributeSpec spec;
  spec.method = AttributionMethod::kEapIgInputs;
  spec.ig_steps = 3;
  spec.batch_size = 4;
  const Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  const EdgeScores before = score_edges(*model, g, ds.examples, spec);
  REQUIRE(before.warmup_seconds == 0.0);  // not on the CPU
  const double s = warm_up_attribution(*model, g, ds.examples.back(), spec);
  REQUIRE(s > 0.0);
  const EdgeScores after = score_edges(*model, g, ds.examples, spec);
  REQUIRE(after.scores == before.scores);  // bit for bit
  REQUIRE(after.metric_clean == before.metric_clean);
  REQUIRE(after.metric_corrupted == before.metric_corrupted);
  AttributeSpec bad = spec;
  bad.ig_steps = 0;
  CHECK_THROWS_AS(warm_up_attribution(*model, g, ds.examples.front(), bad), Error);
}

TEST_CASE("select_and_measure on scores summed over chunks, as a sweep's merge does", "[pipeline]") {
  cs_test::TempDir tmp("pipeline");
  auto model = cs_test::load_model("hf-tiny/qwen2-tiny");
  const PairDataset ds = read_fixture_pairs(tmp.path, *model);
  AttributeSpec spec;
  spec.method = AttributionMethod::kEap;
  spec.batch_size = 4;
  spec.selection.kind = SelectionKind::kThreshold;
  spec.selection.tau = 0.02;
  const Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  const EdgeScores all = score_edges(*model, g, ds.examples, spec);

  // Chunks of 1 and 3 examples, combined by example count.
  const std::vector<PairExample> a(ds.examples.begin(), ds.examples.begin() + 1), b(ds.examples.begin() + 1, ds.examples.end());
  const EdgeScores sa = score_edges(*model, g, a, spec), sb = score_edges(*model, g, b, spec);
  std::vector<double> merged(g.n_edges());
  for (int64_t e = 0; e < g.n_edges(); ++e) merged[e] = (1.0 * sa.scores[e] + 3.0 * sb.scores[e]) / 4.0;
  // float32 sums over batches of other shapes round differently; the error scales with the largest
  // scores (here about 2; measured max difference 4.4e-6), not with each edge's own.
  double max_abs = 0;
  for (double v : all.scores) max_abs = std::max(max_abs, std::abs(v));
  REQUIRE(max_abs > 0.5);
  for (int64_t e = 0; e < g.n_edges(); ++e) REQUIRE(merged[e] == Approx(all.scores[e]).margin(1e-5 * max_abs));

  const CircuitResult c_all = select_and_measure(*model, g, ds.examples, all.scores, spec);
  const CircuitResult c_merged = select_and_measure(*model, g, ds.examples, merged, spec);
  REQUIRE(c_all.circuit.selected > 0);
  REQUIRE(c_all.circuit.selected < g.n_edges());
  REQUIRE(c_merged.circuit.mask == c_all.circuit.mask);
  REQUIRE(c_merged.faithfulness->circuit->normalized ==
          Approx(c_all.faithfulness->circuit->normalized).margin(1e-9));

  // Without a selection or a curve nothing is measured, and the block says only the intervention.
  spec.selection = Selection{};
  const CircuitResult none = select_and_measure(*model, g, ds.examples, all.scores, spec);
  REQUIRE(!none.faithfulness.has_value());
  FaithfulnessResult unmeasured;
  unmeasured.intervention = Intervention::kMeanPositional;
  unmeasured.mean_source = MeanSource::kCorrupted;
  REQUIRE(faithfulness_json(unmeasured) ==
          nlohmann::json({{"intervention", "mean-positional"}, {"mean_source", "corrupted"}}));
}
