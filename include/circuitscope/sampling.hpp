// Next-token choice from logits, with Hugging Face's filter order: temperature, top-k, top-p, min-p.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "circuitscope/generate.hpp"

namespace circuitscope {

// logits [B,V] (any float dtype, CPU); returns ids [B] int64.
at::Tensor sample_next_tokens(const at::Tensor& logits, const SamplingOptions& s, at::Generator& gen);
at::Generator make_cpu_generator(uint64_t seed);

}  // namespace circuitscope
