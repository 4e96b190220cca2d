// Exact interventions on edges: run the clean input with chosen edges carrying their corrupted
// values (faithfulness of a circuit, exact edge patching for validating attribution scores).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "circuitscope/batch.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/metric.hpp"

namespace circuitscope {

// Mean metric (negated when loss) of the clean run in which every edge u->v with
// in_circuit[u][v] == false is patched: v's input becomes x_v + z_u(corrupted) - z_u(current run),
// where z_u(current run) is u's output in this same, patched forward pass (as in Hanna et al.).
// in_circuit: [n_upstream, n_downstream] bool; entries without a graph edge are ignored.
// Per-query-head k/v nodes of a grouped-query model cannot be patched one query head at a time
// through the model's [B,T,K,D] k/v inputs: such a graph is accepted only when each group's k
// (and v) edges from one upstream node are all in or all out.
// reference: the values patched in, [B,T,n_upstream,D]; default the corrupted run's upstream
// activations (patching); zeros give zero ablation.
double circuit_metric(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch,
                      const at::Tensor& in_circuit, MetricKind metric, bool loss = false,
                      const at::Tensor& reference = {});

// What an edge outside the circuit carries (the value of its upstream node z_u):
//  kPatch:          z_u of the corrupted run of the same example (interchange);
//  kZero:           0;
//  kMean:           the mean of z_u over every real token of every example of the dataset;
//  kMeanPositional: the mean of z_u at each token position (counted from the example's first real
//                   token) over the examples that have that position.
// Means are taken over the clean inputs by default (as the EAP-IG reference's
// compute_mean_activations does with the first element of each batch) or the corrupted ones.
enum class Intervention { kPatch, kZero, kMean, kMeanPositional };
Intervention parse_intervention(const std::string& s);  // "patch" | "zero" | "mean" | "mean-positional"
const char* intervention_name(Intervention i);

enum class MeanSource { kClean, kCorrupted };
MeanSource parse_mean_source(const std::string& s);  // "clean" | "corrupted"
const char* mean_source_name(MeanSource m);

// Mean upstream activations over the examples' real tokens: [U,D] (positional = false) or [P,U,D]
// with P the longest example (positional), float32 on the model's device.
at::Tensor mean_upstream_activations(HookedTransformer& model, const Graph& graph,
                                     const std::vector<PairExample>& examples, bool positional, MeanSource source,
                                     int64_t batch_size);
// The [B,T,U,D] reference for circuit_metric on one batch from such means (compute dtype); positions
// count from each row's first real token (attention_mask), padding rows get position 0's mean.
at::Tensor mean_reference(const at::Tensor& means, const AttributionBatch& batch, bool positional, at::ScalarType dtype);

// Exact edge patching: score(e) = M(clean) - M(clean with only e patched), for each listed edge
// index; positive = the edge supports the metric (same sign convention as eap_scores).
std::vector<double> exact_edge_scores(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch,
                                      const std::vector<int64_t>& edges, MetricKind metric, bool loss = false);

// [n_upstream, n_downstream] bool from an edge mask (circuit.hpp's EdgeMask: char per edge index).
at::Tensor edge_mask_matrix(const Graph& graph, const std::vector<char>& edge_mask);

// A copy of a grouped-query model with every kv head repeated for each query head of its group
// (K = H; the other weights are shared, not copied). It computes the same function, and its k/v
// inputs are per query head, so per-query-head k/v edges can be patched one at a time.
std::unique_ptr<HookedTransformer> ungrouped_copy(const HookedTransformer& model);

struct Faithfulness {
  double circuit = 0.0;     // metric with every edge outside the circuit patched
  double clean = 0.0;       // baselines (mean over examples)
  double corrupted = 0.0;
  double normalized = 0.0;  // (circuit - corrupted) / (clean - corrupted)
};

// Over all examples in batches; per-query-head graphs of grouped-query models are evaluated on an
// ungrouped copy of the model.
// The baselines stay the clean and the corrupted run; with zero ablation `corrupted` is still the
// corrupted run's metric, and the empty circuit is not the corrupted run.
Faithfulness faithfulness(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                          const std::vector<char>& edge_mask, MetricKind metric, bool loss, int64_t batch_size,
                          Intervention intervention = Intervention::kPatch);

// Several circuits on the same examples (a sweep over circuit sizes): the baselines and the means
// are computed once. One result per mask, in order.
std::vector<Faithfulness> faithfulness(HookedTransformer& model, const Graph& graph,
                                       const std::vector<PairExample>& examples,
                                       const std::vector<std::vector<char>>& edge_masks, MetricKind metric, bool loss,
                                       int64_t batch_size, Intervention intervention,
                                       MeanSource mean_source = MeanSource::kClean);

}  // namespace circuitscope

namespace circuitscope {

struct ModelConfig;

// Exact node patching (activation patching of whole nodes):
//  kHead:  a{l}.h{h}   the head's output (blocks.{l}.attn.hook_z, head h; o_proj has no per-head bias)
//  kMlp:   m{l}        blocks.{l}.hook_mlp_out
//  kResid: embed       hook_embed (the residual stream before layer 0), and
//          resid{l}    blocks.{l}.hook_resid_post (the residual stream after layer l)
enum class PatchLevel { kHead, kMlp, kResid };
PatchLevel parse_patch_level(const std::string& s);  // "head" | "mlp" | "resid"
const char* patch_level_name(PatchLevel l);

struct NodePatch {
  PatchLevel level = PatchLevel::kHead;
  int64_t layer = 0;  // -1: embed (kResid)
  int64_t head = -1;  // kHead only
  std::string name() const;
};

// Every node of a level, in layer (then head) order.
std::vector<NodePatch> patch_nodes(const ModelConfig& cfg, PatchLevel level);

// Per-example metric [B] (float32, loss not applied) of the clean run in which the listed nodes carry
// their values from the corrupted run: at every position (position < 0), or only at each row's
// position-th real token (counted from its first real token; rows without one are not patched).
at::Tensor patched_metric(HookedTransformer& model, const AttributionBatch& batch, const std::vector<NodePatch>& nodes,
                          MetricKind metric, int64_t position = -1);

struct NodePatchingResult {
  std::vector<NodePatch> nodes;
  // score = M(clean) - M(clean with the node patched), mean over examples; positive = the node
  // supports the metric (the sign convention of eap_scores; with loss, M is negated).
  std::vector<double> scores;
  // per_position[i][k]: the node patched only at real token k, mean over the examples that have
  // token k (empty unless asked for).
  std::vector<std::vector<double>> per_position;
  std::vector<int64_t> position_counts;  // examples having token k
  double metric_clean = 0.0;
  double metric_corrupted = 0.0;
};

NodePatchingResult node_patching(HookedTransformer& model, const std::vector<PairExample>& examples, PatchLevel level,
                                 bool per_position, MetricKind metric, bool loss, int64_t batch_size);

}  // namespace circuitscope
