// eval: pass@k against subset enumeration, loop detection on made-up responses, conditions and
// random controls, interventions against edited weights and hand-written hooks, per-row seeds, and
// the command end to end (pass@k recomputed from its own samples.jsonl, shards merged = one run).
#include <c10/core/GradMode.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "circuitscope/eval.hpp"
#include "circuitscope/generate.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "test_util.hpp"

using namespace circuitscope;

namespace {

// pass@k by definition: the share of k-subsets of the n samples that hold a correct one.
double pass_at_k_by_subsets(const std::vector<bool>& correct, int64_t k) {
  const int64_t n = static_cast<int64_t>(correct.size());
  int64_t subsets = 0, hit = 0;
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    ++subsets;
    bool any = false;
    for (int64_t i = 0; i < n; ++i) any = any || ((mask >> i) & 1u && correct[i]);
    hit += any;
  }
  return static_cast<double>(hit) / static_cast<double>(subsets);
}

std::vector<int64_t> repeat_block(const std::vector<int64_t>& prefix, const std::vector<int64_t>& block, int copies,
                                  const std::vector<int64_t>& tail = {}) {
  std::vector<int64_t> t = prefix;
  for (int c = 0; c < copies; ++c) t.insert(t.end(), block.begin(), block.end());
  t.insert(t.end(), tail.begin(), tail.end());
  return t;
}


}  // namespace

TEST_CASE("pass@k: the unbiased estimator equals the share of k-subsets with a correct sample", "[eval]") {
  for (int64_t n = 1; n <= 8; ++n)
    for (int64_t c = 0; c <= n; ++c)
      for (int64_t k = 1; k <= n; ++k) {
        std::vector<bool> correct(n, false);
        for (int64_t i = 0; i < c; ++i) correct[n - 1 - i] = true;
        INFO("n " << n << " c " << c << " k " << k);
        REQUIRE(pass_at_k(n, c, k) == Approx(pass_at_k_by_subsets(correct, k)).margin(1e-12));
      }
  CHECK(pass_at_k(10, 0, 3) == 0.0);
  CHECK(pass_at_k(10, 8, 3) == 1.0);   // fewer than k wrong samples
  CHECK(pass_at_k(4, 1, 1) == Approx(0.25));
  CHECK(cs_test::error_code_of([] { pass_at_k(4, 1, 5); }) == 10);
}

TEST_CASE("loops: made-up responses", "[eval]") {
  const LoopSpec spec;  // period <= 64, >= 4 copies (2 when cut), span >= 16 tokens
  const std::vector<int64_t> pre = {90, 91, 92};
  // Plain text: no repetition at the end.
  std::vector<int64_t> plain;
  for (int64_t i = 0; i < 40; ++i) plain.push_back(i % 37);
  CHECK_FALSE(detect_loop(plain, false, spec).looping);
  // A 4-token block 5 times (span 20) at the end.
  auto a = detect_loop(repeat_block(pre, {1, 2, 3, 4}, 5), false, spec);
  CHECK(a.looping);
  CHECK(a.period == 4);
  CHECK(a.repeats == 5);
  // 4 copies of 3 tokens: only 12 tokens, under min_span, cut or not.
  CHECK_FALSE(detect_loop(repeat_block(pre, {1, 2, 3}, 4), false, spec).looping);
  CHECK_FALSE(detect_loop(repeat_block(pre, {1, 2, 3}, 4), true, spec).looping);
  // An 8-token block twice (span 16): a loop only when the response was cut at max tokens.
  const auto twice = repeat_block(pre, {5, 6, 7, 8, 9, 10, 11, 12}, 2);
  CHECK_FALSE(detect_loop(twice, false, spec).looping);
  CHECK(detect_loop(twice, true, spec).looping);
  // The same token 20 times.
  auto one = detect_loop(repeat_block(pre, {7}, 20), false, spec);
  CHECK(one.looping);
  CHECK(one.period == 1);
  // Repetition in the middle, then a different ending: not at the end, not a loop.
  CHECK_FALSE(detect_loop(repeat_block(pre, {1, 2, 3, 4}, 6, {50, 51, 52}), false, spec).looping);
  // Cut in the middle of a copy: the final block is a rotation and still repeats.
  auto rot = detect_loop(repeat_block(pre, {1, 2, 3, 4, 5}, 4, {1, 2}), false, spec);
  CHECK(rot.looping);
  CHECK(rot.period == 5);
  // 3 copies of 6 tokens (span 18) are below min_repeats without a cut.
  CHECK_FALSE(detect_loop(repeat_block(pre, {1, 2, 3, 4, 5, 6}, 3), false, spec).looping);
  CHECK(detect_loop(repeat_block(pre, {1, 2, 3, 4, 5, 6}, 3), true, spec).looping);
  // Empty and short responses.
  CHECK_FALSE(detect_loop({}, true, spec).looping);
  CHECK_FALSE(detect_loop({3}, true, spec).looping);
}

