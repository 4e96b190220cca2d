// Shared attribution test data.
#pragma once
#include <ATen/ATen.h>

#include "circuitscope/eap.hpp"

namespace cs_test {

// Two pairs that differ in a few tokens, as a name-swap dataset would.
inline circuitscope::AttributionBatch make_batch() {
  circuitscope::AttributionBatch b;
  b.clean_ids = at::tensor({5, 17, 300, 42, 7, 99, 256, 3, 11, 400, 23, 8, 77, 150, 61, 9}, at::kLong).view({2, 8});
  b.corrupted_ids = b.clean_ids.clone();
  b.corrupted_ids[0][2] = 301;
  b.corrupted_ids[0][5] = 12;
  b.corrupted_ids[1][1] = 402;
  b.corrupted_ids[1][4] = 90;
  b.answer_ids = at::tensor({300, 400}, at::kLong);
  b.wrong_ids = at::tensor({301, 402}, at::kLong);
  return b;
}

}  // namespace cs_test
