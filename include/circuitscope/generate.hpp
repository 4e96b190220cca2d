// Incremental decoding with a KV cache: greedy or sampled, batched with left padding.
// Write hooks attached to the model stay active during generation (ablation experiments).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace circuitscope {

class HookedTransformer;

struct SamplingOptions {
  bool greedy = true;
  double temperature = 1.0;
  int64_t top_k = 0;    // 0: off
  double top_p = 1.0;   // 1: off
  double min_p = 0.0;   // 0: off
  uint64_t seed = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  std::vector<int64_t> eos_ids;            // stop when one is produced (it is kept in the output)
  std::vector<std::string> stop_strings;   // checked on decoded text, needs `decode`
  std::function<std::string(const std::vector<int64_t>&)> decode;
  int64_t pad_id = 0;                      // value put in padded slots (masked out)
  // One seed per prompt: each row samples from its own generator, so a row's tokens do not depend
  // on which other rows share its batch (eval's paired conditions and shards). Empty: one
  // generator seeded with sampling.seed draws for the whole batch.
  std::vector<uint64_t> row_seeds;
  std::function<void(int64_t step, int64_t total)> on_step;  // progress
};

struct GenerateResult {
  std::vector<std::vector<int64_t>> tokens;  // new tokens per prompt
  std::vector<std::string> finish_reasons;   // "eos" | "stop_string" | "length"
};

GenerateResult generate(HookedTransformer& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& opts);

}  // namespace circuitscope
