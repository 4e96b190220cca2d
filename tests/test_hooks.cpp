// Hook points: naming, caches, scoped write hooks, head slices, gradients, split inputs, generation.
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <map>

#include "circuitscope/error.hpp"
#include "circuitscope/generate.hpp"
#include "circuitscope/hooks.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/sampling.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {
at::Tensor sample_ids() { return at::tensor({5, 17, 300, 42, 7, 99, 256, 3}, at::kLong).view({1, 8}); }
}  // namespace

TEST_CASE("hook names follow TransformerLens and globs select them", "[hooks]") {
  HookManager m(4);
  REQUIRE(m.find("hook_embed").has_value());
  REQUIRE(m.find("ln_final.hook_normalized").has_value());
  for (const char* n : {"blocks.3.attn.hook_z", "blocks.0.attn.hook_q", "blocks.0.attn.hook_rot_k", "blocks.2.attn.hook_pattern",
                        "blocks.1.attn.hook_attn_scores", "blocks.1.attn.hook_result", "blocks.0.hook_resid_pre",
                        "blocks.0.hook_mlp_in", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out",
                        "blocks.3.hook_resid_post", "blocks.0.hook_resid_mid", "blocks.0.hook_attn_out", "blocks.0.hook_q_input",
                        "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.attn.hook_rot_q"}) {
    INFO(n);
    REQUIRE(m.find(n).has_value());
  }
  REQUIRE_FALSE(m.find("blocks.4.attn.hook_z").has_value());
  REQUIRE(m.match("blocks.*.hook_resid_post").size() == 4);
  REQUIRE(m.match("blocks.1.attn.hook_?").size() == 4);  // q, k, v, z
  REQUIRE_THROWS_AS(m.match("blocks.*.no_such_hook"), Error);
  REQUIRE(glob_match("a*b*c", "axxbyyc"));
  REQUIRE_FALSE(glob_match("a*b", "axxbc"));
}

TEST_CASE("activation shapes at every hook point", "[hooks]") {
  c10::AutoGradMode no_grad(false);
  auto m = cs_test::load_model("hf-ref/qwen3-tiny");  // H=4, K=2, Dh=32 != D/H, so shapes tell the dims apart
  ActivationCache cache;
  auto h = cache.attach(m->hooks(), {"*"});
  (void)m->forward(sample_ids());
  const int64_t B = 1, T = 8, D = 64, H = 4, K = 2, Dh = 32, M = 128;
  using V = std::vector<int64_t>;
  REQUIRE(cache.at("hook_embed").sizes().vec() == V{B, T, D});
  REQUIRE(cache.at("blocks.1.attn.hook_q").sizes().vec() == V{B, T, H, Dh});
  REQUIRE(cache.at("blocks.1.attn.hook_k").sizes().vec() == V{B, T, K, Dh});
  REQUIRE(cache.at("blocks.1.attn.hook_v").sizes().vec() == V{B, T, K, Dh});
  REQUIRE(cache.at("blocks.1.attn.hook_rot_q").sizes().vec() == V{B, T, H, Dh});
  REQUIRE(cache.at("blocks.1.attn.hook_rot_k").sizes().vec() == V{B, T, K, Dh});
  REQUIRE(cache.at("blocks.1.attn.hook_attn_scores").sizes().vec() == V{B, H, T, T});
  REQUIRE(cache.at("blocks.1.attn.hook_pattern").sizes().vec() == V{B, H, T, T});
  REQUIRE(cache.at("blocks.1.attn.hook_z").sizes().vec() == V{B, T, H, Dh});
  REQUIRE(cache.at("blocks.1.attn.hook_result").sizes().vec() == V{B, T, H, D});
  REQUIRE(cache.at("blocks.1.hook_q_input").sizes().vec() == V{B, T, H, D});
  REQUIRE(cache.at("blocks.1.hook_k_input").sizes().vec() == V{B, T, K, D});
  REQUIRE(cache.at("blocks.1.mlp.hook_post").sizes().vec() == V{B, T, M});
  REQUIRE(cache.at("blocks.2.hook_resid_post").sizes().vec() == V{B, T, D});
  // resid_post of layer l feeds resid_pre of layer l+1 unchanged.
  REQUIRE(at::equal(cache.at("blocks.0.hook_resid_post"), cache.at("blocks.1.hook_resid_pre")));
  // Per-head results add up to the attention output (o_proj has no bias here).
  cs_test::require_close(cache.at("blocks.1.attn.hook_result").sum(2), cache.at("blocks.1.hook_attn_out"), 1e-5, 1e-5,
                         "sum of hook_result vs hook_attn_out");
  // Masked scores: the future is never attended to.
  REQUIRE(cache.at("blocks.0.attn.hook_pattern")[0][0][0].narrow(0, 1, T - 1).abs().max().item<float>() == 0.0f);
}

