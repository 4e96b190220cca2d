// circuitscope generate MODEL_DIR (--ids ... | --text ... | --chat ...) --max-new-tokens N [--greedy | --temperature T --top-p P --seed S]
#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/generate.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "command.hpp"
#include "prompts.hpp"
#include "sampling_options.hpp"

namespace circuitscope::app {
namespace {

struct GenOptions {
  CommonModelOptions model;
  PromptOptions prompts;
  int64_t max_new_tokens = 32;
  SamplingCli sampling;
  std::vector<std::string> ablate;
  std::vector<std::string> scale;
  bool json = false;
  bool ids_only = false;
  bool skip_special_tokens = false;
  std::vector<std::string> stop;
};

int run_generate(const GenOptions& o) {
  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const Prompts prompts = collect_prompts(o.prompts, o.model.model_dir, /*need_tokenizer=*/true);
  GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.eos_ids = model->config().eos_token_ids;
  if (prompts.tokenizer) {
    auto tok = prompts.tokenizer;
    g.decode = [tok](const std::vector<int64_t>& ids) { return tok->decode(ids, /*skip_special_tokens=*/false); };
  }
  g.stop_strings = o.stop;
  if (!g.stop_strings.empty() && !prompts.tokenizer)
    throw Error(ErrorCode::kUsage, "--stop needs a tokenizer (tokenizer.json or tokenizer.model) in the model folder");
  g.sampling = sampling_options(o.sampling);
  const bool sampling = !g.sampling.greedy;
  std::vector<HeadIntervention> edits;
  for (const auto& s : o.ablate) {
    HeadIntervention h = parse_head_intervention(s);
    if (s.find_first_of("=:") != std::string::npos) throw Error(ErrorCode::kUsage, "--ablate-head takes LAYER.HEAD");
    edits.push_back(h);
  }
  for (const auto& s : o.scale) {
    if (s.find_first_of("=:") == std::string::npos) throw Error(ErrorCode::kUsage, "--scale-head takes LAYER.HEAD=FACTOR");
    edits.push_back(parse_head_intervention(s));
  }
  auto handles = apply_head_interventions(model->hooks(), edits, model->config().n_heads);
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult r = generate(*model, prompts.ids, g);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t n_new = 0;
  for (const auto& t : r.tokens) n_new += static_cast<int64_t>(t.size());
  spdlog::info("generated {} token(s) for {} prompt(s) in {:.2f} s ({:.1f} tokens/s, {})", n_new, prompts.ids.size(),
               secs, secs > 0 ? n_new / secs : 0.0, sampling ? "sampled" : "greedy");
  for (size_t i = 0; i < prompts.ids.size(); ++i) {
    const std::string text = prompts.tokenizer ? prompts.tokenizer->decode(r.tokens[i], o.skip_special_tokens) : "";
    if (o.json) {
      nlohmann::json j = {{"prompt_ids", prompts.ids[i]}, {"ids", r.tokens[i]}, {"finish_reason", r.finish_reasons[i]}};
      if (prompts.tokenizer) j["text"] = text;
      if (!prompts.rendered[i].empty()) j["prompt"] = prompts.rendered[i];
      std::cout << j.dump() << "\n";
    } else if (prompts.tokenizer && !o.ids_only) {
      if (prompts.ids.size() > 1) std::cout << "### prompt " << i << " (" << r.finish_reasons[i] << ")\n";
      std::cout << text << "\n";
    } else {
      for (size_t k = 0; k < r.tokens[i].size(); ++k) std::cout << (k ? "," : "") << r.tokens[i][k];
      std::cout << "\n";
    }
  }
  return 0;
}

CommandRegistrar reg_cmd_generate({"generate", "Generate continuations (greedy or sampled) with a KV cache",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<GenOptions>();
                        add_model_options(sub, o->model);
                        add_prompt_options(sub, o->prompts);
                        sub->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate per prompt")
                            ->check(CLI::NonNegativeNumber);
                        add_sampling_options(sub, o->sampling);
                        sub->add_option("--ablate-head", o->ablate, "zero a head's output during generation: LAYER.HEAD");
                        sub->add_option("--scale-head", o->scale, "scale a head's output: LAYER.HEAD=FACTOR (e.g. 3.1=1.3)");
                        sub->add_option("--stop", o->stop, "stop a prompt once its generated text contains this string");
                        sub->add_flag("--json", o->json, "one JSON object per prompt (ids, text, finish_reason)");
                        sub->add_flag("--ids-only", o->ids_only, "print ids even when a tokenizer is available");
                        sub->add_flag("--skip-special-tokens", o->skip_special_tokens, "leave special tokens out of the text");
                        sub->footer("Prints the generated text of each prompt when the model folder has a tokenizer, "
                                    "else the new token ids, one line per prompt. Stops at the config's EOS ids.");
                        return [o] { return run_generate(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
