#include "sampling_options.hpp"

#include "circuitscope/error.hpp"

namespace circuitscope::app {

void add_sampling_options(CLI::App* sub, SamplingCli& o, const std::string& seed_help) {
  sub->add_flag("--greedy", o.greedy, "greedy decoding (the default when no sampling option is set)");
  sub->add_option("--temperature", o.temperature, "sampling temperature (> 0 enables sampling)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o.top_p, "nucleus sampling threshold")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--top-k", o.top_k, "keep the k most likely tokens")->check(CLI::NonNegativeNumber);
  sub->add_option("--min-p", o.min_p, "drop tokens below min_p x the top probability")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", o.seed, seed_help);
}

SamplingOptions sampling_options(const SamplingCli& o) {
  const bool any = o.temperature > 0 || o.top_p < 1.0 || o.top_k > 0 || o.min_p > 0;
  if (o.greedy && any)
    throw Error(ErrorCode::kUsage, "--greedy cannot be combined with --temperature/--top-p/--top-k/--min-p");
  SamplingOptions s;
  s.greedy = !any;
  s.temperature = o.temperature > 0 ? o.temperature : 1.0;
  s.top_p = o.top_p;
  s.top_k = o.top_k;
  s.min_p = o.min_p;
  s.seed = o.seed;
  return s;
}

}  // namespace circuitscope::app