TEST_CASE("head_results_into turns hook_z into hook_result", "[hooks]") {
  c10::AutoGradMode no_grad(false);
  auto m = cs_test::load_model("hf-ref/qwen3-tiny");  // Dh = 32 != D/H = 16
  ActivationCache cache;
  auto h = cache.attach(m->hooks(), {"blocks.*.attn.hook_z", "blocks.*.attn.hook_result"});
  at::Tensor ids = at::cat({sample_ids(), sample_ids().flip(1)}, 0);  // [2,8]
  (void)m->forward(ids);
  const int64_t H = 4, D = 64;
  for (int l = 0; l < 3; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".attn.";
    at::Tensor out = at::empty({H, 2, 8, D});
    m->head_results_into(l, cache.at(p + "hook_z"), out);
    cs_test::require_close(out.permute({1, 2, 0, 3}), cache.at(p + "hook_result"), 1e-5, 1e-5, p + "hook_result from hook_z");
  }
  at::Tensor out = at::empty({H, 2, 8, D});
  REQUIRE_THROWS_AS(m->head_results_into(0, cache.at("blocks.0.attn.hook_result"), out), Error);  // not [B,T,H,Dh]
  at::Tensor small = at::empty({H, 2, 7, D});
  REQUIRE_THROWS_AS(m->head_results_into(0, cache.at("blocks.0.attn.hook_z"), small), Error);
  REQUIRE_THROWS_AS(m->head_results_into(3, cache.at("blocks.0.attn.hook_z"), out), Error);
}

TEST_CASE("optional computation paths do not change the outputs", "[hooks]") {
  c10::AutoGradMode no_grad(false);
  auto m = cs_test::load_model("hf-ref/qwen3-tiny");
  at::Tensor base = m->forward(sample_ids());
  auto identity = [](const at::Tensor& x, const HookContext&) { return x; };
  SECTION("per-head result") {
    auto h = m->hooks().add("blocks.*.attn.hook_result", identity);
    cs_test::require_close(m->forward(sample_ids()), base, 1e-5, 1e-5, "logits with hook_result active");
  }
  SECTION("split q/k/v inputs") {
    auto h = m->hooks().add("blocks.*.hook_?_input", identity);
    cs_test::require_close(m->forward(sample_ids()), base, 1e-5, 1e-5, "logits with split inputs");
  }
  SECTION("hook_mlp_in and hook_attn_in") {
    auto h = m->hooks().add("blocks.*.hook_mlp_in", identity);
    auto h2 = m->hooks().add("blocks.*.hook_attn_in", identity);
    REQUIRE(at::equal(m->forward(sample_ids()), base));
  }
}

