// Pair datasets (JSONL token form), batching with right padding, and the `attribute` command.
#include <c10/core/GradMode.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/dataset.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/model.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
const char* kGoodPairs =
    "{\"clean_ids\": [5, 17, 300, 42, 7, 99, 256, 3], \"corrupted_ids\": [5, 17, 301, 42, 7, 12, 256, 3], "
    "\"answer_id\": 300, \"wrong_id\": 301}\n"
    "\n"
    "{\"clean_ids\": [11, 400, 23, 8, 77, 150], \"corrupted_ids\": [11, 402, 23, 8, 90, 150], \"answer_id\": 400, "
    "\"wrong_id\": 402}\n"
    "{\"clean_ids\": [9, 9, 31, 200], \"corrupted_ids\": [9, 8, 31, 200], \"answer_id\": 31, \"wrong_id\": 30}\n";

}  // namespace

TEST_CASE("pair datasets: good lines - blank lines - bad lines with their line numbers", "[attribution][dataset]") {
  cs_test::TempDir tmp("attr");
  PairReadOptions ro;
  ro.vocab_size = 512;
  PairDataset ds = read_pairs_jsonl(cs_test::write_file(tmp.path, "good.jsonl", kGoodPairs), ro);
  REQUIRE(ds.examples.size() == 3);
  REQUIRE(ds.skipped == 0);
  REQUIRE(ds.examples[1].line == 3);  // the blank line is counted, not used
  REQUIRE(ds.examples[1].corrupted_ids == std::vector<int64_t>{11, 402, 23, 8, 90, 150});
  REQUIRE(ds.examples[2].wrong_id == 30);

  struct Bad {
    const char* line;
    const char* reason;
  };
  const Bad bad[] = {
      {"{\"clean_ids\": [1, 2", "malformed JSON"},
      {"[1, 2]", "expected a JSON object"},
      {"{\"corrupted_ids\": [1], \"answer_id\": 1, \"wrong_id\": 2}", "missing key 'clean_ids'"},
      {"{\"clean_ids\": [1, 2], \"corrupted_ids\": [1], \"answer_id\": 3, \"wrong_id\": 3}", "the same token 3"},
      {"{\"clean_ids\": [1, 512], \"corrupted_ids\": [1, 2], \"answer_id\": 1, \"wrong_id\": 2}", "'clean_ids'[1] = 512"},
      {"{\"clean_ids\": [1, 2.5], \"corrupted_ids\": [1, 2], \"answer_id\": 1, \"wrong_id\": 2}", "'clean_ids'[1] is not an integer"},
      {"{\"clean_ids\": [], \"corrupted_ids\": [], \"answer_id\": 1, \"wrong_id\": 2}", "non-empty array"},
      {"{\"clean_ids\": [1], \"corrupted_ids\": [2], \"answer_id\": 1}", "missing key 'wrong_id'"},
      {"{\"clean_ids\": [1], \"corrupted_ids\": [2], \"answer_id\": -1, \"wrong_id\": 2}", "'answer_id' = -1"},
  };
  for (const Bad& b : bad) {
    INFO(b.line);
    const std::string path = cs_test::write_file(tmp.path, "bad.jsonl", std::string(kGoodPairs) + b.line + "\n");
    try {
      read_pairs_jsonl(path, ro);
      FAIL("no error");
    } catch (const Error& e) {
      INFO(e.what());
      REQUIRE(e.code() == ErrorCode::kInput);
      REQUIRE(std::string(e.what()).find(path + ":5: ") != std::string::npos);
      REQUIRE(std::string(e.what()).find(b.reason) != std::string::npos);
    }
    PairReadOptions skip = ro;
    skip.skip_bad = true;
    PairDataset s = read_pairs_jsonl(path, skip);
    REQUIRE(s.examples.size() == 3);
    REQUIRE(s.skipped == 1);
  }
  // kl needs no answer.
  PairReadOptions kl = ro;
  kl.require_answer = false;
  REQUIRE(read_pairs_jsonl(cs_test::write_file(tmp.path, "kl.jsonl", "{\"clean_ids\": [1], \"corrupted_ids\": [2]}\n"), kl)
              .examples[0]
              .answer_id == -1);
  REQUIRE_THROWS_AS(read_pairs_jsonl(tmp.path + "/missing.jsonl", ro), Error);
}

