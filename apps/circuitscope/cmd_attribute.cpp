// circuitscope attribute MODEL_DIR --data pairs.jsonl --method eap|eap-ig-inputs|clean-corrupted [--ig-steps 5]
//     [--metric logit-diff|prob-diff|kl] [--loss] [--kv-edges per-query-head|per-kv-head]
//     [--top-n N | --threshold T | --greedy N | --top-n N --simplify T | --selection thinking-sparks]
//     [--intervention patch|zero|mean|mean-positional] [--sweep 100,300] [--config FILE] --out report.json
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "progress.hpp"
#include "circuit_options.hpp"
#include "circuitscope/circuit.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"
#include "dataset_options.hpp"

namespace circuitscope::app {
namespace {

struct AttributeOptions {
  CommonModelOptions model;
  DatasetOptions dataset;
  std::string method = "eap-ig-inputs";
  int ig_steps = 5;
  std::string metric = "logit-diff";
  bool loss = false;
  std::string kv_edges = "per-query-head";
  int64_t batch_size = 8;
  std::string out;
  CircuitOptions circuit;
  std::string config;
};

int run_attribute(CLI::App* sub, const AttributeOptions& o) {
  apply_config(sub, o.config);
  require_value(o.model.model_dir, "MODEL_DIR");
  require_value(o.dataset.data, "--data");
  require_value(o.out, "--out");
  const bool ig = o.method == "eap-ig-inputs" || o.method == "eap-ig-activations";
  if (o.method != "eap" && !ig && o.method != "clean-corrupted")
    throw Error(ErrorCode::kUsage,
                "--method '" + o.method + "': expected eap, eap-ig-inputs, eap-ig-activations or clean-corrupted");
  if (ig && o.ig_steps < 1)
    throw Error(ErrorCode::kUsage, "--ig-steps must be at least 1 for " + o.method + "; found " + std::to_string(o.ig_steps));
  EapOptions eo;
  eo.metric = parse_metric(o.metric);
  eo.loss = o.loss;
  eo.ig_steps = ig ? o.ig_steps : 0;
  eo.ig_mode = o.method == "eap-ig-activations" ? IgMode::kActivations : IgMode::kInputs;
  eo.clean_corrupted = o.method == "clean-corrupted";
  const KvEdges kv = parse_kv_edges(o.kv_edges);
  const Selection sel = make_selection(o.circuit);
  parse_intervention(o.circuit.intervention);  // usage errors before the model loads
  parse_mean_source(o.circuit.mean_source);
  parse_sweep(o.circuit.sweep);

  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const ModelConfig& c = model->config();
  const PairDataset ds = load_pairs(o.dataset, o.model.model_dir, c, eo.metric);
  const Graph graph({c.n_layers, c.n_heads, c.n_kv_heads, kv});

  const auto t0 = std::chrono::steady_clock::now();
  const EapResult r = eap_scores(*model, graph, ds.examples, eo, o.batch_size, EtaLog("attribute", "pairs"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::vector<double> es(graph.n_edges());
  auto acc = r.scores.accessor<float, 2>();
  for (int64_t e = 0; e < graph.n_edges(); ++e) {
    auto [u, d] = graph.edge_nodes(e);
    es[e] = acc[u][d];
  }

  nlohmann::json j;
  j["schema_version"] = kReportSchemaVersion;
  j["tool"] = std::string("circuitscope ") + CIRCUITSCOPE_VERSION;
  j["model"] = {{"path", o.model.model_dir},     {"architecture", c.architecture}, {"n_layers", c.n_layers},
                {"n_heads", c.n_heads},          {"n_kv_heads", c.n_kv_heads},     {"d_model", c.d_model},
                {"fingerprint", model->fingerprint()}};
  j["dataset"] = {{"path", o.dataset.data}, {"sha256", ds.sha256}, {"examples", ds.examples.size()}, {"skipped", ds.skipped}};
  j["method"] = {{"name", o.method},        {"ig_steps", eo.ig_steps},   {"metric", o.metric},
                 {"loss", o.loss},          {"kv_edges", kv_edges_name(kv)}, {"dtype", o.model.dtype},
                 {"device", model->device().str()}, {"batch_size", o.batch_size}};
  j["baselines"] = {{"clean", r.metric_clean}, {"corrupted", r.metric_corrupted}};
  const SelectedCircuit circuit = select_circuit(graph, es, sel);
  const std::vector<double> node_scores = node_scores_from_edges(graph, es);
  set_circuit_sections(j, graph, es, sel, circuit, sel.node_level ? &node_scores : nullptr);
  if (sel.kind != SelectionKind::kNone)
    spdlog::info("circuit ({}): {} edges selected, {} pruned, {} kept", selection_name(sel.kind), circuit.selected,
                 circuit.pruned, circuit.selected - circuit.pruned);
  if (sel.kind != SelectionKind::kNone || !o.circuit.sweep.empty())
    j["faithfulness"] = faithfulness_section(*model, graph, ds.examples, es,
                                             sel.kind != SelectionKind::kNone ? &circuit.mask : nullptr, o.circuit,
                                             eo.metric, eo.loss, o.batch_size);
  write_file_atomically(o.out, j.dump(1) + "\n");
  spdlog::info("{} pair(s) ({} skipped), {} edges, {} in {:.2f} s; wrote {}", ds.examples.size(), ds.skipped,
               graph.n_edges(), o.method, secs, o.out);

  std::vector<std::pair<double, int64_t>> order;
  for (int64_t e = 0; e < graph.n_edges(); ++e) order.emplace_back(-std::abs(es[e]), e);
  std::sort(order.begin(), order.end());
  std::cout << "metric " << o.metric << ": clean " << r.metric_clean << ", corrupted " << r.metric_corrupted << "\n";
  for (size_t i = 0; i < std::min<size_t>(10, order.size()); ++i)
    std::cout << graph.edge_name(order[i].second) << "\t" << es[order[i].second] << "\n";
  return 0;
}

CommandRegistrar reg_cmd_attribute({"attribute", "Score every edge of the computation graph (EAP, EAP-IG-inputs, clean-corrupted); write a JSON report",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<AttributeOptions>();
                        add_model_options(sub, o->model);
                        add_dataset_options(sub, o->dataset);
                        sub->add_option("--method", o->method, "eap | eap-ig-inputs | eap-ig-activations | clean-corrupted")->capture_default_str();
                        sub->add_option("--ig-steps", o->ig_steps, "interpolation steps of eap-ig-inputs / eap-ig-activations")
                            ->capture_default_str();
                        sub->add_option("--metric", o->metric, "logit-diff | prob-diff | kl | seq-logprob | seq-kl")->capture_default_str();
                        sub->add_flag("--loss", o->loss, "negate the metric");
                        sub->add_option("--kv-edges", o->kv_edges, "per-query-head | per-kv-head")->capture_default_str();
                        sub->add_option("--batch-size", o->batch_size, "pairs per forward/backward pass")
                            ->capture_default_str();
                        sub->add_option("--out", o->out, "output report (.json)");
                        add_circuit_options(sub, o->circuit);
                        add_config_option(sub, o->config);
                        // May come from --config instead: checked after the file is applied.
                        sub->get_option("model_dir")->required(false);
                        sub->get_option("--data")->required(false);
                        sub->footer(
                            "score(u->v) = mean over pairs of sum over positions and d_model of (z_u(clean) - "
                            "z_u(corrupted)) . dM/dx_v; positive = the edge supports the metric M. Pairs are "
                            "right-padded, clean and corrupted aligned from the start; every metric is read at the clean "
                            "example's positions. Prints the 10 "
                            "edges with the largest |score|. With a selection (--top-n, --threshold, --greedy, "
                            "--simplify, --selection) edges not on a path from input to logits are pruned, edges and "
                            "nodes get in_graph, and the report adds the circuit's faithfulness (every edge outside it "
                            "carrying the --intervention value; normalized = (circuit - corrupted) / (clean - "
                            "corrupted)). --sweep adds faithfulness for several top-n sizes.");
                        return [o, sub] { return run_attribute(sub, *o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