TEST_CASE("write hooks are scoped and edit exactly the requested slice", "[hooks]") {
  c10::AutoGradMode no_grad(false);
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  at::Tensor base = m->forward(sample_ids());
  {
    auto h = m->hooks().add("blocks.1.attn.hook_z", scale_hook(0.0, 2));
    ActivationCache cache;  // attached after the edit, so it sees the edited value
    auto hc = cache.attach(m->hooks(), {"blocks.1.attn.hook_z"});
    at::Tensor edited = m->forward(sample_ids());
    REQUIRE_FALSE(at::allclose(edited, base));
    at::Tensor z = cache.at("blocks.1.attn.hook_z");
    REQUIRE(z.select(2, 2).abs().max().item<float>() == 0.0f);
    REQUIRE(z.select(2, 1).abs().max().item<float>() > 0.0f);
  }
  // Handle gone: the model is back to normal.
  REQUIRE(at::equal(m->forward(sample_ids()), base));

  SECTION("scaling a head by 1 changes nothing; replace with its own value changes nothing") {
    ActivationCache cache;
    {
      auto hc = cache.attach(m->hooks(), {"blocks.2.attn.hook_z"});
      m->forward(sample_ids());
    }
    at::Tensor z = cache.at("blocks.2.attn.hook_z");
    auto h1 = m->hooks().add("blocks.2.attn.hook_z", scale_hook(1.0, 0));
    auto h2 = m->hooks().add("blocks.2.attn.hook_z", replace_hook(z.select(2, 3), 3));
    cs_test::require_close(m->forward(sample_ids()), base, 1e-6, 0, "identity edits");
  }
  SECTION("add on a head equals the same delta on the full tensor restricted to that head") {
    at::Tensor delta = at::randn({1, 8, 16});
    at::Tensor a, b;
    {
      auto h = m->hooks().add("blocks.0.attn.hook_z", add_hook(delta, 1));
      a = m->forward(sample_ids());
    }
    {
      at::Tensor full = at::zeros({1, 8, 4, 16});
      full.select(2, 1).copy_(delta);
      auto h = m->hooks().add("blocks.0.attn.hook_z", add_hook(full));
      b = m->forward(sample_ids());
    }
    cs_test::require_close(a, b, 1e-6, 0, "head add vs full add");
    REQUIRE_FALSE(at::allclose(a, base));
  }
  SECTION("a hook returning the wrong shape is an error") {
    auto h = m->hooks().add("blocks.0.hook_resid_pre", [](const at::Tensor& x, const HookContext&) { return x.narrow(1, 0, 2); });
    REQUIRE_THROWS_AS(m->forward(sample_ids()), Error);
  }
  SECTION("head index out of range") {
    auto h = m->hooks().add("blocks.0.attn.hook_z", scale_hook(0.0, 9));
    REQUIRE_THROWS_AS(m->forward(sample_ids()), Error);
  }
}

TEST_CASE("head interventions parse and apply", "[hooks]") {
  auto e = parse_head_intervention("3.1");
  REQUIRE(e.layer == 3);
  REQUIRE(e.head == 1);
  REQUIRE(e.factor == 0.0);
  auto s = parse_head_intervention("2.0=1.3");
  REQUIRE(s.factor == Approx(1.3));
  REQUIRE_THROWS_AS(parse_head_intervention("3"), Error);
  REQUIRE_THROWS_AS(parse_head_intervention("a.b"), Error);
  REQUIRE_THROWS_AS(parse_head_intervention("1.2=x"), Error);
  HookManager hm(2);
  REQUIRE_THROWS_AS(apply_head_interventions(hm, {HeadIntervention{5, 0, 0.0}}, 4), Error);
  REQUIRE_THROWS_AS(apply_head_interventions(hm, {HeadIntervention{0, 4, 0.0}}, 4), Error);
}