TEST_CASE("batched - right-padded attribution equals pair-by-pair attribution", "[attribution]") {
  cs_test::TempDir tmp("attr");
  auto m = HookedTransformer::from_pretrained(cs_test::data_dir() + "/hf-tiny/qwen2-tiny");
  PairReadOptions ro;
  ro.vocab_size = m->config().vocab_size;
  const PairDataset ds = read_pairs_jsonl(cs_test::write_file(tmp.path, "p.jsonl", kGoodPairs), ro);
  Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  for (int steps : {0, 3}) {
    EapOptions o;
    o.ig_steps = steps;
    EapResult one = eap_scores(*m, g, ds.examples, o, 1);  // no padding at all
    EapResult all = eap_scores(*m, g, ds.examples, o, 3);  // two of three rows padded
    const double scale = one.scores.abs().max().item<double>();
    cs_test::require_close(all.scores, one.scores, 1e-5 * scale, 1e-4, "batched vs one by one");
    REQUIRE(all.metric_clean == Approx(one.metric_clean).epsilon(1e-5));
    REQUIRE(all.metric_corrupted == Approx(one.metric_corrupted).epsilon(1e-5));
    REQUIRE(all.n_examples == 3);
  }
}

TEST_CASE("attribute command writes a report with every edge", "[attribution][cli]") {
  cs_test::TempDir tmp("attr");
  const std::string bin = cs_test::binary_path();
  const std::string model = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  const std::string data = cs_test::write_file(tmp.path, "p.jsonl", kGoodPairs);
  const std::string out = tmp.path + "/report.json";
  std::string log;
  int rc = cs_test::run_command(bin + " attribute " + model + " --data " + data +
                                    " --method eap-ig-inputs --ig-steps 3 --metric logit-diff --batch-size 2 --out " + out,
                                log);
  INFO(log);
  REQUIRE(rc == 0);
  nlohmann::json j;
  std::ifstream(out) >> j;
  REQUIRE(j["schema_version"] == 2);
  REQUIRE(j["edges"].size() == 479);  // qwen2-tiny per query head, see the graph tests
  REQUIRE(j["dataset"]["examples"] == 3);
  REQUIRE(j["method"]["ig_steps"] == 3);
  REQUIRE(j["method"]["kv_edges"] == "per-query-head");
  REQUIRE(j["model"]["n_kv_heads"] == 2);

  // The same numbers as the library on the same pairs.
  auto m = HookedTransformer::from_pretrained(model);
  PairReadOptions ro;
  ro.vocab_size = 512;
  Graph g({4, 4, 2, KvEdges::kPerQueryHead});
  EapOptions o;
  o.ig_steps = 3;
  EapResult r = eap_scores(*m, g, read_pairs_jsonl(data, ro).examples, o, 2);
  REQUIRE(j["baselines"]["clean"].get<double>() == Approx(r.metric_clean).epsilon(1e-6));
  REQUIRE(j["baselines"]["corrupted"].get<double>() == Approx(r.metric_corrupted).epsilon(1e-6));
  for (const char* e : {"a0.h1->a2.h3<q>", "input->m0", "m3->logits", "a1.h2->a3.h1<k>", "m0->a2.h0<v>"}) {
    INFO(e);
    auto [u, d] = g.edge_nodes(*g.find_edge(e));
    REQUIRE(j["edges"][e]["score"].get<double>() == Approx(r.scores[u][d].item<double>()).margin(1e-7).epsilon(1e-5));
  }

  // A bad line stops the run with the input exit code and names the line; --skip-bad goes on.
  const std::string bad = cs_test::write_file(tmp.path, "bad.jsonl", std::string(kGoodPairs) + "{\"clean_ids\": [1]}\n");
  rc = cs_test::run_command(bin + " attribute " + model + " --data " + bad + " --out " + tmp.path + "/r2.json", log);
  REQUIRE(rc == 7);
  REQUIRE(log.find("bad.jsonl:5:") != std::string::npos);
  rc = cs_test::run_command(bin + " attribute " + model + " --data " + bad + " --method eap --skip-bad --out " + tmp.path +
                                "/r3.json",
                            log);
  REQUIRE(rc == 0);
  std::ifstream(tmp.path + "/r3.json") >> j;
  REQUIRE(j["dataset"]["skipped"] == 1);
  REQUIRE(j["method"]["ig_steps"] == 0);
  rc = cs_test::run_command(bin + " attribute " + model + " --data " + data + " --method eap-ig-activations --ig-steps 2 --out " +
                                tmp.path + "/r4.json",
                            log);
  REQUIRE(rc == 0);
  std::ifstream(tmp.path + "/r4.json") >> j;
  REQUIRE(j["method"]["name"] == "eap-ig-activations");
  rc = cs_test::run_command(bin + " attribute " + model + " --data " + data + " --method eap-ig-everything --out " +
                                tmp.path + "/r5.json",
                            log);
  REQUIRE(rc == 2);
}

