// Toy lab training: checkpoints are Hugging Face folders that load back to the same logits, and a
// resumed run ends with the same weights as an uninterrupted one.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "circuitscope/toy.hpp"
#include "test_util.hpp"

using namespace circuitscope;
using namespace circuitscope::toy;
namespace fs = std::filesystem;

namespace {
TrainOptions tiny_options(const std::string& stage, const std::string& out) {
  TrainOptions o;
  o.stage = stage;
  o.out_dir = out;
  o.shape.layers = 2;
  o.shape.d_model = 32;
  o.shape.heads = 4;
  o.shape.kv_heads = 2;
  o.shape.d_mlp = 64;
  o.spec.max_operand = 9;
  o.steps = 4;
  o.save_every = 2;
  o.batch_size = 4;
  o.seed = 7;
  o.progress = false;
  o.group_size = 3;
  o.max_new_tokens = 12;
  return o;
}

at::Tensor probe_ids() { return at::tensor({99, 85, 83, 69, 82, 96, 17, 23, 11, 18, 10, 19, 29, 100}, at::kLong).view({1, -1}); }

void require_same_weights(HookedTransformer& a, HookedTransformer& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    REQUIRE(pa[i].first == pb[i].first);
    REQUIRE(at::equal(pa[i].second, pb[i].second));
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
}  // namespace

TEST_CASE("toy checkpoint round trip: save - from_pretrained - identical logits", "[toy]") {
  const std::string dir = cs_test::make_temp_dir("toyck");
  ToyModelShape shape;
  shape.layers = 2;
  shape.d_model = 32;
  shape.heads = 4;
  shape.kv_heads = 2;
  shape.d_mlp = 64;
  for (bool tied : {true, false}) {
    shape.tie_embeddings = tied;
    auto m = init_toy_model(shape, 5);
    // Non-trivial norms and biases too, so every tensor's round trip matters.
    {
      c10::AutoGradMode no_grad(false);
      for (auto& [name, t] : m->named_parameters()) t.add_(at::randn(t.sizes(), at::kFloat) * 0.05);
    }
    const std::string ck = dir + (tied ? "/tied" : "/untied");
    save_hf_checkpoint(*m, ck);
    auto back = HookedTransformer::from_pretrained(ck);
    REQUIRE(back->config().architecture == "Qwen2ForCausalLM");
    REQUIRE(back->config().tie_word_embeddings == tied);
    REQUIRE(back->config().n_kv_heads == 2);
    REQUIRE(back->config().eos_token_ids == std::vector<int64_t>{100, 98});
    require_same_weights(*m, *back);
    REQUIRE(at::equal(m->forward(probe_ids()), back->forward(probe_ids())));
    // The folder has the tokenizer, and its chat template.
    REQUIRE(load_tokenizer(ck)->vocab_size() == 103);
    REQUIRE(load_tokenizer_config(ck).chat_template.has_value());
  }
  // Seeded initialisation is reproducible.
  auto a = init_toy_model(shape, 9), b = init_toy_model(shape, 9);
  require_same_weights(*a, *b);
  cs_test::remove_tree(dir);
}

TEST_CASE("toy training writes loadable checkpoints - eval and the CLI read them", "[toy][training]") {
  const std::string dir = cs_test::make_temp_dir("toytrain");
  TrainOptions o = tiny_options("base", dir + "/base");
  const TrainResult r = train_toy(o);
  REQUIRE(r.steps == 4);
  for (const char* sub : {"checkpoint-2", "checkpoint-4", "final"})
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "toy_lab.json"})
      REQUIRE(fs::exists(fs::path(dir) / "base" / sub / f));
  auto fin = HookedTransformer::from_pretrained(dir + "/base/final");
  auto ck4 = HookedTransformer::from_pretrained(dir + "/base/checkpoint-4");
  auto ck2 = HookedTransformer::from_pretrained(dir + "/base/checkpoint-2");
  REQUIRE(at::equal(fin->forward(probe_ids()), ck4->forward(probe_ids())));
  REQUIRE_FALSE(at::equal(ck2->forward(probe_ids()), ck4->forward(probe_ids())));  // training changed it
  // The initial model differs from the trained one.
  auto init = init_toy_model(o.shape, o.seed);
  REQUIRE_FALSE(at::equal(init->forward(probe_ids()), fin->forward(probe_ids())));
  const auto info = read_toy_info(dir + "/base/final");
  REQUIRE(info.has_value());
  REQUIRE(info->stage == "base");
  REQUIRE(info->step == 4);
  REQUIRE_FALSE(info->think);
  REQUIRE(info->spec.max_operand == 9);
  // Four lines of training log, one per step.
  const std::string log = read_file(fs::path(dir) / "base/train_log.jsonl");
  REQUIRE(std::count(log.begin(), log.end(), '\n') == 4);

  EvalOptions e;
  e.n = 6;
  e.spec = info->spec;
  e.max_new_tokens = 8;
  const EvalResult er = evaluate_toy(*fin, dir + "/base/final", e);
  REQUIRE(er.n == 6);
  REQUIRE(er.examples.size() == 6);
  REQUIRE(er.correct <= er.answered);
  for (const auto& x : er.examples) REQUIRE(is_eval_problem(parse_problem(x.problem), 0.1));

  std::string out;
  const int rc = cs_test::run_command(cs_test::binary_path() + " toy eval " + dir + "/base/final --n 4 --max-new-tokens 6 --json", out);
  INFO(out);
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  REQUIRE(j["n"] == 4);
  REQUIRE(j["stage"] == "base");
  REQUIRE(j["think"] == false);

  // Head interventions while decoding: a scale of 1 changes nothing, ablating equals scaling by 0,
  // and ablating every head of layer 0 (4 heads here) is recorded; malformed specs are usage errors.
  const std::string ev = cs_test::binary_path() + " toy eval " + dir + "/base/final --n 6 --max-new-tokens 6 --show 6 --json";
  auto eval_json = [&](const std::string& extra) {
    std::string o2;
    const int rc2 = cs_test::run_command("{ " + ev + extra + " 2>/dev/null; }", o2);
    INFO(o2);
    REQUIRE(rc2 == 0);
    return nlohmann::json::parse(o2);
  };
  const auto plain = eval_json("");
  CHECK(eval_json(" --scale-head 0.3=1")["examples"] == plain["examples"]);
  const auto abl = eval_json(" --ablate-head '0.0 0.1 0.2 0.3'");
  CHECK(abl["ablated"].size() == 1);
  CHECK(abl["examples"] == eval_json(" --scale-head '0.0=0 0.1=0 0.2=0 0.3=0'")["examples"]);
  CHECK(cs_test::run_command(ev + " --ablate-head 0.1=2", out) == static_cast<int>(ErrorCode::kUsage));
  CHECK(cs_test::run_command(ev + " --scale-head 0.1", out) == static_cast<int>(ErrorCode::kUsage));
  CHECK(cs_test::run_command(ev + " --ablate-head 0.99", out) != 0);
  INFO(out);
  CHECK(out.find("99") != std::string::npos);

  // toy problems: held-out problems of the checkpoint's task as a prompts file.
  REQUIRE(cs_test::run_command(cs_test::binary_path() + " toy problems " + dir + "/base/final --n 5 --out " + dir + "/p.jsonl", out) == 0);
  std::ifstream pf(dir + "/p.jsonl");
  int lines = 0;
  for (std::string line; std::getline(pf, line); ++lines) {
    const auto pj = nlohmann::json::parse(line);
    const ArithProblem p = parse_problem(pj["problem"].get<std::string>());
    CHECK(is_eval_problem(p, 0.1));
    CHECK(pj["prompt"] == pj["problem"].get<std::string>() + "=");
    CHECK(pj["answer"] == p.answer());
  }
  CHECK(lines == 5);
  cs_test::remove_tree(dir);
}