TEST_CASE("gradients flow through hooks and match finite differences", "[hooks][grad]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  const std::string point = "blocks.1.attn.hook_z";
  auto metric = [](const at::Tensor& logits) { return logits[0][7][11] - logits[0][7][23]; };
  ActivationCache cache;
  at::Tensor grad;
  {
    auto h = cache.attach(m->hooks(), {point}, /*detach=*/false);
    at::Tensor z_holder;
    auto g = m->hooks().add(point, [&](const at::Tensor& x, const HookContext&) {
      at::Tensor y = x.detach().clone().set_requires_grad(true);
      z_holder = y;
      return y;
    });
    at::Tensor v = metric(m->forward(sample_ids()));
    v.backward();
    grad = z_holder.grad().clone();
  }
  REQUIRE(grad.abs().sum().item<double>() > 0);
  // Central differences in float32 on three elements of z (all at or before position 7, so all matter).
  c10::AutoGradMode no_grad(false);
  for (const auto& tdd : {std::tuple<int64_t, int64_t, int64_t>{7, 0, 3}, {2, 3, 10}, {5, 1, 0}}) {
    const int64_t t = std::get<0>(tdd), hd = std::get<1>(tdd), d = std::get<2>(tdd);  // clang < 16: no binding captures
    const double eps = 1e-2;
    auto value_with = [&](double delta) {
      at::Tensor add = at::zeros({1, 8, 4, 16});
      add[0][t][hd][d] = delta;
      auto h = m->hooks().add(point, add_hook(add));
      return metric(m->forward(sample_ids())).item<double>();
    };
    const double fd = (value_with(eps) - value_with(-eps)) / (2 * eps);
    const double g = grad[0][t][hd][d].item<double>();
    INFO("position " << t << " head " << hd << " dim " << d << ": autograd " << g << ", finite difference " << fd);
    REQUIRE(std::abs(fd - g) <= 2e-3 + 2e-2 * std::abs(g));
  }
}

TEST_CASE("batched and padded rows equal the same sequences run alone", "[model][invariants]") {
  c10::AutoGradMode no_grad(false);
  for (const std::string rel : {"hf-tiny/qwen2-tiny", "hf-ref/mistral-tiny", "hf-ref/qwen3-tiny"}) {
    INFO(rel);
    auto m = cs_test::load_model(rel);
    at::Tensor a = at::tensor({5, 17, 300, 42, 7, 99, 256, 3, 8, 9, 10, 11}, at::kLong).view({1, 12});
    at::Tensor b = at::tensor({50, 1, 30, 4, 70}, at::kLong).view({1, 5});
    at::Tensor la = m->forward(a), lb = m->forward(b);
    // Left-pad b to length 12 with an attention mask.
    at::Tensor ids = at::zeros({2, 12}, at::kLong);
    ids[0].copy_(a[0]);
    ids[1].narrow(0, 7, 5).copy_(b[0]);
    at::Tensor mask = at::zeros({2, 12}, at::kLong);
    mask[0].fill_(1);
    mask[1].narrow(0, 7, 5).fill_(1);
    at::Tensor lab = m->forward(ids, mask);
    cs_test::require_close(lab[0], la[0], 1e-4, 0, "row 0 of the padded batch");
    cs_test::require_close(lab[1].narrow(0, 7, 5), lb[0], 1e-4, 0, "row 1 (left-padded) of the padded batch");
  }
}

TEST_CASE("logit_positions selects rows of the logits", "[model][invariants]") {
  c10::AutoGradMode no_grad(false);
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  at::Tensor ids = at::cat({sample_ids(), sample_ids().flip(1)}, 0);  // [2,8]
  at::Tensor mask = at::ones({2, 8}, at::kLong);
  mask[1].narrow(0, 6, 2).fill_(0);
  const at::Tensor full = m->forward(ids, mask);  // [2,8,V]
  const at::Tensor pos = at::tensor({7, 0, 3, 5, 2, 2}, at::kLong).view({2, 3});
  const at::Tensor got = m->forward(ids, mask, nullptr, {}, pos);
  REQUIRE(got.sizes() == at::IntArrayRef({2, 3, full.size(2)}));
  for (int b = 0; b < 2; ++b)
    for (int p = 0; p < 3; ++p)
      cs_test::require_close(got[b][p], full[b][pos[b][p].item<int64_t>()], 1e-6, 1e-6,
                             "row " + std::to_string(b) + "," + std::to_string(p));
  REQUIRE_THROWS_AS(m->forward(ids, mask, nullptr, {}, at::tensor({8, 0}, at::kLong).view({2, 1})), Error);
  REQUIRE_THROWS_AS(m->forward(ids, mask, nullptr, {}, at::tensor({1, 2, 3}, at::kLong).view({3, 1})), Error);
}

