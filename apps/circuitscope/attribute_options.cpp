#include "attribute_options.hpp"

namespace circuitscope::app {

void add_attribute_options(CLI::App* sub, AttributeOptions& o) {
  add_model_options(sub, o.model);
  add_dataset_options(sub, o.dataset);
  sub->add_option("--method", o.method, "eap | eap-ig-inputs | eap-ig-activations | clean-corrupted")->capture_default_str();
  sub->add_option("--ig-steps", o.ig_steps, "interpolation steps of eap-ig-inputs / eap-ig-activations")
      ->capture_default_str();
  sub->add_option("--metric", o.metric, "logit-diff | prob-diff | kl | seq-logprob | seq-kl")->capture_default_str();
  sub->add_flag("--loss", o.loss, "negate the metric");
  sub->add_option("--kv-edges", o.kv_edges, "per-query-head | per-kv-head")->capture_default_str();
  sub->add_option("--batch-size", o.batch_size, "pairs per forward/backward pass")
      ->capture_default_str();
  sub->add_option("--out", o.out, "output report (.json)");
  sub->add_option("--html", o.html, "also write the report as an HTML page (as `report` does)");
  add_circuit_options(sub, o.circuit);
  add_config_option(sub, o.config);
}

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

}  // namespace circuitscope::app
