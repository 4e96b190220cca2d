// circuitscope attribute MODEL_DIR --data pairs.jsonl
//     [--method eap|eap-ig-inputs|eap-ig-activations|clean-corrupted] [--ig-steps 5]
//     [--metric logit-diff|prob-diff|kl|seq-logprob|seq-kl] [--loss] [--kv-edges per-query-head|per-kv-head]
//     [--top-n N | --threshold T | --greedy N | --top-n N --simplify T | --selection thinking-sparks] [--level edge|node]
//     [--intervention patch|zero|mean|mean-positional] [--sizes 100,300] [--config FILE] --out report.json
// Options -> AttributeSpec -> circuitscope::attribute (include/circuitscope/pipeline.hpp) -> report.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "circuit_options.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pipeline.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"
#include "dataset_options.hpp"
#include "progress.hpp"

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

// Everything that can be checked without the model, before it loads.
AttributeSpec make_attribute_spec(const AttributeOptions& o) {
  AttributeSpec spec;
  spec.method = parse_attribution_method(o.method);
  spec.ig_steps = o.ig_steps;
  spec.metric = parse_metric(o.metric);
  spec.loss = o.loss;
  spec.kv_edges = parse_kv_edges(o.kv_edges);
  spec.batch_size = o.batch_size;
  spec.selection = make_selection(o.circuit);
  spec.faithfulness = make_faithfulness_spec(o.circuit);
  spec.validate();
  return spec;
}

int run_attribute(CLI::App* sub, const AttributeOptions& o) {
  apply_config(sub, o.config);
  require_value(o.model.model_dir, "MODEL_DIR");
  require_value(o.dataset.data, "--data");
  require_value(o.out, "--out");
  const AttributeSpec spec = make_attribute_spec(o);

  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const PairDataset ds = load_pairs(o.dataset, o.model.model_dir, model->config(), spec.metric);
  const AttributeResult r = attribute(*model, ds.examples, spec, EtaLog("attribute", "pairs"));
  write_file_atomically(o.out, attribute_report(r, spec, *model, o.model.model_dir, ds).dump(1) + "\n");
  const Graph graph(r.graph);
  const std::vector<double>& es = r.scores.scores;
  spdlog::info("{} pair(s) ({} skipped), {} edges, {} in {:.2f} s; wrote {}", ds.examples.size(), ds.skipped,
               graph.n_edges(), o.method, r.scores.seconds, o.out);

  std::vector<std::pair<double, int64_t>> order;
  for (int64_t e = 0; e < graph.n_edges(); ++e) order.emplace_back(-std::abs(es[e]), e);
  std::sort(order.begin(), order.end());
  std::cout << "metric " << o.metric << ": clean " << r.scores.metric_clean << ", corrupted " << r.scores.metric_corrupted
            << "\n";
  for (size_t i = 0; i < std::min<size_t>(10, order.size()); ++i)
    std::cout << graph.edge_name(order[i].second) << "\t" << es[order[i].second] << "\n";
  return 0;
}

CommandRegistrar reg_cmd_attribute({"attribute", "Score every edge of the computation graph (EAP, EAP-IG-inputs/-activations, clean-corrupted); select a circuit; write a JSON report",
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
                            "corrupted)). --sizes adds the faithfulness curve: the top-n circuit for each size.");
                        return [o, sub] { return run_attribute(sub, *o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
