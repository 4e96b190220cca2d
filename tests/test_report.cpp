// Reports: the sections built from scores and a circuit (checked by hand on a small graph), and
// real reports written by the CLI validated against schemas/report.schema.json (and broken ones
// rejected, so the validation can fail).
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "circuitscope/circuit.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/report.hpp"
#include "json_schema_lite.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
const char* kReportPairs =
    "{\"clean_ids\": [5, 17, 300, 42, 7, 99, 256, 3], \"corrupted_ids\": [5, 17, 301, 42, 7, 12, 256, 3], "
    "\"answer_id\": 300, \"wrong_id\": 301}\n"
    "{\"clean_ids\": [11, 400, 23, 8, 77, 150], \"corrupted_ids\": [11, 402, 23, 8, 90, 150], \"answer_id\": 400, "
    "\"wrong_id\": 402}\n"
    "{\"clean_ids\": [9, 9, 31, 200], \"corrupted_ids\": [9, 8, 31, 200], \"answer_id\": 31, \"wrong_id\": 30}\n";


nlohmann::json schema() {
  std::ifstream f(cs_test::data_dir() + "/../../schemas/report.schema.json");
  REQUIRE(f.good());
  nlohmann::json s;
  f >> s;
  return s;
}

std::vector<std::string> problems(const nlohmann::json& report) {
  std::vector<std::string> errors;
  cs_test::validate_schema(report, schema(), "$", errors);
  return errors;
}

