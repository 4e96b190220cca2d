// The metrics attribution and patching measure, read from a run's logits on an AttributionBatch.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>

#include "circuitscope/batch.hpp"

namespace circuitscope {

class HookedTransformer;

enum class MetricKind { kLogitDiff, kProbDiff, kKl, kSeqLogprob, kSeqKl };
// "logit-diff" | "prob-diff" | "kl" | "seq-logprob" | "seq-kl"
MetricKind parse_metric(const std::string& s);
const char* metric_name(MetricKind m);
bool is_sequence_metric(MetricKind m);   // seq-logprob, seq-kl: read at the supervised positions
bool metric_needs_answer(MetricKind m);  // logit-diff, prob-diff: answer and wrong ids

// Per-example metric values [B] (float32) from logits [B,T,V].
//  logit-diff: logit(answer) - logit(wrong);  prob-diff: p(answer) - p(wrong);
//  kl: KL(p_clean || p) of the next-token distributions, clean_logits [B,T,V] required;
//  seq-logprob: mean over the supervised positions t of log p(target_ids[t]) (teacher-forced);
//  seq-kl: mean over the supervised positions of KL(p_clean || p), clean_logits required.
at::Tensor metric_per_example(MetricKind kind, const at::Tensor& logits, const AttributionBatch& batch,
                              const at::Tensor& clean_logits = {});

// Where logit-diff, prob-diff and kl are read: batch.positions, else each row's last real token
// (attention_mask), else the last position. [B] int64 on `device`.
at::Tensor metric_positions(const AttributionBatch& batch, const c10::Device& device);

// Throws Error(kInput) naming what is missing or out of range when `batch` cannot be measured with
// `metric` on `model` (shapes, answer/wrong ids, sequence targets, ids past the vocabulary).
void check_metric_batch(const HookedTransformer& model, const AttributionBatch& batch, MetricKind metric);

}  // namespace circuitscope
