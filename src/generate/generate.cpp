#include "circuitscope/generate.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <algorithm>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/sampling.hpp"

namespace circuitscope {

at::Generator make_cpu_generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

at::Tensor sample_next_tokens(const at::Tensor& logits_in, const SamplingOptions& s, at::Generator& gen) {
  at::Tensor logits = logits_in.to(at::kCPU, at::kFloat);
  if (s.greedy) return logits.argmax(-1);
  if (s.temperature <= 0) throw Error(ErrorCode::kUsage, "temperature must be positive for sampling");
  logits = logits / s.temperature;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  const int64_t V = logits.size(-1);
  if (s.top_k > 0 && s.top_k < V) {
    at::Tensor kth = std::get<0>(logits.topk(s.top_k, -1)).narrow(-1, s.top_k - 1, 1);
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (s.top_p < 1.0) {
    auto [sorted, idx] = logits.sort(-1, /*descending=*/false);
    at::Tensor cum = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove_sorted = cum <= (1.0 - s.top_p);
    remove_sorted.narrow(-1, V - 1, 1).fill_(false);  // always keep the best token
    at::Tensor remove = remove_sorted.scatter(-1, idx, remove_sorted);
    logits = logits.masked_fill(remove, neg_inf);
  }
  if (s.min_p > 0.0) {
    at::Tensor probs = logits.softmax(-1);
    at::Tensor top = std::get<0>(probs.max(-1, true));
    logits = logits.masked_fill(probs < top * s.min_p, neg_inf);
  }
  at::Tensor probs = logits.softmax(-1);
  return at::multinomial(probs, 1, false, gen).squeeze(-1);
}

GenerateResult generate(HookedTransformer& model, const std::vector<std::vector<int64_t>>& prompts,
                        const GenerateOptions& opts) {
  c10::AutoGradMode no_grad(false);
  if (prompts.empty()) throw Error(ErrorCode::kUsage, "generate: no prompts");
  if (opts.max_new_tokens < 0) throw Error(ErrorCode::kUsage, "max_new_tokens must be >= 0");
  if (!opts.stop_strings.empty() && !opts.decode)
    throw Error(ErrorCode::kUsage, "stop strings need a tokenizer to decode text");
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t Tmax = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw Error(ErrorCode::kInput, "prompt " + std::to_string(i) + " is empty");
    Tmax = std::max<int64_t>(Tmax, prompts[i].size());
  }
  // Left padding: every row's last prompt token sits at column Tmax-1.
  at::Tensor ids = at::full({B, Tmax}, opts.pad_id, at::kLong);
  at::Tensor mask = at::zeros({B, Tmax + opts.max_new_tokens}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    for (int64_t t = 0; t < n; ++t) ids[b][Tmax - n + t] = prompts[b][t];
    mask[b].narrow(0, Tmax - n, n).fill_(1);
  }
  const bool padded = std::any_of(prompts.begin(), prompts.end(), [&](const auto& p) { return (int64_t)p.size() != Tmax; });

  if (!opts.row_seeds.empty() && static_cast<int64_t>(opts.row_seeds.size()) != B)
    throw Error(ErrorCode::kInternal, "generate: " + std::to_string(opts.row_seeds.size()) + " row seeds for " +
                                          std::to_string(B) + " prompts");
  at::Generator gen = make_cpu_generator(opts.sampling.seed);
  std::vector<at::Generator> row_gens;
  for (uint64_t s : opts.row_seeds) row_gens.push_back(make_cpu_generator(s));
  KVCache cache = model.make_cache(B, Tmax + std::max<int64_t>(opts.max_new_tokens, 1));
  GenerateResult res;
  res.tokens.assign(B, {});
  res.finish_reasons.assign(B, "length");
  std::vector<bool> done(B, false);
  at::Tensor step_ids = ids;
  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    const int64_t S = cache.length + step_ids.size(1);
    at::Tensor m = padded ? mask.narrow(1, 0, S) : at::Tensor();
    at::Tensor logits = model.forward(step_ids, m, &cache);  // [B,T,V]
    at::Tensor last = logits.select(1, logits.size(1) - 1).to(at::kCPU, at::kFloat);
    at::Tensor next;  // [B]
    if (row_gens.empty() || opts.sampling.greedy) {
      next = sample_next_tokens(last, opts.sampling, gen);
    } else {
      next = at::full({B}, opts.pad_id, at::kLong);
      for (int64_t b = 0; b < B; ++b)
        if (!done[b]) next[b] = sample_next_tokens(last.narrow(0, b, 1), opts.sampling, row_gens[b])[0];
    }
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) {
        next[b] = opts.pad_id;
        continue;
      }
      const int64_t tok = next[b].item<int64_t>();
      res.tokens[b].push_back(tok);
      if (std::find(opts.eos_ids.begin(), opts.eos_ids.end(), tok) != opts.eos_ids.end()) {
        done[b] = true;
        res.finish_reasons[b] = "eos";
      } else if (!opts.stop_strings.empty()) {
        const std::string text = opts.decode(res.tokens[b]);
        for (const auto& s : opts.stop_strings)
          if (!s.empty() && text.find(s) != std::string::npos) {
            done[b] = true;
            res.finish_reasons[b] = "stop_string";
          }
      }
    }
    // Finished rows keep running (the batch shape stays fixed); their outputs are discarded.
    for (int64_t b = 0; b < B; ++b) mask[b][S] = 1;
    if (opts.on_step) opts.on_step(step + 1, opts.max_new_tokens);
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    step_ids = next.view({B, 1});
  }
  return res;
}

}  // namespace circuitscope