bool mentions(const std::vector<std::string>& errors, const std::string& what) {
  for (const auto& e : errors)
    if (e.find(what) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST_CASE("report sections: nodes - heads and circuit block on a hand-made circuit", "[report]") {
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  std::vector<double> s(g.n_edges(), 0.0);
  auto set = [&](const char* name, double v) { s[*g.find_edge(name)] = v; };
  set("input->a0.h0<q>", 2.0);
  set("a0.h0->m1", -3.0);
  set("m1->logits", 1.0);
  set("a0.h1->logits", 0.5);  // outside the circuit (a0.h1 has no input): only counts without one
  set("a0.h0->logits", 1.0);
  Selection sel;
  sel.kind = SelectionKind::kTopN;
  sel.n = 5;
  const SelectedCircuit c = select_circuit(g, s, sel);
  REQUIRE(c.selected == 5);
  REQUIRE(c.pruned == 1);  // a0.h1->logits
  nlohmann::json j;
  set_circuit_sections(j, g, s, sel, c);
  REQUIRE(j["edges"].size() == static_cast<size_t>(g.n_edges()));
  REQUIRE(j["edges"]["a0.h0->m1"]["score"] == -3.0);
  REQUIRE(j["edges"]["a0.h0->m1"]["in_graph"] == true);
  REQUIRE(j["edges"]["a0.h1->logits"]["in_graph"] == false);
  REQUIRE(j["nodes"].size() == 1 + 4 + 2 + 1);
  for (const char* n : {"input", "a0.h0", "m1", "logits"}) REQUIRE(j["nodes"][n]["in_graph"] == true);
  for (const char* n : {"a0.h1", "a1.h0", "a1.h1", "m0"}) REQUIRE(j["nodes"][n]["in_graph"] == false);
  // Only a0.h0 leaves edges in the circuit: |-3| + |1| = 4 of 4.
  REQUIRE(j["heads"].size() == 4);
  REQUIRE(j["heads"][0] == nlohmann::json({{"layer", 0}, {"head", 0}, {"importance", 1.0}, {"in_circuit", true}}));
  REQUIRE(j["heads"][1]["importance"] == 0.0);
  REQUIRE(j["circuit"] == nlohmann::json({{"selection", "top-n"},
                                          {"absolute", true},
                                          {"top_n", 5},
                                          {"selected", 5},
                                          {"pruned", 1},
                                          {"edges", 4},
                                          {"nodes", 4}}));
  // Without a circuit: no block, nothing in the graph, importance over every edge: a0.h0 4, a0.h1 0.5.
  Selection none;
  set_circuit_sections(j, g, s, none, select_circuit(g, s, none));
  REQUIRE(!j.contains("circuit"));
  REQUIRE(j["heads"][0]["importance"].get<double>() == Approx(4.0 / 4.5));
  REQUIRE(j["heads"][1]["importance"].get<double>() == Approx(0.5 / 4.5));
  REQUIRE(j["heads"][1]["in_circuit"] == false);
  REQUIRE(j["nodes"]["logits"]["in_graph"] == false);
  // Node scores when a node-level method gives them.
  std::vector<double> ns(g.n_upstream(), 0.25);
  set_circuit_sections(j, g, s, sel, c, &ns);
  REQUIRE(j["nodes"]["m0"]["score"] == 0.25);
  REQUIRE(!j["nodes"]["logits"].contains("score"));

  // Reading back: the same scores and circuit; errors name the key or the edge.
  j["schema_version"] = 1;
  j["model"] = {{"n_layers", 2}, {"n_heads", 2}, {"n_kv_heads", 1}};
  j["method"] = {{"kv_edges", "per-query-head"}};
  const ReportEdges r = report_edges(j, "r.json");
  REQUIRE(r.scores == s);
  REQUIRE(r.in_graph == c.mask);
  REQUIRE(r.has_circuit);
  nlohmann::json bad = j;
  bad["edges"].erase("m1->logits");
  REQUIRE_THROWS_WITH(report_edges(bad, "r.json"), Catch::Contains("r.json: edge 'm1->logits'"));
  bad = j;
  bad["edges"]["m1->a0.h0<q>"] = {{"score", 1.0}};
  REQUIRE_THROWS_WITH(report_edges(bad, "r.json"), Catch::Contains("'m1->a0.h0<q>' is not an edge"));
  bad = j;
  bad["model"].erase("n_heads");
  REQUIRE_THROWS_WITH(report_edges(bad, "r.json"), Catch::Contains("missing key 'model.n_heads'"));
}

TEST_CASE("the schema validator rejects what it should", "[report][schema]") {
  const nlohmann::json s = nlohmann::json::parse(R"({"type": "object", "required": ["a"], "additionalProperties": false,
    "properties": {"a": {"type": "integer", "minimum": 1}, "b": {"type": "array", "items": {"enum": ["x", "y"]}}}})");
  std::vector<std::string> e;
  REQUIRE(cs_test::validate_schema(nlohmann::json::parse(R"({"a": 2, "b": ["x", "y"]})"), s, "$", e));
  REQUIRE(!cs_test::validate_schema(nlohmann::json::parse(R"({"a": 0})"), s, "$", e));
  REQUIRE(mentions(e, "$.a: 0 < minimum 1"));
  REQUIRE(!cs_test::validate_schema(nlohmann::json::parse(R"({"a": 1.5})"), s, "$", e));
  REQUIRE(!cs_test::validate_schema(nlohmann::json::parse(R"({"b": []})"), s, "$", e));
  REQUIRE(mentions(e, "missing required key 'a'"));
  REQUIRE(!cs_test::validate_schema(nlohmann::json::parse(R"({"a": 1, "c": 1})"), s, "$", e));
  REQUIRE(mentions(e, "$.c: key not allowed"));
  REQUIRE(!cs_test::validate_schema(nlohmann::json::parse(R"({"a": 1, "b": ["z"]})"), s, "$", e));
  REQUIRE(mentions(e, "$.b[0]"));
  REQUIRE(!cs_test::validate_schema(nlohmann::json(1), nlohmann::json::parse(R"({"pattern": "x"})"), "$", e));
}

TEST_CASE("reports written by attribute validate against the schema - broken ones do not", "[report][schema][cli]") {
  cs_test::TempDir tmp("report");
  const std::string data = tmp.path + "/p.jsonl";
  std::ofstream(data) << kReportPairs;
  const std::string base = cs_test::binary_path() + " attribute " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --data " +
                           data + " --method eap --batch-size 2 --out " + tmp.path + "/r.json ";
  std::string log;
  nlohmann::json j;

  // No circuit: heads and nodes still present, nothing in the graph.
  REQUIRE(cs_test::run_command(base, log) == 0);
  std::ifstream(tmp.path + "/r.json") >> j;
  INFO(j.dump().substr(0, 400));
  REQUIRE(problems(j).empty());
  REQUIRE(!j.contains("circuit"));
  REQUIRE(!j.contains("faithfulness"));
  REQUIRE(j["heads"].size() == 16);
  REQUIRE(j["nodes"].size() == 1 + 16 + 4 + 1);
  for (const auto& [n, v] : j["nodes"].items()) REQUIRE(v["in_graph"] == false);

  // A circuit, a faithfulness curve, a mean intervention.
  REQUIRE(cs_test::run_command(base + "--top-n 40 --sizes 40,479 --intervention mean", log) == 0);
  std::ifstream(tmp.path + "/r.json") >> j;
  const auto errs = problems(j);
  for (const auto& e : errs) UNSCOPED_INFO(e);
  REQUIRE(errs.empty());
  REQUIRE(j["faithfulness"]["intervention"] == "mean");
  REQUIRE(j["faithfulness"]["mean_source"] == "clean");
  REQUIRE(j["faithfulness"]["sizes"].size() == 2);
  // The curve's top 40 is the report's circuit; all 479 edges are the clean run.
  REQUIRE(j["faithfulness"]["sizes"][0]["edges"] == j["circuit"]["edges"]);
  REQUIRE(j["faithfulness"]["sizes"][0]["circuit"].get<double>() ==
          Approx(j["faithfulness"]["circuit"].get<double>()).margin(1e-6));
  REQUIRE(j["faithfulness"]["sizes"][1]["normalized"].get<double>() == Approx(1.0).margin(1e-4));
  // Node in_graph agrees with the edges: every endpoint owner of an in-graph edge is in the graph.
  int64_t in_nodes = 0;
  for (const auto& [n, v] : j["nodes"].items()) in_nodes += v["in_graph"].get<bool>();
  REQUIRE(in_nodes == j["circuit"]["nodes"].get<int64_t>());
  for (const auto& [name, e] : j["edges"].items()) {
    if (!e["in_graph"].get<bool>()) continue;
    const std::string up = name.substr(0, name.find("->"));
    REQUIRE(j["nodes"][up]["in_graph"] == true);
  }

  // Broken copies fail, naming the place.
  struct Broken {
    std::function<void(nlohmann::json&)> edit;
    const char* expect;
  };
  const Broken broken[] = {
      {[](nlohmann::json& r) { r.erase("heads"); }, "missing required key 'heads'"},
      {[](nlohmann::json& r) { r["edges"]["input->m0"]["score"] = "big"; }, "$.edges.input->m0.score"},
      {[](nlohmann::json& r) { r["edges"]["input->m0"].erase("in_graph"); }, "missing required key 'in_graph'"},
      {[](nlohmann::json& r) { r["extra"] = 1; }, "$.extra: key not allowed"},
      {[](nlohmann::json& r) { r["dataset"]["examples"] = 0; }, "$.dataset.examples: 0 < minimum 1"},
      {[](nlohmann::json& r) { r["method"]["kv_edges"] = "per-group"; }, "$.method.kv_edges"},
      {[](nlohmann::json& r) { r["heads"][3]["importance"] = -0.5; }, "$.heads[3].importance"},
      {[](nlohmann::json& r) { r["circuit"]["selection"] = "random"; }, "$.circuit.selection"},
      {[](nlohmann::json& r) { r["faithfulness"]["sizes"][0].erase("top_n"); }, "$.faithfulness.sizes[0]"},
      {[](nlohmann::json& r) { r["nodes"]["m0"]["in_graph"] = 1; }, "$.nodes.m0.in_graph"},
  };
  for (const Broken& b : broken) {
    INFO(b.expect);
    nlohmann::json r = j;
    b.edit(r);
    const auto e = problems(r);
    REQUIRE(!e.empty());
    REQUIRE(mentions(e, b.expect));
  }
}

TEST_CASE("attribute --level node: node scores in the report - circuit between the top nodes", "[report][cli]") {
  cs_test::TempDir tmp("report");
  const std::string data = tmp.path + "/p.jsonl";
  std::ofstream(data) << kReportPairs;
  std::string log;
  const int rc = cs_test::run_command(cs_test::binary_path() + " attribute " + cs_test::data_dir() +
                                          "/hf-tiny/qwen2-tiny --data " + data + " --method eap --level node --top-n 3 --out " +
                                          tmp.path + "/n.json",
                                      log);
  INFO(log);
  REQUIRE(rc == 0);
  nlohmann::json j;
  std::ifstream(tmp.path + "/n.json") >> j;
  REQUIRE(problems(j).empty());
  REQUIRE(j["circuit"]["level"] == "node");
  // Node scores are the sums of the reported outgoing edge scores.
  std::map<std::string, double> sums;
  for (const auto& [name, e] : j["edges"].items()) sums[name.substr(0, name.find("->"))] += e["score"].get<double>();
  for (const auto& [n, s] : sums) REQUIRE(j["nodes"][n]["score"].get<double>() == Approx(s).margin(1e-6));
  // At most 3 heads/MLPs in the graph.
  int64_t in = 0;
  for (const auto& [n, v] : j["nodes"].items())
    if (n != "input" && n != "logits") in += v["in_graph"].get<bool>();
  REQUIRE(in <= 3);
  REQUIRE(in >= 1);
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " attribute " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --data " +
                                   data + " --method eap --level node --greedy 3 --out " + tmp.path + "/x.json",
                               log) == 2);
}

TEST_CASE("circuit options that conflict are usage errors", "[report][cli]") {
  cs_test::TempDir tmp("report");
  const std::string data = tmp.path + "/p.jsonl";
  std::ofstream(data) << kReportPairs;
  const std::string base = cs_test::binary_path() + " attribute " + cs_test::data_dir() + "/hf-tiny/qwen2-tiny --data " +
                           data + " --method eap --out " + tmp.path + "/x.json ";
  std::string log;
  for (const char* bad : {"--simplify 0.1", "--top-n 5 --greedy 5", "--threshold 0.1 --top-n 3", "--selection sparks",
                          "--level nodes --top-n 3", "--sizes 10,x", "--sizes -5", "--sweep 10 --sizes 10", "--intervention mean --mean-source both",
                          "--greedy -2", "--top-n -1"}) {
    INFO(bad);
    REQUIRE(cs_test::run_command(base + bad, log) == 2);
  }
  REQUIRE(cs_test::run_command(base + "--simplify 0.1", log) == 2);
  REQUIRE(log.find("--simplify TAU needs --top-n") != std::string::npos);
}
