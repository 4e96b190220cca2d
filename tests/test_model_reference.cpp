// The hooked transformer against the Hugging Face reference outputs (tests/data/hf-tiny).
#include <c10/core/GradMode.h>

#include "circuitscope/generate.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/safetensors.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
constexpr double kLogitTol = 1e-4;    // from the fixtures' README
constexpr double kPatternTol = 1e-4;
constexpr double kHiddenTol = 5e-4;
}  // namespace

TEST_CASE("forward matches Hugging Face on every sample", "[model][reference]") {
  c10::AutoGradMode no_grad(false);
  for (const std::string name : {"qwen2-tiny", "llama-tiny"}) {
    const std::string dir = cs_test::data_dir() + "/hf-tiny/" + name;
    auto model = HookedTransformer::from_pretrained(dir, {"f32", cs_test::device()});
    TensorStore ref = TensorStore::open_file(dir + "/reference.safetensors");
    const int64_t L = model->config().n_layers;
    for (const std::string sample : {"seq0", "seq1", "seq2", "batch"}) {
      SECTION(name + "/" + sample) {
        ActivationCache cache;
        auto handle = cache.attach(model->hooks(), {"hook_embed", "blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern",
                                                    "ln_final.hook_normalized"});
        at::Tensor ids = ref.load(sample + ".input_ids");
        at::Tensor logits = model->forward(ids);
        cs_test::require_close(logits, ref.load(sample + ".logits"), kLogitTol, 0, name + " " + sample + " logits");
        cs_test::require_close(cache.at("hook_embed"), ref.load(sample + ".hidden.0"), kHiddenTol, 0, "hidden.0");
        for (int64_t l = 0; l + 1 < L; ++l)
          cs_test::require_close(cache.at("blocks." + std::to_string(l) + ".hook_resid_post"),
                                 ref.load(sample + ".hidden." + std::to_string(l + 1)), kHiddenTol, 0,
                                 "hidden." + std::to_string(l + 1));
        cs_test::require_close(cache.at("blocks." + std::to_string(L - 1) + ".hook_resid_post"),
                               ref.load(sample + ".final_prenorm"), kHiddenTol, 0, "final_prenorm");
        cs_test::require_close(cache.at("ln_final.hook_normalized"), ref.load(sample + ".hidden." + std::to_string(L)),
                               kHiddenTol, 0, "hidden.n (after final norm)");
        for (int64_t l = 0; l < L; ++l)
          cs_test::require_close(cache.at("blocks." + std::to_string(l) + ".attn.hook_pattern"),
                                 ref.load(sample + ".attn." + std::to_string(l)), kPatternTol, 0,
                                 "attn." + std::to_string(l));
      }
    }
  }
}

TEST_CASE("RoPE tables match Hugging Face", "[model][reference]") {
  for (const std::string name : {"qwen2-tiny", "llama-tiny"}) {
    const std::string dir = cs_test::data_dir() + "/hf-tiny/" + name;
    TensorStore ref = TensorStore::open_file(dir + "/reference.safetensors");
    ModelConfig cfg = load_config(dir);
    at::Tensor inv = rope_inv_freq(cfg);
    cs_test::require_close(inv, ref.load("rope.inv_freq"), 1e-7, 1e-6, name + " inv_freq");
    at::Tensor pos = at::arange(64, at::kFloat).unsqueeze(-1);
    at::Tensor emb = at::cat({pos * inv, pos * inv}, -1);
    cs_test::require_close(emb.cos(), ref.load("rope.cos"), 1e-6, 0, name + " cos");
    cs_test::require_close(emb.sin(), ref.load("rope.sin"), 1e-6, 0, name + " sin");
  }
}

TEST_CASE("greedy generation with KV cache matches Hugging Face", "[model][reference][generate]") {
  for (const std::string name : {"qwen2-tiny", "llama-tiny"}) {
    const std::string dir = cs_test::data_dir() + "/hf-tiny/" + name;
    auto model = HookedTransformer::from_pretrained(dir, {"f32", cs_test::device()});
    TensorStore ref = TensorStore::open_file(dir + "/reference.safetensors");
    at::Tensor expect = ref.load("seq0.greedy_ids").view(-1);
    at::Tensor prompt_t = ref.load("seq0.input_ids").view(-1);
    std::vector<int64_t> prompt(prompt_t.data_ptr<int64_t>(), prompt_t.data_ptr<int64_t>() + prompt_t.numel());
    GenerateOptions opts;
    opts.max_new_tokens = expect.numel() - static_cast<int64_t>(prompt.size());
    opts.eos_ids = model->config().eos_token_ids;
    GenerateResult r = generate(*model, {prompt}, opts);
    std::vector<int64_t> got = prompt;
    got.insert(got.end(), r.tokens[0].begin(), r.tokens[0].end());
    std::vector<int64_t> want(expect.data_ptr<int64_t>(), expect.data_ptr<int64_t>() + expect.numel());
    INFO(name);
    REQUIRE(got == want);
  }
}
