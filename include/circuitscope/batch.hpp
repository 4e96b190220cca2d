// A batch of clean/corrupted pairs as tensors: what attribution, patching and faithfulness run on.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <vector>

#include "circuitscope/dataset.hpp"

namespace circuitscope {

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

// Examples [begin, end) as one right-padded batch (pad id 0; attention_mask and corrupted_mask mark
// each run's real tokens; positions = the last clean token; target_ids/target_mask filled when the
// examples have clean continuations).
AttributionBatch make_attribution_batch(const std::vector<PairExample>& examples, size_t begin, size_t end);

}  // namespace circuitscope
