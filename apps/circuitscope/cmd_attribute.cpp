// circuitscope attribute MODEL_DIR --data pairs.jsonl --method eap|eap-ig-inputs|clean-corrupted [--ig-steps 5]
//     [--metric logit-diff|prob-diff|kl] [--loss] [--kv-edges per-query-head|per-kv-head]
//     [--batch-size 8] [--skip-bad] --out report.json
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unistd.h>

#include "circuitscope/circuit.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
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
  int64_t top_n = -1;      // circuit: top-n edges (then pruned)
  double threshold = -1;   // or: |score| >= threshold
  bool signed_scores = false;
  std::string intervention = "patch";
};

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) throw Error(ErrorCode::kIo, "cannot write '" + tmp + "'");
    f << text;
    if (!f.flush()) throw Error(ErrorCode::kIo, "write to '" + tmp + "' failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(ErrorCode::kIo, "cannot rename '" + tmp + "' to '" + path + "'");
  }
}

int run_attribute(const AttributeOptions& o) {
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
  const Intervention intervention = parse_intervention(o.intervention);

  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const ModelConfig& c = model->config();
  const PairDataset ds = load_pairs(o.dataset, o.model.model_dir, c, eo.metric);
  const Graph graph({c.n_layers, c.n_heads, c.n_kv_heads, kv});

  const auto t0 = std::chrono::steady_clock::now();
  const EapResult r = eap_scores(*model, graph, ds.examples, eo, o.batch_size);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  nlohmann::json j;
  j["schema_version"] = 1;
  j["tool"] = std::string("circuitscope ") + CIRCUITSCOPE_VERSION;
  j["model"] = {{"path", o.model.model_dir},     {"architecture", c.architecture}, {"n_layers", c.n_layers},
                {"n_heads", c.n_heads},          {"n_kv_heads", c.n_kv_heads},     {"d_model", c.d_model},
                {"fingerprint", model->fingerprint()}};
  j["dataset"] = {{"path", o.dataset.data}, {"examples", ds.examples.size()}, {"skipped", ds.skipped}};
  j["method"] = {{"name", o.method},        {"ig_steps", eo.ig_steps},   {"metric", o.metric},
                 {"loss", o.loss},          {"kv_edges", kv_edges_name(kv)}, {"dtype", o.model.dtype},
                 {"device", model->device().str()}, {"batch_size", o.batch_size}};
  j["baselines"] = {{"clean", r.metric_clean}, {"corrupted", r.metric_corrupted}};
  nlohmann::json edges = nlohmann::json::object();
  auto acc = r.scores.accessor<float, 2>();
  std::vector<std::pair<double, int64_t>> order;
  order.reserve(graph.n_edges());
  for (int64_t e = 0; e < graph.n_edges(); ++e) {
    auto [u, d] = graph.edge_nodes(e);
    const double s = acc[u][d];
    edges[graph.edge_name(e)] = {{"score", s}};
    order.emplace_back(-std::abs(s), e);
  }
  if (o.top_n >= 0 || o.threshold >= 0) {
    std::vector<double> es(graph.n_edges());
    for (int64_t e = 0; e < graph.n_edges(); ++e) {
      auto [u, d] = graph.edge_nodes(e);
      es[e] = acc[u][d];
    }
    EdgeMask circuit = o.top_n >= 0 ? select_top_n(graph, es, o.top_n, !o.signed_scores)
                                    : select_threshold(graph, es, o.threshold, !o.signed_scores);
    const int64_t selected = count_edges(circuit);
    const int64_t removed = prune(graph, circuit);
    for (int64_t e = 0; e < graph.n_edges(); ++e) edges[graph.edge_name(e)]["in_graph"] = circuit[e] != 0;
    const Faithfulness f =
        faithfulness(*model, graph, ds.examples, circuit, eo.metric, eo.loss, o.batch_size, intervention);
    j["circuit"] = {{"selection", o.top_n >= 0 ? "top-n" : "threshold"},
                    {"top_n", o.top_n},
                    {"threshold", o.threshold},
                    {"absolute", !o.signed_scores},
                    {"selected", selected},
                    {"pruned", removed},
                    {"edges", selected - removed}};
    j["faithfulness"] = {{"intervention", intervention_name(intervention)}, {"circuit", f.circuit}, {"clean", f.clean}, {"corrupted", f.corrupted}, {"normalized", f.normalized}};
    // Head importance: sum of |score| over circuit edges leaving the head, normalized to sum 1.
    std::vector<double> imp(c.n_layers * c.n_heads, 0.0);
    for (int64_t e = 0; e < graph.n_edges(); ++e) {
      if (!circuit[e]) continue;
      auto [u, d] = graph.edge_nodes(e);
      const UpstreamNode& n = graph.upstream()[u];
      if (n.kind == UpstreamKind::kHead) imp[n.layer * c.n_heads + n.head] += std::abs(es[e]);
    }
    const double total = std::accumulate(imp.begin(), imp.end(), 0.0);
    nlohmann::json heads = nlohmann::json::array();
    for (int64_t l = 0; l < c.n_layers; ++l)
      for (int64_t h = 0; h < c.n_heads; ++h) {
        const double v = imp[l * c.n_heads + h];
        heads.push_back({{"layer", l}, {"head", h}, {"importance", total > 0 ? v / total : 0.0}, {"in_circuit", v > 0}});
      }
    j["heads"] = std::move(heads);
    spdlog::info("circuit: {} edges selected, {} pruned, {} kept; faithfulness {:.4f} (circuit {:.4f}, clean {:.4f}, corrupted {:.4f})",
                 selected, removed, selected - removed, f.normalized, f.circuit, f.clean, f.corrupted);
  }
  j["edges"] = std::move(edges);
  write_atomically(o.out, j.dump(1) + "\n");
  spdlog::info("{} pair(s) ({} skipped), {} edges, {} in {:.2f} s; wrote {}", ds.examples.size(), ds.skipped,
               graph.n_edges(), o.method, secs, o.out);

  std::sort(order.begin(), order.end());
  std::cout << "metric " << o.metric << ": clean " << r.metric_clean << ", corrupted " << r.metric_corrupted << "\n";
  for (size_t i = 0; i < std::min<size_t>(10, order.size()); ++i)
  {
    auto [u, d] = graph.edge_nodes(order[i].second);
    std::cout << graph.edge_name(order[i].second) << "\t" << acc[u][d] << "\n";
  }
  return 0;
}

