// The attribute pipeline as library calls: method -> edge scores -> per-edge table -> circuit
// selection -> faithfulness -> report. `attribute` runs all of it; `evaluate` and a checkpoint
// sweep's merge run the later stages on scores they already have. Commands only parse their options
// into these types (parse once, at the edge) and call these functions.
#pragma once
#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "circuitscope/circuit.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/eap.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/metric.hpp"
#include "circuitscope/patching.hpp"
#include "circuitscope/report.hpp"

namespace circuitscope {

class HookedTransformer;

enum class AttributionMethod { kEap, kEapIgInputs, kEapIgActivations, kCleanCorrupted };
// "eap" | "eap-ig-inputs" | "eap-ig-activations" | "clean-corrupted"; Error(kUsage) otherwise.
AttributionMethod parse_attribution_method(const std::string& s);
const char* attribution_method_name(AttributionMethod m);
bool is_integrated_gradients(AttributionMethod m);  // the eap-ig-* methods (they take ig_steps)

// How circuits are measured: what the edges outside a circuit carry, and the faithfulness curve.
struct FaithfulnessSpec {
  Intervention intervention = Intervention::kPatch;
  MeanSource mean_source = MeanSource::kClean;  // for the mean interventions
  std::vector<int64_t> sizes;  // the curve: the top-n circuit (then pruned) for each n
  bool absolute = true;        // the curve ranks edges by |score| (false: by score)
};

struct AttributeSpec {
  AttributionMethod method = AttributionMethod::kEapIgInputs;
  int ig_steps = 5;  // interpolation steps of the eap-ig-* methods; ignored by the others
  MetricKind metric = MetricKind::kLogitDiff;
  bool loss = false;  // negate the metric
  KvEdges kv_edges = KvEdges::kPerQueryHead;
  int64_t batch_size = 8;  // pairs per forward/backward pass
  Selection selection;     // kind kNone: scores only
  FaithfulnessSpec faithfulness;

  // Throws Error(kUsage) naming the field when a value is out of range.
  void validate() const;
  EapOptions eap_options() const;
};

// The per-edge table: entry [u][v] of a [n_upstream, n_downstream] score matrix for each edge of
// the graph, in edge-index order.
std::vector<double> edge_scores_from_matrix(const Graph& graph, const at::Tensor& matrix);

// Stage 1, the forward and backward passes: the mean edge scores over the examples.
struct EdgeScores {
  std::vector<double> scores;  // by edge index
  double metric_clean = 0.0;   // baselines, mean over the examples (negated with loss)
  double metric_corrupted = 0.0;
  int64_t n_examples = 0;
  double seconds = 0.0;  // wall-clock time of the passes (the warm-up not included)
  double warmup_seconds = 0.0;  // warm_up_attribution's time; 0 where none ran (the CPU)
  // On CUDA, the caching allocator's peak during the passes; on the CPU, the process's peak
  // resident memory so far (weights and data included). -1 where unknown.
  int64_t peak_memory_bytes = -1;
};
// On CUDA, score_edges first calls warm_up_attribution, outside its timed phase: the first passes
// of a process pay for the CUDA context, cuBLAS handles and workspaces and the caching allocator's
// first blocks, which would otherwise be charged to the first batch.
EdgeScores score_edges(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                       const AttributeSpec& spec, const std::function<void(size_t done, size_t total)>& on_batch = {});
// The attribution passes on one pair (batch of 1), results discarded; returns the seconds taken,
// device work included. Leaves the model as it found it (no hooks, no gradients kept).
double warm_up_attribution(HookedTransformer& model, const Graph& graph, const PairExample& example,
                           const AttributeSpec& spec);

struct FaithfulnessPoint {
  int64_t top_n = 0;
  int64_t edges = 0;  // after pruning
  double circuit = 0.0;
  double normalized = 0.0;
};
struct FaithfulnessResult {
  Intervention intervention = Intervention::kPatch;
  MeanSource mean_source = MeanSource::kClean;
  bool measured = false;  // false when there was neither a circuit nor a size to measure
  double clean = 0.0;     // baselines, when measured
  double corrupted = 0.0;
  std::optional<Faithfulness> circuit;  // the given circuit's
  std::vector<FaithfulnessPoint> curve;  // one per size
};

// Faithfulness of `circuit` (optional) and of the top-n circuit for each of spec.sizes, in one set
// of baseline runs. Logs one line per circuit.
FaithfulnessResult measure_faithfulness(HookedTransformer& model, const Graph& graph,
                                        const std::vector<PairExample>& examples,
                                        const std::vector<double>& edge_scores, const EdgeMask* circuit,
                                        const FaithfulnessSpec& spec, MetricKind metric, bool loss,
                                        int64_t batch_size);
// The report's `faithfulness` block: intervention, mean_source (mean interventions), and when
// measured clean, corrupted, circuit and normalized (with a circuit) and sizes (with a curve).
nlohmann::json faithfulness_json(const FaithfulnessResult& f);

// Stage 2, from edge scores (stage 1's, or sums over a sweep's chunks): the selected circuit and its
// faithfulness.
struct CircuitResult {
  SelectedCircuit circuit;          // an all-zero mask when spec.selection.kind is kNone
  std::vector<double> node_scores;  // per upstream node; filled for node-level selections
  std::optional<FaithfulnessResult> faithfulness;  // with a selection or a curve
};
CircuitResult select_and_measure(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                                 const std::vector<double>& edge_scores, const AttributeSpec& spec);

struct AttributeResult {
  GraphSpec graph;
  EdgeScores scores;
  CircuitResult circuit;
};

// Both stages. `examples` are the pairs of a PairDataset (read_pairs_jsonl); on_batch reports progress.
AttributeResult attribute(HookedTransformer& model, const std::vector<PairExample>& examples, const AttributeSpec& spec,
                          const std::function<void(size_t done, size_t total)>& on_batch = {});

// The attribute report (schemas/report.schema.json): schema_version, tool, model, dataset, method,
// baselines, edges, nodes, heads, and circuit and faithfulness when there are any.
nlohmann::json attribute_report(const AttributeResult& result, const AttributeSpec& spec,
                                const HookedTransformer& model, const std::string& model_path,
                                const PairDataset& dataset);

// What `evaluate` measures on a report's scores: a new selection (kind kNone: the report's own
// circuit, pruned) and the faithfulness spec.
struct EvaluateSpec {
  Selection selection;
  FaithfulnessSpec faithfulness;
  int64_t batch_size = 8;
};
// The metric and sign a report was scored with (method.metric, method.loss); Error(kFormat) naming
// the key when missing.
struct ReportMetric {
  MetricKind metric = MetricKind::kLogitDiff;
  bool loss = false;
};
ReportMetric report_metric(const nlohmann::json& report, const std::string& path);
// Re-measures the circuit of `report` (read from `path`; `edges` and `metric` parsed from it by
// report_edges and report_metric) on `dataset`, and writes its faithfulness block (with
// faithfulness.dataset) into it; a new selection also rewrites edges, nodes, heads and circuit.
// Errors when the report's graph does not fit the model, or when there is no circuit and no curve
// to measure.
void evaluate_report(HookedTransformer& model, const std::string& model_path, nlohmann::json& report,
                     const std::string& path, const ReportEdges& edges, const ReportMetric& metric,
                     const PairDataset& dataset, const EvaluateSpec& spec);

}  // namespace circuitscope
