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

#include "attribute_options.hpp"
#include "circuit_options.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/html_report.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pipeline.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"
#include "dataset_options.hpp"
#include "progress.hpp"

namespace circuitscope::app {
namespace {

int run_attribute(CLI::App* sub, const AttributeOptions& o) {
  apply_config(sub, o.config);
  require_value(o.model.model_dir, "MODEL_DIR");
  require_value(o.dataset.data, "--data");
  require_value(o.out, "--out");
  const AttributeSpec spec = make_attribute_spec(o);

  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const PairDataset ds = load_pairs(o.dataset, o.model.model_dir, model->config(), spec.metric);
  const AttributeResult r = attribute(*model, ds.examples, spec, EtaLog("attribute", "pairs"));
  const nlohmann::json report = attribute_report(r, spec, *model, o.model.model_dir, ds);
  write_file_atomically(o.out, report.dump(1) + "\n");
  if (!o.html.empty()) {
    write_file_atomically(o.html, html_page({report_section(report, o.out, "s1")}, "circuitscope attribute: " + o.out));
    spdlog::info("wrote {}", o.html);
  }
  const Graph graph(r.graph);
  const std::vector<double>& es = r.scores.scores;
  spdlog::info("{} pair(s) ({} skipped), {} edges, {} in {:.2f} s{}; wrote {}", ds.examples.size(), ds.skipped,
               graph.n_edges(), o.method, r.scores.seconds,
               r.scores.warmup_seconds > 0 ? fmt::format(" (after a {:.2f} s warm-up)", r.scores.warmup_seconds) : "",
               o.out);

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
                        add_attribute_options(sub, *o);
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