TEST_CASE("attribute command: circuit selection - faithfulness and head importance", "[attribution][cli]") {
  cs_test::TempDir tmp("attr");
  const std::string bin = cs_test::binary_path();
  const std::string model = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  const std::string data = cs_test::write_file(tmp.path, "p.jsonl", kGoodPairs);
  const std::string base = bin + " attribute " + model + " --data " + data + " --method eap --out " + tmp.path + "/r.json ";
  std::string log;
  nlohmann::json j;

  REQUIRE(cs_test::run_command(base + "--top-n 479", log) == 0);  // every edge
  std::ifstream(tmp.path + "/r.json") >> j;
  REQUIRE(j["circuit"]["pruned"] == 0);
  REQUIRE(j["circuit"]["edges"] == 479);
  REQUIRE(j["faithfulness"]["normalized"].get<double>() == Approx(1.0).margin(1e-4));
  REQUIRE(j["faithfulness"]["circuit"].get<double>() == Approx(j["baselines"]["clean"].get<double>()).margin(1e-5));
  double total = 0;
  for (const auto& h : j["heads"]) total += h["importance"].get<double>();
  REQUIRE(total == Approx(1.0).margin(1e-9));
  REQUIRE(j["heads"].size() == 16);
  REQUIRE(j["edges"]["a0.h1->a2.h3<q>"]["in_graph"] == true);

  REQUIRE(cs_test::run_command(base + "--top-n 0", log) == 0);
  std::ifstream(tmp.path + "/r.json") >> j;
  REQUIRE(j["faithfulness"]["normalized"].get<double>() == Approx(0.0).margin(1e-4));
  for (const auto& h : j["heads"]) REQUIRE(h["in_circuit"] == false);

  REQUIRE(cs_test::run_command(base + "--top-n 40", log) == 0);
  std::ifstream(tmp.path + "/r.json") >> j;
  int64_t in = 0;
  for (const auto& [name, e] : j["edges"].items()) in += e["in_graph"].get<bool>();
  REQUIRE(in == j["circuit"]["edges"].get<int64_t>());
  REQUIRE(j["circuit"]["selected"] == 40);
  const double f = j["faithfulness"]["normalized"].get<double>();
  REQUIRE(std::isfinite(f));

  REQUIRE(cs_test::run_command(base + "--top-n 5 --threshold 0.1", log) == 2);
  REQUIRE(cs_test::run_command(base + "--top-n 479 --intervention zero", log) == 0);
  std::ifstream(tmp.path + "/r.json") >> j;
  REQUIRE(j["faithfulness"]["intervention"] == "zero");
  REQUIRE(j["faithfulness"]["normalized"].get<double>() == Approx(1.0).margin(1e-4));
  REQUIRE(cs_test::run_command(base + "--top-n 40 --intervention median", log) == 2);
  REQUIRE(cs_test::run_command(bin + " attribute " + model + " --data " + data + " --method clean-corrupted --out " +
                                   tmp.path + "/cc.json",
                               log) == 0);
  std::ifstream(tmp.path + "/cc.json") >> j;
  REQUIRE(j["method"]["name"] == "clean-corrupted");
  REQUIRE(j["method"]["ig_steps"] == 0);
}

TEST_CASE("bench attribute runs and prints its numbers", "[attribution][cli]") {
  std::string log;
  const int rc = cs_test::run_command(cs_test::binary_path() +
                                          " bench attribute --layers 2 --d-model 64 --heads 4 --kv-heads 2 --seq 8 "
                                          "--batch 2 --ig-steps 2 --vocab 100 --iters 1",
                                      log);
  INFO(log);
  REQUIRE(rc == 0);
  REQUIRE(log.find("EAP-IG(2)") != std::string::npos);
  REQUIRE(log.find("ratio to 2 x floor") != std::string::npos);
  REQUIRE(log.find("edges=") != std::string::npos);
}
