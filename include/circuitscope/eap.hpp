// Edge attribution patching (EAP), EAP-IG-inputs and EAP-IG-activations over the graph of graph.hpp, with the hook
// points as the only seam into the model.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "circuitscope/dataset.hpp"
#include "circuitscope/graph.hpp"

namespace circuitscope {

class HookedTransformer;

enum class MetricKind { kLogitDiff, kProbDiff, kKl, kSeqLogprob, kSeqKl };
// "logit-diff" | "prob-diff" | "kl" | "seq-logprob" | "seq-kl"
MetricKind parse_metric(const std::string& s);
const char* metric_name(MetricKind m);

// One batch of clean/corrupted pairs, right-padded to one length T. Alignment: token t of the clean
// row faces token t of the corrupted row (aligned from the start); each run uses its own mask, and
// every metric is read at the clean example's positions in every run (as the EAP-IG reference does:
// it reads the corrupted logits at the clean input lengths). Right padding is safe for the model:
// position ids come from the mask (cumsum - 1), and pads after the real tokens are invisible to them
// under the causal mask, so the real positions compute exactly what they compute unpadded.
struct AttributionBatch {
  at::Tensor clean_ids;       // [B,T] int64
  at::Tensor corrupted_ids;   // [B,T] int64
  at::Tensor attention_mask;  // [B,T], optional (1 = real token) of the clean run; default all real
  at::Tensor corrupted_mask;  // [B,T], optional mask of the corrupted run; default attention_mask
  at::Tensor answer_ids;      // [B] int64 (logit-diff, prob-diff)
  at::Tensor wrong_ids;       // [B] int64
  at::Tensor positions;       // [B] int64, where the metric is read; default the last real clean position
  // Sequence metrics: at query position t, the token to score (the clean continuation's token t+1)
  // and whether t is supervised.
  at::Tensor target_ids;      // [B,T] int64 (seq-logprob, seq-kl)
  at::Tensor target_mask;     // [B,T] (1 = supervised)
};

// Per-example metric values [B] (float32) from logits [B,T,V].
//  logit-diff: logit(answer) - logit(wrong);  prob-diff: p(answer) - p(wrong);
//  kl: KL(p_clean || p) of the next-token distributions, clean_logits [B,T,V] required;
//  seq-logprob: mean over the supervised positions t of log p(target_ids[t]) (teacher-forced);
//  seq-kl: mean over the supervised positions of KL(p_clean || p), clean_logits required.
at::Tensor metric_per_example(MetricKind kind, const at::Tensor& logits, const AttributionBatch& batch,
                              const at::Tensor& clean_logits = {});

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

// Examples [begin, end) as one right-padded batch (pad id 0; attention_mask and corrupted_mask mark
// each run's real tokens; positions = the last clean token; target_ids/target_mask filled when the
// examples have clean continuations).
AttributionBatch make_attribution_batch(const std::vector<PairExample>& examples, size_t begin, size_t end);

// Scores and baselines averaged over all examples, computed in batches of at most batch_size.
// on_batch (optional) is called after each batch with the number of examples done and the total.
EapResult eap_scores(HookedTransformer& model, const Graph& graph, const std::vector<PairExample>& examples,
                     const EapOptions& opts, int64_t batch_size,
                     const std::function<void(size_t done, size_t total)>& on_batch = {});

// The upstream activations z_u of one run as [B,T,n_upstream,D] (compute dtype, no grad):
// hook_embed, blocks.{l}.attn.hook_result, blocks.{l}.hook_mlp_out. Exposed for tests.
at::Tensor upstream_activations(HookedTransformer& model, const Graph& graph, const at::Tensor& ids,
                                const at::Tensor& attention_mask);

// Wall-clock seconds per phase of eap_scores (cs::fwd, cs::bwd, cs::finish, ...), summed while
// enabled, for benchmarks; phases nest (cs::heads_add is inside cs::post). Process-wide and not
// thread-safe. On CUDA the phases' times are launch times unless the caller synchronizes.
void set_phase_timing(bool on);
// The sums since the last call, by phase name, in the order the phases first ran; resets them.
std::vector<std::pair<std::string, double>> take_phase_times();

}  // namespace circuitscope
