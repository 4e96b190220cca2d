// The evaluate and graph commands: evaluate reproduces attribute's faithfulness and validates,
// refuses reports that do not fit; graph writes the DOT lines expected for a hand-made report.
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "circuitscope/graph.hpp"
#include "json_schema_lite.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
const char* kEvalPairs =
    "{\"clean_ids\": [5, 17, 300, 42, 7, 99, 256, 3], \"corrupted_ids\": [5, 17, 301, 42, 7, 12, 256, 3], "
    "\"answer_id\": 300, \"wrong_id\": 301}\n"
    "{\"clean_ids\": [9, 9, 31, 200], \"corrupted_ids\": [9, 8, 31, 200], \"answer_id\": 31, \"wrong_id\": 30}\n";
}  // namespace

TEST_CASE("evaluate: the report's circuit gives attribute's faithfulness - size curves - errors", "[evaluate][cli]") {
  cs_test::TempDir tmp("evalgraph");
  const std::string bin = cs_test::binary_path(), model = cs_test::data_dir() + "/hf-tiny/qwen2-tiny";
  const std::string data = tmp.path + "/p.jsonl";
  std::ofstream(data) << kEvalPairs;
  std::string log;
  REQUIRE(cs_test::run_command(bin + " attribute " + model + " --data " + data +
                                   " --method eap --greedy 30 --intervention zero --out " + tmp.path + "/r.json",
                               log) == 0);
  const nlohmann::json r = cs_test::read_json_file(tmp.path + "/r.json");
  REQUIRE(r["circuit"]["selection"] == "greedy");
  REQUIRE(r["circuit"]["greedy"] == 30);
  const std::string eval = bin + " evaluate " + model + " " + tmp.path + "/r.json --data " + data + " ";
  int rc = cs_test::run_command(eval + "--intervention zero --sizes 479,0 --out " + tmp.path + "/e.json", log);
  INFO(log);
  REQUIRE(rc == 0);
  const nlohmann::json e = cs_test::read_json_file(tmp.path + "/e.json");
  std::vector<std::string> errors;
  std::ifstream sf(cs_test::data_dir() + "/../../schemas/report.schema.json");
  nlohmann::json schema;
  sf >> schema;
  REQUIRE(cs_test::validate_schema(e, schema, "$", errors));
  REQUIRE(e["faithfulness"]["circuit"].get<double>() == Approx(r["faithfulness"]["circuit"].get<double>()).margin(1e-6));
  REQUIRE(e["faithfulness"]["dataset"]["examples"] == 2);
  REQUIRE(e["edges"] == r["edges"]);  // the circuit is the report's
  // All edges = clean; no edge under zero ablation is not the corrupted run.
  REQUIRE(e["faithfulness"]["sizes"][0]["normalized"].get<double>() == Approx(1.0).margin(1e-4));
  REQUIRE(e["faithfulness"]["sizes"][1]["edges"] == 0);
  // --sweep, the old spelling of --sizes: the same report, and a warning that names the new one.
  REQUIRE(cs_test::run_command(eval + "--intervention zero --sweep 479,0 --out " + tmp.path + "/e_old.json", log) == 0);
  REQUIRE(log.find("--sweep is deprecated") != std::string::npos);
  REQUIRE(log.find("use --sizes") != std::string::npos);
  REQUIRE(cs_test::read_json_file(tmp.path + "/e_old.json") == e);
  // A new selection from the report's scores replaces the circuit block.
  REQUIRE(cs_test::run_command(eval + "--top-n 479 --out " + tmp.path + "/e2.json", log) == 0);
  const nlohmann::json e2 = cs_test::read_json_file(tmp.path + "/e2.json");
  REQUIRE(e2["circuit"]["selection"] == "top-n");
  REQUIRE(e2["faithfulness"]["normalized"].get<double>() == Approx(1.0).margin(1e-4));

  // The same from a config (the positional report too), with the command line overriding --top-n.
  std::ofstream(tmp.path + "/eval.json") << "{\"report\": \"" << tmp.path << "/r.json\", \"data\": \"" << data
                                         << "\", \"top_n\": 5, // comment\n \"out\": \"" << tmp.path << "/e3.json\"}";
  REQUIRE(cs_test::run_command(bin + " evaluate " + model + " --config " + tmp.path + "/eval.json --top-n 479", log) == 0);
  REQUIRE(cs_test::read_json_file(tmp.path + "/e3.json")["faithfulness"] == e2["faithfulness"]);

  // Errors: another model's dims (7), a report without circuit and nothing to do (2), a broken report (4).
  rc = cs_test::run_command(bin + " evaluate " + cs_test::data_dir() + "/hf-tiny/llama-tiny " + tmp.path +
                                "/r.json --data " + data,
                            log);
  REQUIRE(rc == 7);
  REQUIRE(log.find("r.json: the report's graph") != std::string::npos);
  REQUIRE(cs_test::run_command(bin + " attribute " + model + " --data " + data + " --method eap --out " + tmp.path +
                                   "/plain.json",
                               log) == 0);
  REQUIRE(cs_test::run_command(bin + " evaluate " + model + " " + tmp.path + "/plain.json --data " + data, log) == 2);
  nlohmann::json broken = r;
  broken["edges"].erase("m2->a3.h1<k>");
  std::ofstream(tmp.path + "/broken.json") << broken.dump();
  rc = cs_test::run_command(bin + " evaluate " + model + " " + tmp.path + "/broken.json --data " + data, log);
  REQUIRE(rc == 4);
  REQUIRE(log.find("edge 'm2->a3.h1<k>'") != std::string::npos);
}

