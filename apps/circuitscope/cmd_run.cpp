// circuitscope run MODEL_DIR (--ids 5,17,300 | --text "..." | --chat "...") --out OUT.safetensors [--hooks PATTERN ...]
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "circuitscope/error.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/safetensors.hpp"
#include "command.hpp"
#include "prompts.hpp"

namespace circuitscope::app {
namespace {

struct RunOptions {
  CommonModelOptions model;
  PromptOptions prompts;
  std::string out;
  std::vector<std::string> hooks;
};

int run_run(const RunOptions& o) {
  c10::AutoGradMode no_grad(false);
  auto model = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const Prompts prompts = collect_prompts(o.prompts, o.model.model_dir);
  const Batch batch = left_pad(prompts.ids, 0);
  ActivationCache cache;
  HookHandle handle;
  if (!o.hooks.empty()) handle = cache.attach(model->hooks(), o.hooks, /*detach=*/true, /*to_cpu=*/true);
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor logits = model->forward(batch.ids, batch.padded ? batch.mask : at::Tensor());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("logits", logits.to(at::kCPU, at::kFloat));
  out.emplace_back("input_ids", batch.ids);
  out.emplace_back("attention_mask", batch.mask);
  for (const auto& [name, t] : cache.values()) out.emplace_back(name, t.to(at::kFloat));
  write_safetensors(o.out, out,
                    {{"model", o.model.model_dir}, {"fingerprint", model->fingerprint()}, {"dtype", o.model.dtype},
                     {"padding", "left"}, {"tool", tool_name()}});
  spdlog::info("{} prompt(s), {} positions: forward {:.3f} s; wrote logits and {} hook tensor(s) to {}", prompts.ids.size(),
               batch.ids.size(1), secs, cache.values().size(), o.out);
  return 0;
}

CommandRegistrar reg_cmd_run({"run", "Run a forward pass; save logits and cached hook activations to a safetensors file",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<RunOptions>();
                        add_model_options(sub, o->model);
                        add_prompt_options(sub, o->prompts);
                        sub->add_option("--out", o->out, "output .safetensors file")->required();
                        sub->add_option("--hooks", o->hooks,
                                        "hook names or glob patterns to cache, e.g. 'blocks.*.hook_resid_post'");
                        sub->footer(
                            "Prompts of different lengths are left-padded; 'attention_mask' in the output marks real "
                            "tokens. Values are stored as float32.");
                        return [o] { return run_run(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