TEST_CASE("write hooks stay active during generation", "[hooks][generate]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  std::vector<int64_t> prompt{5, 17, 300, 42};
  GenerateOptions o;
  o.max_new_tokens = 6;
  auto base = generate(*m, {prompt}, o);
  int calls = 0;
  std::vector<int64_t> offsets;
  {
    auto counter = m->hooks().add("blocks.0.hook_resid_pre", [&](const at::Tensor& x, const HookContext& c) {
      ++calls;
      offsets.push_back(c.pos_offset);
      return x;
    });
    auto same = generate(*m, {prompt}, o);
    REQUIRE(same.tokens == base.tokens);
  }
  REQUIRE(calls == 6);  // one prefill + five cached steps (the sixth token needs no further forward)
  REQUIRE(offsets == std::vector<int64_t>{0, 4, 5, 6, 7, 8});
  // Ablating every head of every layer must change what is generated.
  std::vector<HeadIntervention> edits;
  for (int64_t l = 0; l < 4; ++l)
    for (int64_t h = 0; h < 4; ++h) edits.push_back({l, h, 0.0});
  {
    auto hs = apply_head_interventions(m->hooks(), edits, 4);
    auto ablated = generate(*m, {prompt}, o);
    REQUIRE(ablated.tokens != base.tokens);
  }
}

TEST_CASE("sampling filters", "[generate][sampling]") {
  at::Generator gen = make_cpu_generator(1);
  auto draw = [&](at::Tensor probs, SamplingOptions s, int n) {
    std::set<int64_t> seen;
    at::Tensor logits = probs.log().view({1, -1});
    for (int i = 0; i < n; ++i) seen.insert(sample_next_tokens(logits, s, gen)[0].item<int64_t>());
    return seen;
  };
  SamplingOptions s;
  s.greedy = false;
  at::Tensor p = at::tensor({0.05, 0.5, 0.3, 0.15}, at::kFloat);
  SECTION("top-k") {
    s.top_k = 2;
    REQUIRE(draw(p, s, 300) == std::set<int64_t>{1, 2});
  }
  SECTION("top-p keeps the smallest set reaching p") {
    s.top_p = 0.7;  // 0.5 alone < 0.7, 0.5 + 0.3 >= 0.7
    REQUIRE(draw(p, s, 300) == std::set<int64_t>{1, 2});
    s.top_p = 0.4;
    REQUIRE(draw(p, s, 100) == std::set<int64_t>{1});
  }
  SECTION("min-p") {
    s.min_p = 0.5;  // threshold 0.25
    REQUIRE(draw(p, s, 300) == std::set<int64_t>{1, 2});
  }
  SECTION("no filter reaches every token") {
    REQUIRE(draw(p, s, 2000).size() == 4);
  }
  SECTION("greedy") {
    SamplingOptions g;
    REQUIRE(draw(p, g, 5) == std::set<int64_t>{1});
  }
}

TEST_CASE("sampled generation is reproducible from its seed", "[generate][sampling]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.sampling.greedy = false;
  o.sampling.temperature = 1.5;
  o.sampling.seed = 42;
  auto a = generate(*m, {{5, 17, 300}, {9, 8}}, o);
  auto b = generate(*m, {{5, 17, 300}, {9, 8}}, o);
  REQUIRE(a.tokens == b.tokens);
  o.sampling.seed = 43;
  auto c = generate(*m, {{5, 17, 300}, {9, 8}}, o);
  REQUIRE(c.tokens != a.tokens);
  // top_k = 1 sampling is greedy.
  GenerateOptions g;
  g.max_new_tokens = 12;
  o.sampling.top_k = 1;
  REQUIRE(generate(*m, {{5, 17, 300}}, o).tokens == generate(*m, {{5, 17, 300}}, g).tokens);
}