TEST_CASE("graph: DOT of a hand-made circuit, and SVG, PNG and PDF from Graphviz's library", "[graph][cli]") {
  cs_test::TempDir tmp("evalgraph");
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  nlohmann::json r;
  r["schema_version"] = 1;
  r["model"] = {{"n_layers", 2}, {"n_heads", 2}, {"n_kv_heads", 1}};
  r["method"] = {{"kv_edges", "per-query-head"}};
  for (int64_t e = 0; e < g.n_edges(); ++e) r["edges"][g.edge_name(e)] = {{"score", 0.01}, {"in_graph", false}};
  const std::map<std::string, double> circuit = {
      {"input->a0.h1<k>", 0.5}, {"a0.h1->m1", -2.0}, {"m1->logits", 1.0}, {"a0.h1->a1.h0<v>", 0.25}, {"a1.h0->logits", 0.5}};
  for (const auto& [n, s] : circuit) r["edges"][n] = {{"score", s}, {"in_graph", true}};
  const std::string report = tmp.path + "/hand.json";
  std::ofstream(report) << r.dump();
  std::string log;
  int rc = cs_test::run_command(cs_test::binary_path() + " graph " + report + " --out " + tmp.path + "/c.dot", log);
  INFO(log);
  REQUIRE(rc == 0);
  std::ifstream f(tmp.path + "/c.dot");
  std::string line;
  std::set<std::string> nodes;
  std::map<std::string, std::string> edges;  // tooltip edge name -> attributes
  const std::regex node_re(R"re("([^"]+)" \[fillcolor=)re");
  const std::regex edge_re(R"re(^  "([^"]+)" -> "([^"]+)" \[color="(#[0-9a-f]+)", style=(\w+), penwidth=([0-9.]+), tooltip="(\S+) (\S+)"\];$)re");
  std::smatch m;
  bool header = false;
  std::set<std::string> clusters;
  while (std::getline(f, line)) {
    header = header || line == "digraph circuit {";
    if (line.rfind("  { rank=same; \"_layer", 0) == 0) clusters.insert(line.substr(16, line.find('"', 16) - 16));
    if (std::regex_search(line, m, edge_re)) {
      edges[m[6]] = std::string(m[1]) + "|" + std::string(m[2]) + "|" + std::string(m[3]) + "|" + std::string(m[4]) + "|" +
                    std::string(m[5]) + "|" + std::string(m[7]);
    } else {
      for (auto it = std::sregex_iterator(line.begin(), line.end(), node_re); it != std::sregex_iterator(); ++it)
        nodes.insert((*it)[1]);
    }
  }
  REQUIRE(header);
  REQUIRE(nodes == std::set<std::string>{"input", "a0.h1", "a1.h0", "m1", "logits"});
  REQUIRE(edges.size() == 5);
  // Nodes grouped by layer; colour by sign (red +, blue -), style by the input entered (k dashed,
  // v dotted), pen width 0.8 + 4.2|s|/max|s| (max 2).
  REQUIRE(clusters == std::set<std::string>{"_layer0", "_layer1"});  // a labelled row per layer, in order
  REQUIRE(edges["input->a0.h1<k>"] == "input|a0.h1|#b2182b|dashed|1.85|0.5");
  REQUIRE(edges["a0.h1->m1"] == "a0.h1|m1|#2166ac|solid|5|-2");
  REQUIRE(edges["m1->logits"] == "m1|logits|#b2182b|solid|2.9|1");
  REQUIRE(edges["a0.h1->a1.h0<v>"] == "a0.h1|a1.h0|#b2182b|dotted|1.325|0.25");
  REQUIRE(edges["a1.h0->logits"] == "a1.h0|logits|#b2182b|solid|1.85|0.5");

  // SVG, PNG and PDF, laid out and rendered in-process (no `dot` program involved: PATH is empty).
  const std::map<std::string, std::string> magic = {{"svg", "<?xml"}, {"png", "\x89PNG"}, {"pdf", "%PDF"}};
  for (const auto& [ext, head] : magic) {
    rc = cs_test::run_command("PATH= " + cs_test::binary_path() + " graph " + report + " --out " + tmp.path + "/c." + ext, log);
    REQUIRE(rc == 0);
    std::ifstream in(tmp.path + "/c." + ext, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    REQUIRE(s.str().rfind(head, 0) == 0);
    if (ext == "svg") {
      REQUIRE(s.str().find("<title>a0.h1</title>") != std::string::npos);  // Graphviz names each node
      REQUIRE(s.str().find("layer 1") != std::string::npos);               // the layer clusters' labels
    }
  }
  // No circuit: an error naming the report.
  for (auto& [n, e] : r["edges"].items()) e["in_graph"] = false;
  std::ofstream(tmp.path + "/none.json") << r.dump();
  rc = cs_test::run_command(cs_test::binary_path() + " graph " + tmp.path + "/none.json --out " + tmp.path + "/n.dot", log);
  REQUIRE(rc == 7);
  REQUIRE(log.find("none.json: no edge has in_graph") != std::string::npos);
}
