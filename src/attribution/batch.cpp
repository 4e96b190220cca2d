#include "circuitscope/batch.hpp"

#include <ATen/ATen.h>

#include <algorithm>

#include "circuitscope/error.hpp"

namespace circuitscope {

AttributionBatch make_attribution_batch(const std::vector<PairExample>& examples, size_t begin, size_t end) {
  if (begin >= end || end > examples.size())
    throw Error(ErrorCode::kInternal, "make_attribution_batch: bad range [" + std::to_string(begin) + "," + std::to_string(end) + ")");
  const int64_t B = static_cast<int64_t>(end - begin);
  int64_t T = 0;
  bool seq = false;
  for (size_t i = begin; i < end; ++i) {
    T = std::max<int64_t>(T, static_cast<int64_t>(std::max(examples[i].clean_ids.size(), examples[i].corrupted_ids.size())));
    seq = seq || examples[i].n_supervised > 0;
  }
  AttributionBatch b;
  b.clean_ids = at::zeros({B, T}, at::kLong);
  b.corrupted_ids = at::zeros({B, T}, at::kLong);
  b.attention_mask = at::zeros({B, T}, at::kLong);
  b.corrupted_mask = at::zeros({B, T}, at::kLong);
  b.answer_ids = at::empty({B}, at::kLong);
  b.wrong_ids = at::empty({B}, at::kLong);
  b.positions = at::empty({B}, at::kLong);
  if (seq) {
    b.target_ids = at::zeros({B, T}, at::kLong);
    b.target_mask = at::zeros({B, T}, at::kLong);
  }
  auto fill = [&](const std::vector<int64_t>& src, at::Tensor& ids, at::Tensor& mask, int64_t r) {
    auto a = ids.accessor<int64_t, 2>();
    auto m = mask.accessor<int64_t, 2>();
    for (size_t t = 0; t < src.size(); ++t) {
      a[r][t] = src[t];
      m[r][t] = 1;
    }
  };
  for (int64_t r = 0; r < B; ++r) {
    const PairExample& ex = examples[begin + r];
    const int64_t n = static_cast<int64_t>(ex.clean_ids.size());
    if (n == 0 || ex.corrupted_ids.empty())
      throw Error(ErrorCode::kInput, "example from line " + std::to_string(ex.line) + " has an empty clean or corrupted side");
    fill(ex.clean_ids, b.clean_ids, b.attention_mask, r);
    fill(ex.corrupted_ids, b.corrupted_ids, b.corrupted_mask, r);
    b.answer_ids[r] = ex.answer_id;
    b.wrong_ids[r] = ex.wrong_id;
    b.positions[r] = n - 1;
    if (ex.n_supervised > 0) {
      if (ex.n_supervised >= n)
        throw Error(ErrorCode::kInput, "example from line " + std::to_string(ex.line) + ": " + std::to_string(ex.n_supervised) +
                                           " supervised tokens need a prompt before them; it has " + std::to_string(n) + " tokens");
      auto tid = b.target_ids.accessor<int64_t, 2>();
      auto tm = b.target_mask.accessor<int64_t, 2>();
      // Token t (t >= n - n_supervised) is predicted at position t - 1.
      for (int64_t t = n - ex.n_supervised; t < n; ++t) {
        tid[r][t - 1] = ex.clean_ids[t];
        tm[r][t - 1] = 1;
      }
    }
  }
  return b;
}

}  // namespace circuitscope
