// GRPO's advantage and loss arithmetic (pure functions, checked by hand in the tests).
#include <ATen/ATen.h>

#include <cmath>

#include "circuitscope/error.hpp"
#include "circuitscope/toy.hpp"

namespace circuitscope::toy {

std::vector<double> group_advantages(const std::vector<double>& rewards, int64_t group_size, double eps) {
  if (group_size < 2) throw Error(ErrorCode::kUsage, "GRPO needs a group size of at least 2; found " + std::to_string(group_size));
  if (rewards.size() % static_cast<size_t>(group_size) != 0)
    throw Error(ErrorCode::kInternal, std::to_string(rewards.size()) + " rewards do not split into groups of " +
                                          std::to_string(group_size));
  std::vector<double> adv(rewards.size());
  for (size_t g = 0; g < rewards.size(); g += group_size) {
    double mean = 0;
    for (int64_t i = 0; i < group_size; ++i) mean += rewards[g + i];
    mean /= static_cast<double>(group_size);
    double var = 0;
    for (int64_t i = 0; i < group_size; ++i) var += (rewards[g + i] - mean) * (rewards[g + i] - mean);
    const double std = std::sqrt(var / static_cast<double>(group_size - 1));
    for (int64_t i = 0; i < group_size; ++i) adv[g + i] = (rewards[g + i] - mean) / (std + eps);
  }
  return adv;
}

GrpoLossParts grpo_loss(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                        const at::Tensor& advantages, const at::Tensor& mask_in, double clip_eps, double beta) {
  if (logp.dim() != 2 || old_logp.sizes() != logp.sizes() || ref_logp.sizes() != logp.sizes() ||
      mask_in.sizes() != logp.sizes() || advantages.dim() != 1 || advantages.size(0) != logp.size(0))
    throw Error(ErrorCode::kInternal, "grpo_loss: expected logp/old/ref/mask [N,T] and advantages [N]; found logp " +
                                          shape_str(logp.sizes()) + ", advantages " + shape_str(advantages.sizes()));
  const at::Tensor mask = mask_in.to(logp.scalar_type());
  const at::Tensor adv = advantages.to(logp.scalar_type()).unsqueeze(1);
  const at::Tensor ratio = at::exp(logp - old_logp.detach());
  const at::Tensor unclipped = ratio * adv;
  const at::Tensor clipped = at::clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv;
  const at::Tensor policy = -at::min(unclipped, clipped);
  const at::Tensor d = ref_logp.detach() - logp;
  const at::Tensor kl = at::exp(d) - d - 1.0;
  const at::Tensor per_token = policy + beta * kl;
  const at::Tensor lengths = mask.sum(1).clamp_min(1.0);
  auto seq_mean = [&](const at::Tensor& x) { return ((x * mask).sum(1) / lengths).mean(); };
  GrpoLossParts out;
  out.loss = seq_mean(per_token);
  const double n_tokens = mask.sum().item<double>();
  if (n_tokens > 0) {
    out.kl = ((kl * mask).sum() / n_tokens).item<double>();
    const at::Tensor was_clipped = (ratio < 1.0 - clip_eps).logical_and(adv < 0).logical_or((ratio > 1.0 + clip_eps).logical_and(adv > 0));
    out.clip_fraction = ((was_clipped.to(mask.scalar_type()) * mask).sum() / n_tokens).item<double>();
  }
  out.policy_loss = seq_mean(policy).item<double>();
  return out;
}

}  // namespace circuitscope::toy