TEST_CASE("generation stops at EOS and at stop strings", "[generate]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  GenerateOptions g;
  g.max_new_tokens = 10;
  auto free_run = generate(*m, {{5, 17, 300}}, g);
  REQUIRE(free_run.tokens[0].size() == 10);
  // Declare the third generated token an EOS: generation must stop right after it.
  g.eos_ids = {free_run.tokens[0][2]};
  auto r = generate(*m, {{5, 17, 300}}, g);
  const auto first = std::find(free_run.tokens[0].begin(), free_run.tokens[0].end(), free_run.tokens[0][2]);
  REQUIRE(r.tokens[0] == std::vector<int64_t>(free_run.tokens[0].begin(), first + 1));
  REQUIRE(r.finish_reasons[0] == "eos");
  // Stop strings on a toy decoder that spells ids as "<id>".
  GenerateOptions s;
  s.max_new_tokens = 10;
  s.decode = [](const std::vector<int64_t>& ids) {
    std::string t;
    for (auto i : ids) t += "<" + std::to_string(i) + ">";
    return t;
  };
  s.stop_strings = {"<" + std::to_string(free_run.tokens[0][4]) + ">"};
  auto rs = generate(*m, {{5, 17, 300}}, s);
  REQUIRE(rs.finish_reasons[0] == "stop_string");
  REQUIRE(rs.tokens[0].size() <= 5);
}

TEST_CASE("a gradient taken at hook_mlp_in is the MLP's share only", "[hooks][grad]") {
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  // Parameters carry no gradients: make the embeddings a leaf that does, so the graph exists.
  auto leaf = m->hooks().add("hook_embed", [](const at::Tensor& x, const HookContext&) {
    return x.detach().set_requires_grad(true);
  });
  ActivationCache cache;
  auto h = cache.attach(m->hooks(), {"blocks.1.hook_mlp_in", "blocks.1.hook_resid_mid"}, /*detach=*/false);
  at::Tensor logits = m->forward(sample_ids());
  at::Tensor metric = logits[0][7][11] - logits[0][7][23];
  at::Tensor mlp_in = cache.at("blocks.1.hook_mlp_in"), resid_mid = cache.at("blocks.1.hook_resid_mid");
  mlp_in.retain_grad();
  resid_mid.retain_grad();
  metric.backward();
  // resid_mid feeds both the MLP and the residual path, so its gradient is the MLP share plus the
  // gradient of resid_post; hook_mlp_in's must differ from it (it is only the MLP share).
  REQUIRE(mlp_in.grad().defined());
  REQUIRE(resid_mid.grad().defined());
  REQUIRE_FALSE(at::allclose(mlp_in.grad(), resid_mid.grad()));
  REQUIRE(mlp_in.grad().abs().sum().item<double>() > 0);
}

