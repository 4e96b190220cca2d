// circuitscope evaluate MODEL_DIR report.json --data pairs.jsonl [--intervention patch|zero|mean|mean-positional]
//     [--sizes 100,300,1000] [--top-n N | --threshold T | --greedy N | ...] [--batch-size 8] [--out report2.json]
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "circuit_options.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pipeline.hpp"
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
  EvaluateSpec spec;
  spec.selection = make_selection(o.circuit);
  spec.faithfulness = make_faithfulness_spec(o.circuit);
  spec.batch_size = o.batch_size;

  nlohmann::json j = read_json_file(o.report);
  const ReportEdges edges = report_edges(j, o.report);
  const ReportMetric metric = report_metric(j, o.report);
  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const PairDataset ds = load_pairs(o.dataset, o.model.model_dir, model->config(), metric.metric);
  evaluate_report(*model, o.model.model_dir, j, o.report, edges, metric, ds, spec);
  if (!o.out.empty()) {
    write_file_atomically(o.out, j.dump(1) + "\n");
    spdlog::info("wrote {}", o.out);
  }
  std::cout << j["faithfulness"].dump(1) << "\n";
  return 0;
}

CommandRegistrar reg_cmd_evaluate({"evaluate", "Faithfulness of a report's circuit (and a curve over circuit sizes) on a dataset",
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
                            "corrupted, normalized = (circuit - corrupted)/(clean - corrupted), sizes) and, with "
                            "--out, writes the whole report with it (faithfulness.dataset names the pairs used).");
                        return [o, sub] { return run_evaluate(sub, *o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