TEST_CASE("conditions: parsing, head sets from a comparison, errors", "[eval]") {
  auto c = parse_condition("abl:zero:1.2,0.3", nullptr);
  CHECK(c.name == "abl");
  CHECK(c.mode == HeadMode::kZero);
  REQUIRE(c.heads.size() == 2);
  CHECK((c.heads[0].layer == 1 && c.heads[0].head == 2 && c.heads[1].layer == 0 && c.heads[1].head == 3));
  auto s = parse_condition("up:scale=1.3:1.2,0.3=0.5", nullptr);
  CHECK(s.mode == HeadMode::kScale);
  CHECK(s.heads[0].factor == 1.3);
  CHECK(s.heads[1].factor == 0.5);
  CHECK(parse_condition("b:none", nullptr).mode == HeadMode::kNone);
  for (const char* bad : {"noname", ":zero:1.2", "x:zero", "x:scale:1.2", "x:blend:1.2", "x:zero:1", "x:none:1.2",
                          "x:zero:@emergent", "x y:zero:1.1"}) {
    INFO(bad);
    CHECK(cs_test::error_code_of([&] { parse_condition(bad, nullptr); }) == 2);
  }
  cs_test::TempDir tmp("eval-sets");
  const std::string cmp = cs_test::write_file(
      tmp.path, "compare.json",
      R"({"emergent":[{"layer":1,"head":2},{"layer":0,"head":1}],"retained":[],"lost":[{"layer":1,"head":0}]})");
  const HeadSets hs = read_head_sets(cmp);
  auto e = parse_condition("em:mean:@emergent", &hs);
  REQUIRE(e.heads.size() == 2);
  CHECK((e.heads[1].layer == 0 && e.heads[1].head == 1));
  CHECK(cs_test::error_code_of([&] { read_head_sets(cs_test::write_file(tmp.path, "bad.json", R"({"emergent":[]})")); }) == 4);
  CHECK(cs_test::error_code_of([&] { validate_condition(parse_condition("x:zero:2.0", nullptr), 2, 4); }) == 2);
  CHECK(cs_test::error_code_of([&] { validate_condition(parse_condition("x:zero:1.4", nullptr), 2, 4); }) == 2);
  CHECK(cs_test::error_code_of([&] { validate_condition(parse_condition("x:zero:1.1,1.1", nullptr), 2, 4); }) == 2);
}

TEST_CASE("random controls: same layers and sizes, other heads, seeded", "[eval]") {
  const auto chosen = parse_condition("em:scale=0.5:0.1,0.2,3.0,3.5,3.7", nullptr);
  const auto a = random_controls(chosen, 6, 8, 42);
  const auto b = random_controls(chosen, 6, 8, 42);
  const auto c = random_controls(chosen, 6, 8, 43);
  REQUIRE(a.size() == 6);
  std::set<std::vector<std::pair<int64_t, int64_t>>> distinct;
  bool differs_by_seed = false;
  for (size_t r = 0; r < a.size(); ++r) {
    CHECK(a[r].name == "em~rand" + std::to_string(r + 1));
    CHECK(a[r].control_of == "em");
    CHECK(a[r].mode == HeadMode::kScale);
    std::map<int64_t, int> per_layer;
    std::vector<std::pair<int64_t, int64_t>> heads;
    for (const auto& h : a[r].heads) {
      ++per_layer[h.layer];
      heads.emplace_back(h.layer, h.head);
      CHECK(h.factor == 0.5);
      for (const auto& x : chosen.heads) CHECK_FALSE((x.layer == h.layer && x.head == h.head));  // enough others
    }
    CHECK(per_layer == std::map<int64_t, int>{{0, 2}, {3, 3}});
    CHECK(std::set<std::pair<int64_t, int64_t>>(heads.begin(), heads.end()).size() == heads.size());
    distinct.insert(heads);
    for (size_t i = 0; i < a[r].heads.size(); ++i) {
      CHECK(a[r].heads[i].head == b[r].heads[i].head);
      differs_by_seed = differs_by_seed || a[r].heads[i].head != c[r].heads[i].head;
    }
  }
  CHECK(distinct.size() > 1);
  CHECK(differs_by_seed);
  // A layer with every head chosen: the control must reuse chosen heads, still the same count.
  const auto full = random_controls(parse_condition("f:zero:1.0,1.1,1.2,1.3", nullptr), 1, 4, 1);
  CHECK(full[0].heads.size() == 4);
}

