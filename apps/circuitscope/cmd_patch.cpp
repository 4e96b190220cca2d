// circuitscope patch MODEL_DIR --data pairs.jsonl --level head|mlp|resid [--per-position]
//     [--metric ...] [--loss] [--batch-size 8] [--config FILE] --out patch.json
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "circuit_options.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/patching.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"
#include "dataset_options.hpp"

namespace circuitscope::app {
namespace {

struct PatchOptions {
  CommonModelOptions model;
  DatasetOptions dataset;
  std::string level = "head";
  bool per_position = false;
  std::string metric = "logit-diff";
  bool loss = false;
  int64_t batch_size = 8;
  std::string out;
  std::string config;
};

int run_patch(CLI::App* sub, const PatchOptions& o) {
  apply_config(sub, o.config);
  require_value(o.model.model_dir, "MODEL_DIR");
  require_value(o.dataset.data, "--data");
  require_value(o.out, "--out");
  const PatchLevel level = parse_patch_level(o.level);
  const MetricKind metric = parse_metric(o.metric);
  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const ModelConfig& c = model->config();
  const PairDataset ds = load_pairs(o.dataset, o.model.model_dir, c, metric);
  const NodePatchingResult r = node_patching(*model, ds.examples, level, o.per_position, metric, o.loss, o.batch_size);

  nlohmann::json j;
  j["schema_version"] = kPatchSchemaVersion;
  j["tool"] = tool_name();
  j["model"] = model_json(o.model.model_dir, c, model->fingerprint());
  j["dataset"] = dataset_json(ds);
  j["method"] = {{"name", "node-patching"}, {"level", patch_level_name(level)}, {"per_position", o.per_position},
                 {"metric", o.metric},      {"loss", o.loss},                    {"dtype", o.model.dtype},
                 {"device", model->device().str()}, {"batch_size", o.batch_size}};
  j["baselines"] = {{"clean", r.metric_clean}, {"corrupted", r.metric_corrupted}};
  if (o.per_position) j["position_counts"] = r.position_counts;
  nlohmann::json nodes = nlohmann::json::object();
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    nlohmann::json n = {{"score", r.scores[i]}};
    if (o.per_position) n["per_position"] = r.per_position[i];
    nodes[r.nodes[i].name()] = std::move(n);
  }
  j["nodes"] = std::move(nodes);
  write_file_atomically(o.out, j.dump(1) + "\n");

  std::vector<size_t> order(r.nodes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return std::abs(r.scores[a]) > std::abs(r.scores[b]); });
  std::cout << "metric " << o.metric << ": clean " << r.metric_clean << ", corrupted " << r.metric_corrupted << "\n";
  for (size_t i = 0; i < std::min<size_t>(10, order.size()); ++i)
    std::cout << r.nodes[order[i]].name() << "\t" << r.scores[order[i]] << "\n";
  spdlog::info("{} node(s) at level {} on {} pair(s); wrote {}", r.nodes.size(), o.level, ds.examples.size(), o.out);
  return 0;
}

CommandRegistrar reg_cmd_patch({"patch", "Exact activation patching of every head, MLP or residual stream (optionally per position)",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<PatchOptions>();
                        add_model_options(sub, o->model);
                        add_dataset_options(sub, o->dataset);
                        sub->add_option("--level", o->level, "head | mlp | resid")->capture_default_str();
                        sub->add_flag("--per-position", o->per_position,
                                      "also patch each token position on its own (positions count from each "
                                      "example's first token)");
                        sub->add_option("--metric", o->metric, "logit-diff | prob-diff | kl")->capture_default_str();
                        sub->add_flag("--loss", o->loss, "negate the metric");
                        sub->add_option("--batch-size", o->batch_size, "pairs per forward pass")->capture_default_str();
                        sub->add_option("--out", o->out, "output (.json)");
                        add_config_option(sub, o->config);
                        sub->get_option("model_dir")->required(false);
                        sub->get_option("--data")->required(false);
                        sub->footer(
                            "score(node) = M(clean) - M(clean with the node's output taken from the corrupted run), "
                            "mean over pairs; positive = the node supports the metric (as in attribute). Nodes: "
                            "a{l}.h{h} (head output, via attn.hook_z), m{l} (hook_mlp_out), embed (hook_embed) and "
                            "resid{l} (the residual stream after layer l, hook_resid_post). With --per-position, "
                            "nodes also get per_position[k]: the node patched only at token k, mean over the pairs "
                            "that have token k (position_counts).");
                        return [o, sub] { return run_patch(sub, *o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
