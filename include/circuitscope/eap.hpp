// Edge attribution patching (EAP), EAP-IG-inputs and EAP-IG-activations over the graph of graph.hpp, with the hook
// points as the only seam into the model.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "circuitscope/batch.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/metric.hpp"

namespace circuitscope {

class HookedTransformer;

// What EAP-IG integrates over (ig_steps > 0).
enum class IgMode {
  kInputs,       // EAP-IG-inputs: the token embeddings interpolated, every edge shares the m runs
  kActivations,  // EAP-IG-activations: each upstream layer's outputs interpolated in their own m runs
};

struct EapOptions {
  MetricKind metric = MetricKind::kLogitDiff;
  bool loss = false;  // negate the metric
  int ig_steps = 0;   // 0: plain EAP (gradient on the clean run); m > 0: EAP-IG with m steps
  IgMode ig_mode = IgMode::kInputs;
  // clean-corrupted: the gradient averaged over the clean and the corrupted run (ig_steps must be 0).
  bool clean_corrupted = false;
};

struct EapResult {
  at::Tensor scores;  // [n_upstream, n_downstream] float32 on CPU; 0 where the graph has no edge
  double metric_clean = 0.0;      // mean over the batch (with the sign of `loss` applied)
  double metric_corrupted = 0.0;
  int64_t n_examples = 0;
};

// score(u->v) = mean over examples of sum over positions and d_model of
//   (z_u(clean) - z_u(corrupted)) . dM/dx_v,
// M the metric (negated when loss), dM/dx_v taken
//  - EAP: on the clean run;
//  - EAP-IG-inputs: averaged over the inputs e_k = e_corr + (k/m)(e_clean - e_corr), k = 0..m-1;
//  - EAP-IG-activations: averaged over m runs of the clean input in which the outputs of u's group
//    (the embeddings, all heads of u's layer, or u's MLP) are replaced by
//    z_corr + (k/m)(z_clean - z_corr), k = 1..m (the reference's steps). For each group, the scores
//    of all edges leaving it sum to a Riemann sum of the integrated gradient along that path, so
//    they approach M(clean) - M(clean with the group's outputs patched to corrupted) as m grows.
//    (2L+1) x m gradient runs. The reference (get_scores_ig_activations) adds every run's
//    gradients into every edge's score and divides by (2L+1) m; here each run counts only for the
//    edges leaving the group it interpolates, the form in Hanna et al. (2024).
//  - clean-corrupted: averaged over the clean and the corrupted run.
// A positive score means the edge supports the metric, and the scores of the edges leaving `input`
// approximate M(clean) - M(corrupted) (exactly so as m grows, for EAP-IG). Hanna et al. write the
// same score as (z_corr - z_clean) . dL/dx with L = -M, i.e. their loss=True corresponds to
// loss=false here. Gradient runs use the clean mask (also the interpolated ones; the corrupted
// run of clean-corrupted uses its own): with unequal lengths and a shorter corrupted prompt, the
// IG path therefore starts at the corrupted tokens with the corrupted pads attended.
EapResult eap_scores(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch, const EapOptions& opts);

// Scores and baselines averaged over all examples, computed in batches of at most batch_size.
// on_batch (optional) is called after each batch with the number of examples done and the total.
EapResult eap_scores(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                     const EapOptions& opts, int64_t batch_size,
                     const std::function<void(size_t done, size_t total)>& on_batch = {});

// The upstream activations z_u of one run as [B,T,n_upstream,D] (compute dtype, no grad):
// hook_embed, blocks.{l}.attn.hook_result, blocks.{l}.hook_mlp_out. Exposed for tests.
at::Tensor upstream_activations(HookedTransformer& model, const Graph& graph, const at::Tensor& ids,
                                const at::Tensor& attention_mask);

}  // namespace circuitscope