TEST_CASE("toy training resumes to the same weights as an uninterrupted run (sft and grpo)", "[toy][training]") {
  const std::string dir = cs_test::make_temp_dir("toyresume");
  train_toy(tiny_options("base", dir + "/base"));
  for (const std::string stage : {"sft", "grpo"}) {
    INFO(stage);
    TrainOptions full = tiny_options(stage, dir + "/" + stage + "-full");
    full.init_dir = dir + "/base/final";
    train_toy(full);
    TrainOptions cut = full;
    cut.out_dir = dir + "/" + stage + "-cut";
    cut.stop_after = 2;
    const TrainResult first = train_toy(cut);
    REQUIRE(first.steps == 2);
    REQUIRE_FALSE(fs::exists(fs::path(cut.out_dir) / "final"));
    cut.stop_after = 0;
    const TrainResult second = train_toy(cut);
    REQUIRE(second.resumed_from == 2);
    auto a = HookedTransformer::from_pretrained(full.out_dir + "/final");
    auto b = HookedTransformer::from_pretrained(cut.out_dir + "/final");
    require_same_weights(*a, *b);
    REQUIRE(read_file(fs::path(full.out_dir) / "train_log.jsonl") == read_file(fs::path(cut.out_dir) / "train_log.jsonl"));
    if (stage == "grpo") {
      const std::string rewards = read_file(fs::path(full.out_dir) / "rewards.jsonl");
      REQUIRE(rewards == read_file(fs::path(cut.out_dir) / "rewards.jsonl"));
      const auto first_line = nlohmann::json::parse(rewards.substr(0, rewards.find('\n')));
      for (const char* k : {"step", "mean_reward", "accuracy", "mean_completion_length", "kl"}) REQUIRE(first_line.contains(k));
    }
    // Resuming with other options is refused rather than mixing two runs.
    TrainOptions other = cut;
    other.lr = 0.5;
    REQUIRE_THROWS_AS(train_toy(other), Error);
  }
  cs_test::remove_tree(dir);
}

TEST_CASE("toy training defaults: 8 checkpoints per post-training stage, GRPO with 32 prompts per step", "[toy]") {
  for (const std::string stage : {"base", "sft", "grpo"}) {
    INFO(stage);
    TrainOptions o;
    o.stage = stage;
    o.out_dir = "unused";
    if (stage == "grpo") o.init_dir = "unused-init";
    const TrainOptions r = resolve_train_defaults(o);
    // A checkpoint is saved at every multiple of save_every (and at the last step).
    int64_t checkpoints = 0;
    for (int64_t step = 1; step <= r.steps; ++step) checkpoints += step % r.save_every == 0 || step == r.steps;
    REQUIRE(checkpoints == (stage == "base" ? 4 : 8));
    REQUIRE(r.batch_size == 32);
  }
  TrainOptions g;
  g.stage = "grpo";
  g.out_dir = "unused";
  g.init_dir = "unused-init";
  const TrainOptions r = resolve_train_defaults(g);
  REQUIRE(r.steps == 64);
  REQUIRE(r.lr == 2e-4);
  REQUIRE(r.group_size == 8);
  // An explicit interval is kept.
  g.save_every = 5;
  REQUIRE(resolve_train_defaults(g).save_every == 5);
}
