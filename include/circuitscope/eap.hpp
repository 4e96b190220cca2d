// Edge attribution patching (EAP) and EAP-IG-inputs over the graph of graph.hpp, with the hook
// points as the only seam into the model.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "circuitscope/dataset.hpp"
#include "circuitscope/graph.hpp"

namespace circuitscope {

class HookedTransformer;

enum class MetricKind { kLogitDiff, kProbDiff, kKl };
MetricKind parse_metric(const std::string& s);  // "logit-diff" | "prob-diff" | "kl"
const char* metric_name(MetricKind m);

// One batch of clean/corrupted pairs of equal length. Clean and corrupted rows share the mask and
// are compared position by position (the dataset reader aligns and pads them).
struct AttributionBatch {
  at::Tensor clean_ids;       // [B,T] int64
  at::Tensor corrupted_ids;   // [B,T] int64
  at::Tensor attention_mask;  // [B,T], optional (1 = real token); default all real
  at::Tensor answer_ids;      // [B] int64 (logit-diff, prob-diff)
  at::Tensor wrong_ids;       // [B] int64
  at::Tensor positions;       // [B] int64, where the metric is read; default the last real position
};

// Per-example metric values [B] (float32) from logits [B,T,V].
//  logit-diff: logit(answer) - logit(wrong);  prob-diff: p(answer) - p(wrong);
//  kl: KL(p_clean || p) of the next-token distributions, clean_logits [B,T,V] required.
at::Tensor metric_per_example(MetricKind kind, const at::Tensor& logits, const AttributionBatch& batch,
                              const at::Tensor& clean_logits = {});

struct EapOptions {
  MetricKind metric = MetricKind::kLogitDiff;
  bool loss = false;  // negate the metric
  int ig_steps = 0;   // 0: plain EAP (gradient on the clean run); m > 0: EAP-IG-inputs with m steps
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
// M the metric (negated when loss), dM/dx_v taken on the clean run (EAP) or averaged over the
// inputs e_k = e_corr + (k/m)(e_clean - e_corr), k = 0..m-1 (EAP-IG-inputs). A positive score means
// the edge supports the metric, and the scores of the edges leaving `input` approximate
// M(clean) - M(corrupted) (exactly so as m grows, for EAP-IG). Hanna et al. write the same score as
// (z_corr - z_clean) . dL/dx with L = -M, i.e. their loss=True corresponds to loss=false here.
EapResult eap_scores(HookedTransformer& model, const Graph& graph, const AttributionBatch& batch, const EapOptions& opts);

// Examples [begin, end) as one left-padded batch (pad id 0, mask marks real tokens; clean and
// corrupted share the padding, and the metric is read at the last position, the last real token).
AttributionBatch make_attribution_batch(const std::vector<PairExample>& examples, size_t begin, size_t end);

// Scores and baselines averaged over all examples, computed in batches of at most batch_size.
EapResult eap_scores(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                     const EapOptions& opts, int64_t batch_size);

// The upstream activations z_u of one run as [B,T,n_upstream,D] (compute dtype, no grad):
// hook_embed, blocks.{l}.attn.hook_result, blocks.{l}.hook_mlp_out. Exposed for tests.
at::Tensor upstream_activations(HookedTransformer& model, const Graph& graph, const at::Tensor& ids,
                                const at::Tensor& attention_mask);

}  // namespace circuitscope