// Split inputs left unchanged take the shared path (norm and projection once); patched ones the
// per-head path. Forcing the per-head path with a hook that copies the input must give the same
// outputs and the same per-head gradients at hook_q_input/hook_k_input/hook_v_input.
TEST_CASE("split inputs - the shared path gives the per-head path's outputs and per-head gradients", "[hooks][grad]") {
  for (const char* rel : {"hf-tiny/qwen2-tiny", "hf-tiny/llama-tiny", "hf-ref/qwen3-tiny"}) {
    INFO(rel);
    auto m = cs_test::load_model(rel);
    const at::Tensor ids = at::tensor({5, 17, 30, 42, 7, 99, 25, 3, 11, 64, 2, 9}, at::kLong).view({2, 6});
    struct Run {
      at::Tensor logits;
      std::map<std::string, at::Tensor> grads;
    };
    auto run = [&](bool copy) {
      c10::AutoGradMode grad_on(true);
      std::map<std::string, at::Tensor> xs;
      std::vector<HookHandle> hs;
      for (const char* kind : {"hook_q_input", "hook_k_input", "hook_v_input"})
        hs.push_back(m->hooks().add(std::string("blocks.*.") + kind, [&xs, copy](const at::Tensor& x, const HookContext& c) {
          // The hook point hands out the expanded residual (stride 0 along heads: the shared path's
          // condition); a copy has a real head stride and takes the per-head path.
          if (x.stride(2) != 0) throw std::runtime_error("split input is not the expanded residual: " + c.name);
          // Either way a tensor still in the graph (a detached copy would cut the paths to later layers).
          at::Tensor t = copy ? x.contiguous().clone() : x.view_as(x);
          xs[c.name] = t;
          return t;
        }));
      hs.push_back(m->hooks().add("hook_embed", [](const at::Tensor& x, const HookContext&) {
        return x.detach().requires_grad_(true);
      }));
      Run r;
      r.logits = m->forward(ids);
      const at::Tensor loss = (r.logits.select(1, 5).log_softmax(-1).select(1, 7)).sum() + r.logits.select(1, 2).pow(2).mean();
      std::vector<std::string> names;
      std::vector<at::Tensor> inputs;
      for (auto& [n, t] : xs) names.push_back(n), inputs.push_back(t);
      const auto g = torch::autograd::grad({loss}, inputs);
      for (size_t i = 0; i < names.size(); ++i) r.grads[names[i]] = g[i];
      return r;
    };
    const Run shared = run(false), per_head = run(true);
    CHECK(at::allclose(shared.logits, per_head.logits, 1e-5, 1e-5));
    REQUIRE(shared.grads.size() == per_head.grads.size());
    REQUIRE(shared.grads.size() == static_cast<size_t>(3 * m->config().n_layers));
    for (const auto& [name, g] : per_head.grads) {
      INFO(name);
      const at::Tensor s = shared.grads.at(name);
      REQUIRE(s.sizes() == g.sizes());
      const double err = (s - g).abs().max().item<double>(), scale = g.abs().max().item<double>();
      CHECK(scale > 0);
      CHECK(err <= 1e-6 + 1e-4 * scale);
    }
  }
}