TEST_CASE("interventions: zero and scale equal edited o_proj columns, mean equals the hand-made mean hook, also when "
          "generating with the KV cache",
          "[eval][interventions]") {
  c10::AutoGradMode no_grad(false);
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  const ModelConfig& cfg = m->config();
  const int64_t Dh = cfg.head_dim;
  const at::Tensor ids = at::tensor(std::vector<int64_t>{5, 17, 300, 42, 7, 99, 256, 3}, at::kLong).unsqueeze(0);
  const at::Tensor clean = m->forward(ids);
  struct Case {
    std::string spec;
    int64_t layer, head;
    double factor;
  };
  for (const Case& k : {Case{"z:zero:2.1", 2, 1, 0.0}, Case{"s:scale=1.3:1.3", 1, 3, 1.3}, Case{"h:scale=0.5:0.0", 0, 0, 0.5}}) {
    INFO(k.spec);
    const EvalCondition c = parse_condition(k.spec, nullptr);
    at::Tensor hooked;
    {
      auto h = apply_condition(m->hooks(), c, {}, cfg.n_heads);
      hooked = m->forward(ids);
    }
    // The same edit in the weights: a head's output is W_O[:, head block] z_head.
    std::map<std::string, at::Tensor> w;
    for (auto& [name, t] : m->named_parameters()) w[name] = t.clone();
    const std::string o = cfg.tensor_name(cfg.arch->names.o_w, k.layer);
    w[o].narrow(1, k.head * Dh, Dh).mul_(k.factor);
    auto edited = HookedTransformer::from_tensors(cfg, w, {"f32", cs_test::device()});
    cs_test::require_close(hooked, edited->forward(ids), 2e-5, 1e-4, "hooked vs edited weights");
    REQUIRE((hooked - clean).abs().max().item<double>() > 1e-4);  // the edit changes the output
    // Generation with the KV cache under the hooks follows the edited model's own greedy argmax.
    GenerateOptions g;
    g.max_new_tokens = 6;
    std::vector<int64_t> gen_tokens;
    {
      auto h = apply_condition(m->hooks(), c, {}, cfg.n_heads);
      gen_tokens = generate(*m, {{5, 17, 300, 42}}, g).tokens[0];
    }
    std::vector<int64_t> seq = {5, 17, 300, 42};
    for (size_t t = 0; t < gen_tokens.size(); ++t) {
      const at::Tensor logits = edited->forward(at::tensor(seq, at::kLong).unsqueeze(0));
      const int64_t next = logits[0][-1].argmax().item<int64_t>();
      REQUIRE(next == gen_tokens[t]);
      seq.push_back(next);
    }
  }
  // Mean ablation: the head's z replaced by its mean over the prompts' real tokens.
  const std::vector<std::vector<int64_t>> prompts = {{5, 17, 300}, {42, 7, 99, 256, 3}};
  const auto means = mean_head_outputs(*m, prompts, {1}, /*batch_size=*/2, /*pad_id=*/0);  // one padded batch
  at::Tensor expect_mean;
  {
    ActivationCache cache;
    auto h = cache.attach(m->hooks(), {"blocks.1.attn.hook_z"});
    at::Tensor sum;
    for (const auto& p : prompts) {
      m->forward(at::tensor(p, at::kLong).unsqueeze(0));
      const at::Tensor z = cache.at("blocks.1.attn.hook_z")[0].to(at::kCPU, at::kFloat).sum(0);  // [H,Dh]
      sum = sum.defined() ? sum + z : z;
    }
    expect_mean = sum / 8.0;
  }
  cs_test::require_close(means[1], expect_mean, 1e-6, 1e-5, "mean of hook_z over real tokens");
  CHECK_FALSE(means[0].defined());
  const EvalCondition mc = parse_condition("m:mean:1.2", nullptr);
  at::Tensor via_condition, by_hand;
  {
    auto h = apply_condition(m->hooks(), mc, means, cfg.n_heads);
    via_condition = m->forward(ids);
  }
  {
    auto h = m->hooks().add("blocks.1.attn.hook_z", [&](const at::Tensor& z, const HookContext&) {
      at::Tensor out = z.clone();
      out.select(2, 2).copy_(expect_mean[2].to(z.dtype()).expand_as(out.select(2, 2)));
      return out;
    });
    by_hand = m->forward(ids);
  }
  cs_test::require_close(via_condition, by_hand, 1e-5, 1e-4, "mean ablation vs hand-made hook");
}