CommandRegistrar reg({"attribute", "Score every edge of the computation graph (EAP, EAP-IG-inputs, clean-corrupted); write a JSON report",
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
                        sub->add_option("--out", o->out, "output report (.json)")->required();
                        auto* topn = sub->add_option("--top-n", o->top_n,
                                                     "circuit: the N edges with the largest |score|, then pruned");
                        auto* thr = sub->add_option("--threshold", o->threshold,
                                                    "circuit: edges with |score| >= T, then pruned");
                        topn->excludes(thr);
                        sub->add_flag("--signed", o->signed_scores, "select by score instead of |score|");
                        sub->add_option("--intervention", o->intervention,
                                        "faithfulness: edges outside the circuit get patch (corrupted values) or zero")
                            ->capture_default_str();
                        sub->footer(
                            "score(u->v) = mean over pairs of sum over positions and d_model of (z_u(clean) - "
                            "z_u(corrupted)) . dM/dx_v; positive = the edge supports the metric M. Pairs are "
                            "right-padded, clean and corrupted aligned from the start; every metric is read at the clean "
                            "example's positions. Prints the 10 edges with the "
                            "largest |score|. With --top-n or --threshold, edges not on a path from input to logits are "
                            "pruned, edges get in_graph, and the report adds the circuit's faithfulness (every edge "
                            "outside it patched to its corrupted value; normalized = (circuit - corrupted) / (clean - "
                            "corrupted)) and head importances.");
                        return [o] { return run_attribute(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