// HeadInputGradSum (fused runs: gradients at hook_q/hook_k/hook_v) against autograd at split
// mode's hook_{q,k,v}_input, summed over two runs on different inputs. Per query head (each query
// head's own use of its kv head) against the split inputs of the model's ungrouped copy.
TEST_CASE("head input gradient sums from fused runs equal split mode's per-head gradients", "[hooks][grad]") {
  for (const char* rel : {"hf-tiny/qwen2-tiny", "hf-tiny/llama-tiny", "hf-ref/qwen3-tiny"}) {
    INFO(rel);
    auto m = cs_test::load_model(rel);
    auto um = cs_test::ungrouped_copy(*m);
    const int64_t L = m->config().n_layers;
    const std::vector<at::Tensor> inputs = {at::tensor({5, 17, 30, 42, 7, 99, 25, 3, 11, 64, 2, 9}, at::kLong).view({2, 6}),
                                            at::tensor({8, 1, 77, 42, 13, 56, 4, 21, 11, 90, 6, 33}, at::kLong).view({2, 6})};
    auto metric = [](const at::Tensor& logits) {
      return (logits.select(1, 5).log_softmax(-1).select(1, 7)).sum() + logits.select(1, 2).pow(2).mean();
    };
    // Autograd at the points named by `kinds` (each an alias, so the gradient is that reader's), one run.
    auto grads_at = [&](HookedTransformer& model, const at::Tensor& ids, const std::vector<std::string>& kinds,
                        std::map<std::string, at::Tensor>* values) {
      c10::AutoGradMode grad_on(true);
      std::map<std::string, at::Tensor> xs;
      std::vector<HookHandle> hs;
      for (const auto& kind : kinds)
        hs.push_back(model.hooks().add("blocks.*." + kind, [&xs](const at::Tensor& x, const HookContext& c) {
          xs[c.name] = x.view_as(x);
          return xs[c.name];
        }));
      hs.push_back(model.hooks().add("hook_embed", [](const at::Tensor& x, const HookContext&) {
        return x.detach().requires_grad_(true);  // the parameters take no gradients
      }));
      if (values)
        hs.push_back(model.hooks().add("blocks.*.hook_resid_pre", [values](const at::Tensor& x, const HookContext& c) {
          (*values)[c.name] = x.detach();
          return x;
        }));
      const at::Tensor loss = metric(model.forward(ids));
      std::vector<std::string> names;
      std::vector<at::Tensor> in;
      for (auto& [n, t] : xs) names.push_back(n), in.push_back(t);
      const auto g = torch::autograd::grad({loss}, in);
      std::map<std::string, at::Tensor> out;
      for (size_t i = 0; i < names.size(); ++i) {
        out[names[i]] = g[i];
        if (values) (*values)[names[i]] = in[i].detach();
      }
      return out;
    };
    HeadInputGradSum per_kv(*m), per_q(*m);
    std::map<std::string, at::Tensor> ref;  // split-mode sums; k/v per query head under "u." names
    auto add_ref = [&ref](const std::string& key, const at::Tensor& g) {
      ref[key] = ref.count(key) ? ref[key] + g : g.clone();
    };
    for (const at::Tensor& ids : inputs) {
      for (auto& [n, g] : grads_at(*m, ids, {"hook_q_input", "hook_k_input", "hook_v_input"}, nullptr)) add_ref(n, g);
      for (auto& [n, g] : grads_at(*um, ids, {"hook_k_input", "hook_v_input"}, nullptr)) add_ref("u." + n, g);
      std::map<std::string, at::Tensor> val;
      const auto g = grads_at(*m, ids, {"attn.hook_q", "attn.hook_k", "attn.hook_v"}, &val);
      const auto gu = grads_at(*um, ids, {"attn.hook_k", "attn.hook_v"}, nullptr);
      for (int64_t l = 0; l < L; ++l) {
        const std::string p = "blocks." + std::to_string(l) + ".";
        auto stream = [&](const std::map<std::string, at::Tensor>& gs, const char* k) {
          return HeadInputGradSum::Stream{gs.at(p + "attn." + k), val.at(p + "attn." + k)};
        };
        per_kv.add(l, val.at(p + "hook_resid_pre"), stream(g, "hook_q"), stream(g, "hook_k"), stream(g, "hook_v"));
        per_q.add(l, val.at(p + "hook_resid_pre"), stream(g, "hook_q"), stream(gu, "hook_k"), stream(gu, "hook_v"));
      }
    }
    for (int64_t l = 0; l < L; ++l) {
      const std::string p = "blocks." + std::to_string(l) + ".";
      const char* kinds[] = {"hook_q_input", "hook_k_input", "hook_v_input"};
      for (int s = 0; s < 3; ++s) {
        const at::Tensor r = ref.at(p + kinds[s]), scale = r.abs().max();
        REQUIRE(scale.item<double>() > 0);
        // [N,B,T,D] -> [B,T,N,D] as the hook points hold them
        cs_test::require_close(per_kv.sum(l, s).permute({1, 2, 0, 3}), r, 1e-6 + 1e-5 * scale.item<double>(), 1e-4,
                               p + kinds[s] + " per kv head");
        const at::Tensor ru = s == 0 ? r : ref.at("u." + p + kinds[s]);
        cs_test::require_close(per_q.sum(l, s).permute({1, 2, 0, 3}), ru, 1e-6 + 1e-5 * ru.abs().max().item<double>(), 1e-4,
                               p + kinds[s] + " per query head");
      }
    }
    CHECK(per_kv.runs(0) == 2);
  }
}