TEST_CASE("generate: per-row seeds make a row's samples independent of its batch", "[eval][generate]") {
  c10::AutoGradMode no_grad(false);
  auto m = cs_test::load_model("hf-tiny/qwen2-tiny");
  GenerateOptions g;
  g.max_new_tokens = 8;
  g.sampling.greedy = false;
  g.sampling.temperature = 1.5;
  const std::vector<std::vector<int64_t>> prompts = {{5, 17, 300}, {42, 7, 99}, {11, 12, 13}};
  g.row_seeds = {101, 202, 303};
  const auto together = generate(*m, prompts, g);
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions one = g;
    one.row_seeds = {g.row_seeds[i]};
    CHECK(generate(*m, {prompts[i]}, one).tokens[0] == together.tokens[i]);
  }
  // The same seed on two rows of the same prompt gives the same tokens; another seed other tokens.
  g.row_seeds = {7, 7, 8};
  const auto same = generate(*m, {prompts[0], prompts[0], prompts[0]}, g);
  CHECK(same.tokens[0] == same.tokens[1]);
  CHECK(same.tokens[0] != same.tokens[2]);
}

TEST_CASE("eval command: pass@k recomputed from samples.jsonl, paired conditions, shards merged equal one run",
          "[eval][cli]") {
  cs_test::TempDir tmp("eval-cli");
  const std::string model = tmp.path + "/model";
  cs_test::write_random_toy(model, 11, /*max_positions=*/96);
  std::string bench;
  for (int i = 0; i < 16; ++i)
    bench += nlohmann::json{{"id", "p" + std::to_string(i)}, {"problem", std::to_string(i % 5) + "+" + std::to_string(i % 4) + "="},
                            {"answer", std::to_string(i % 10)}}.dump() + "\n";
  const std::string bench_path = cs_test::write_file(tmp.path, "bench.jsonl", bench);
  const std::string common = cs_test::binary_path() + " --threads 1 eval " + model + " --benchmark " + bench_path +
                             " --chat --think off --samples 6 --temperature 1.0 --max-new-tokens 10 --k 1,2,6 "
                             "--batch-size 6 --seed 3 --ablate-heads 1.0,1.3 --random-control 2 "
                             "--condition same:scale=1:0.1 --condition half:scale=0.5:0.2";
  std::string out;
  const std::string one = tmp.path + "/one";
  REQUIRE(cs_test::run_command(common + " --out " + one, out) == 0);
  INFO(out);
  CHECK(out.find("pass@6") != std::string::npos);
  CHECK(out.find("random head set(s)") != std::string::npos);
  const auto summary = cs_test::read_json_file(one + "/summary.json");
  const auto samples = cs_test::read_jsonl(one + "/samples.jsonl");
  const std::vector<std::string> names = {"baseline", "ablate", "same", "half", "ablate~rand1", "ablate~rand2",
                                          "same~rand1", "same~rand2", "half~rand1", "half~rand2"};
  REQUIRE(summary["conditions"].size() == names.size());
  REQUIRE(samples.size() == names.size() * 16 * 6);
  // Recompute everything per condition from the samples alone, and re-grade every response.
  std::map<std::string, std::map<std::string, std::vector<bool>>> correct;  // condition -> id -> by sample
  std::map<std::string, std::map<std::string, std::vector<std::string>>> responses;
  int mixed = 0;
  for (const auto& s : samples) {
    auto& v = correct[s["condition"]][s["id"]];
    v.resize(6);
    v[s["sample"].get<int>()] = s["correct"].get<bool>();
    auto& r = responses[s["condition"]][s["id"]];
    r.resize(6);
    r[s["sample"].get<int>()] = s["response"].get<std::string>();
    GradeItem gi;
    gi.response = s["response"];
    const int idx = std::stoi(s["id"].get<std::string>().substr(1));
    gi.answer = std::to_string(idx % 10);
    const GradeResult g = grade_answer(gi);
    CHECK(g.correct == s["correct"].get<bool>());
    CHECK(s["tokens"].get<int64_t>() <= 10);
    CHECK((s["finish_reason"] == "stop" || s["finish_reason"] == "length"));
  }
  for (size_t ci = 0; ci < names.size(); ++ci) {
    const auto& c = summary["conditions"][ci];
    REQUIRE(c["name"] == names[ci]);
    double acc = 0;
    std::map<int64_t, double> pass, succ;
    for (const auto& [id, v] : correct[names[ci]]) {
      REQUIRE(v.size() == 6);
      const int64_t n_ok = std::count(v.begin(), v.end(), true);
      if (ci == 0 && n_ok > 0 && n_ok < 6) ++mixed;
      acc += static_cast<double>(n_ok) / 6.0 / 16.0;
      for (int64_t k : {1, 2, 6}) {
        pass[k] += pass_at_k_by_subsets(v, k) / 16.0;
        succ[k] += (std::find(v.begin(), v.begin() + k, true) != v.begin() + k) ? 1.0 / 16.0 : 0.0;
      }
    }
    INFO(names[ci]);
    CHECK(c["accuracy"]["mean"].get<double>() == Approx(acc).margin(1e-12));
    CHECK(c["accuracy"]["ci95"][0].get<double>() <= acc + 1e-12);
    CHECK(c["accuracy"]["ci95"][1].get<double>() >= acc - 1e-12);
    for (int64_t k : {1, 2, 6}) {
      CHECK(c["pass_at_k"][std::to_string(k)].get<double>() == Approx(pass[k]).margin(1e-12));
      CHECK(c["success_at_k"][std::to_string(k)].get<double>() == Approx(succ[k]).margin(1e-12));
    }
  }
  CHECK(mixed > 0);  // some problems are partly solved, so pass@k differs from accuracy
  // Scaling by 1 changes nothing: with shared seeds its samples are the baseline's, difference 0.
  CHECK(responses["same"] == responses["baseline"]);
  CHECK(summary["conditions"][2]["diff_vs_baseline"]["mean"].get<double>() == 0.0);
  CHECK(responses["ablate"] != responses["baseline"]);
  // Random controls: same layers as the chosen heads (ablate: layer 1 twice).
  for (const auto& sc : summary["settings"]["conditions"])
    if (sc["name"] == "ablate~rand1") {
      REQUIRE(sc["heads"].size() == 2);
      for (const auto& h : sc["heads"]) CHECK(h["layer"] == 1);
    }
  REQUIRE(summary["controls"].size() == 3);
  CHECK(summary["controls"][0]["condition"] == "ablate");
  CHECK(summary["controls"][0]["control_shared_heads"] == nlohmann::json::array({0, 0}));  // 2 other heads in layer 1

  // Two shards and a merge give the same bytes as the single run.
  const std::string sh = tmp.path + "/sharded";
  REQUIRE(cs_test::run_command(common + " --out " + sh + " --shard 2/2", out) == 0);
  CHECK(cs_test::run_command(cs_test::binary_path() + " eval merge " + sh, out) == 7);  // shard 1 missing
  CHECK(out.find("1 of 2 shards are not done (1)") != std::string::npos);
  REQUIRE(cs_test::run_command(common + " --out " + sh + " --shard 1/2", out) == 0);
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " eval merge " + sh, out) == 0);
  CHECK(read_text_file(sh + "/samples.jsonl") == read_text_file(one + "/samples.jsonl"));
  CHECK(read_text_file(sh + "/summary.json") == read_text_file(one + "/summary.json"));

  // Usage errors exit 2.
  CHECK(cs_test::run_command(cs_test::binary_path() + " eval " + model + " --benchmark " + bench_path + " --out " + tmp.path +
                                 "/x --samples 4",
                             out) == 2);  // identical greedy samples
  CHECK(cs_test::run_command(cs_test::binary_path() + " eval " + model + " --benchmark " + bench_path + " --out " + tmp.path +
                                 "/x --ablate-heads 5.0",
                             out) == 2);
  CHECK(out.find("outside the model") != std::string::npos);
  // Options that would be ignored are usage errors.
  const std::string base = cs_test::binary_path() + " eval " + model + " --benchmark " + bench_path + " --out " + tmp.path + "/y ";
  for (const char* opts : {"--ablate-heads 1.0 --factor 1.3", "--random-control 2", "--max-heads 2 --ablate-heads 1.0",
                           "--scale-heads 1.0 --mode mean", "--condition a:zero:1.0=1.3", "--scale-heads 1.0="}) {
    INFO(opts);
    CHECK(cs_test::run_command(base + opts, out) == 2);
  }
  // A stray file in shards/ is ignored; a damaged shard is a format error naming it.
  cs_test::write_file(sh + "/shards", "notes-of-x.json", "{}");
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " eval merge " + sh, out) == 0);
  cs_test::write_file(sh + "/shards", "2-of-2.json", "{\"settings\": ");
  CHECK(cs_test::run_command(cs_test::binary_path() + " eval merge " + sh, out) == 4);
  CHECK(out.find("2-of-2.json: not an eval shard") != std::string::npos);
}
