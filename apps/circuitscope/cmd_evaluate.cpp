// circuitscope evaluate MODEL_DIR report.json --data pairs.jsonl [--intervention patch|zero|mean|mean-positional]
//     [--sweep 100,300,1000] [--top-n N | --threshold T | --greedy N | ...] [--batch-size 8] [--out report2.json]
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "circuit_options.hpp"
#include "circuitscope/circuit.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"
#include "dataset_options.hpp"

namespace circuitscope::app {
namespace {

struct EvaluateOptions {
  CommonModelOptions model;
  std::string report;
  DatasetOptions dataset;
  int64_t batch_size = 8;
  CircuitOptions circuit;
  std::string out;
  std::string config;
};

int run_evaluate(CLI::App* sub, const EvaluateOptions& o) {
  apply_config(sub, o.config);
  require_value(o.model.model_dir, "MODEL_DIR");
  require_value(o.report, "REPORT");
  require_value(o.dataset.data, "--data");
  const Selection sel = make_selection(o.circuit);
  parse_intervention(o.circuit.intervention);
  parse_mean_source(o.circuit.mean_source);
  parse_sweep(o.circuit.sweep);

  nlohmann::json j = read_json_file(o.report);
  const ReportEdges re = report_edges(j, o.report);
  const std::string metric_name = j["method"].value("metric", "");
  const MetricKind metric = parse_metric(metric_name);
  if (!j["method"].contains("loss") || !j["method"]["loss"].is_boolean())
    throw Error(ErrorCode::kFormat, o.report + ": 'method.loss' must be true or false");
  const bool loss = j["method"]["loss"].get<bool>();

  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const ModelConfig& c = model->config();
  if (c.n_layers != re.spec.n_layers || c.n_heads != re.spec.n_heads || c.n_kv_heads != re.spec.n_kv_heads)
    throw Error(ErrorCode::kInput, o.report + ": the report's graph (n_layers " + std::to_string(re.spec.n_layers) +
                                       ", n_heads " + std::to_string(re.spec.n_heads) + ", n_kv_heads " +
                                       std::to_string(re.spec.n_kv_heads) + ") does not fit the model in " +
                                       o.model.model_dir);
  if (j["model"].value("fingerprint", "") != model->fingerprint())
    spdlog::warn("{}: the report was made on a checkpoint with another fingerprint ({} vs {})", o.report,
                 j["model"].value("fingerprint", ""), model->fingerprint());
  const PairDataset ds = load_pairs(o.dataset, o.model.model_dir, c, metric);
  const Graph graph(re.spec);

  EdgeMask circuit = re.in_graph;
  bool has_circuit = re.has_circuit;
  if (sel.kind != SelectionKind::kNone) {  // a new selection from the report's scores
    const SelectedCircuit sc = select_circuit(graph, re.scores, sel);
    const std::vector<double> node_scores = node_scores_from_edges(graph, re.scores);
    set_circuit_sections(j, graph, re.scores, sel, sc, sel.node_level ? &node_scores : nullptr);
    circuit = sc.mask;
    has_circuit = true;
  } else if (has_circuit) {
    const int64_t removed = prune(graph, circuit);
    if (removed > 0) spdlog::warn("{}: {} circuit edge(s) not on an input-to-logits path are left out", o.report, removed);
  }
  if (!has_circuit && o.circuit.sweep.empty())
    throw Error(ErrorCode::kUsage, o.report + " has no circuit: give a selection (--top-n, --threshold, --greedy, "
                                              "--simplify, --selection) or --sweep");
  nlohmann::json f = faithfulness_section(*model, graph, ds.examples, re.scores, has_circuit ? &circuit : nullptr,
                                          o.circuit, metric, loss, o.batch_size);
  f["dataset"] = {{"path", o.dataset.data}, {"sha256", ds.sha256}, {"examples", ds.examples.size()}, {"skipped", ds.skipped}};
  j["faithfulness"] = f;
  if (!o.out.empty()) {
    write_file_atomically(o.out, j.dump(1) + "\n");
    spdlog::info("wrote {}", o.out);
  }
  std::cout << f.dump(1) << "\n";
  return 0;
}

CommandRegistrar reg_cmd_evaluate({"evaluate", "Faithfulness of a report's circuit (and a sweep over circuit sizes) on a dataset",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<EvaluateOptions>();
                        add_model_options(sub, o->model);
                        sub->add_option("report", o->report, "report written by attribute (.json)");
                        add_dataset_options(sub, o->dataset);
                        sub->add_option("--batch-size", o->batch_size, "pairs per forward pass")->capture_default_str();
                        add_circuit_options(sub, o->circuit);
                        sub->add_option("--out", o->out, "write the report with the new faithfulness block here");
                        add_config_option(sub, o->config);
                        sub->get_option("model_dir")->required(false);
                        sub->get_option("--data")->required(false);
                        sub->footer(
                            "The circuit is the report's (edges with in_graph, pruned), or a new selection from the "
                            "report's scores when --top-n/--threshold/--greedy/--simplify/--selection is given. "
                            "Metric and --loss are the report's. Prints the faithfulness block (circuit, clean, "
                            "corrupted, normalized = (circuit - corrupted)/(clean - corrupted), sweep) and, with "
                            "--out, writes the whole report with it (faithfulness.dataset names the pairs used).");
                        return [o, sub] { return run_evaluate(sub, *o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
