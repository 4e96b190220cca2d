// Toy lab: tokenizer, chat template, task text, held-out split and GRPO arithmetic, checked against
// values written out by hand.
#include <nlohmann/json.hpp>
#include <set>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "circuitscope/toy.hpp"
#include "test_util.hpp"

using namespace circuitscope;
using namespace circuitscope::toy;

namespace {
struct ToyTokDir {
  std::string dir = cs_test::make_temp_dir("toytok");
  ToyTokDir() { write_toy_tokenizer(dir); }
  ~ToyTokDir() { cs_test::remove_tree(dir); }
};
}  // namespace

TEST_CASE("toy tokenizer.json loads and encodes one token per character", "[toy]") {
  ToyTokDir d;
  auto tok = load_tokenizer(d.dir);
  // Ids: printable ASCII c -> c - 32, tab 95, newline 96, then <unk> 97, <|endoftext|> 98,
  // <|im_start|> 99, <|im_end|> 100, <think> 101, </think> 102.
  REQUIRE(tok->vocab_size() == 103);
  REQUIRE(toy_vocab_size() == 103);
  const std::string text = "<|im_start|>user\n17+2*3=<|im_end|>\n<think>\n</think>";
  const std::vector<int64_t> expect = {99, 85, 83, 69, 82, 96, 17, 23, 11, 18, 10, 19, 29, 100, 96, 101, 96, 102};
  REQUIRE(tok->encode(text, false).ids == expect);
  REQUIRE(tok->encode(text, true).ids == expect);  // no post-processor: nothing added
  REQUIRE(tok->decode(expect) == text);
  // Specials: <|im_start|> and <|im_end|> are special, <think> is not (as in Qwen3).
  REQUIRE(tok->decode(expect, /*skip_special_tokens=*/true) == "user\n17+2*3=\n<think>\n</think>");
  REQUIRE(tok->is_special(99));
  REQUIRE_FALSE(tok->is_special(101));
  // Spaces, tabs and letters; a character outside the vocabulary becomes <unk>.
  REQUIRE(tok->encode("a b\tZ", false).ids == std::vector<int64_t>{65, 0, 66, 95, 58});
  REQUIRE(tok->encode("x\xC3\xA9y", false).ids == std::vector<int64_t>{88, 97, 89});
  REQUIRE(tok->token_to_id("<|endoftext|>") == 98);
  REQUIRE(tok->id_to_token(102) == "</think>");
  const std::string ascii = "What is 12 * (3 - 4)? {ok} ~`|\\\"'";
  REQUIRE(tok->decode(tok->encode(ascii, false).ids) == ascii);
}

TEST_CASE("toy chat template renders think on and off as Qwen3 does", "[toy]") {
  ToyTokDir d;
  const TokenizerConfig cfg = load_tokenizer_config(d.dir);
  REQUIRE(cfg.eos_token == std::optional<std::string>("<|im_end|>"));
  REQUIRE(cfg.pad_token == std::optional<std::string>("<|endoftext|>"));
  ChatMessage user;
  user.role = "user";
  user.content = "17+25*3=";
  const std::string head = "<|im_start|>user\n17+25*3=<|im_end|>\n<|im_start|>assistant\n";
  REQUIRE(apply_chat_template(cfg, {user}, true, false) == head + "<think>\n\n</think>\n\n");
  REQUIRE(apply_chat_template(cfg, {user}, true, true) == head + "<think>\n");
  REQUIRE(apply_chat_template(cfg, {user}, true, std::nullopt) == head + "<think>\n");  // Qwen3: thinking by default
  REQUIRE(apply_chat_template(cfg, {user}, false, false) == "<|im_start|>user\n17+25*3=<|im_end|>\n");
  // A finished conversation: reasoning from reasoning_content or from a <think> block in the content.
  ChatMessage sys;
  sys.role = "system";
  sys.content = "be brief";
  ChatMessage a1;
  a1.role = "assistant";
  a1.content = "92";
  a1.reasoning_content = "25*3=75\n17+75=92";
  ChatMessage a2;
  a2.role = "assistant";
  a2.content = "<think>\n25*3=75\n17+75=92\n</think>\n\n92";
  ChatMessage a3;
  a3.role = "assistant";
  a3.content = "92";
  const std::string expect_full =
      "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\n17+25*3=<|im_end|>\n"
      "<|im_start|>assistant\n<think>\n25*3=75\n17+75=92\n</think>\n\n92<|im_end|>\n";
  REQUIRE(apply_chat_template(cfg, {sys, user, a1}, false, std::nullopt) == expect_full);
  REQUIRE(apply_chat_template(cfg, {sys, user, a2}, false, std::nullopt) == expect_full);
  REQUIRE(apply_chat_template(cfg, {user, a3}, false, std::nullopt) ==
          "<|im_start|>user\n17+25*3=<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n92<|im_end|>\n");
  // The SFT target continues the think-on prompt into exactly that rendering.
  const ArithProblem p = parse_problem("17+25*3");
  REQUIRE(apply_chat_template(cfg, {user}, true, true) + target_completion(p, true) + "\n" ==
          "<|im_start|>user\n17+25*3=<|im_end|>\n<|im_start|>assistant\n<think>\n25*3=75\n17+75=92\n</think>\n\n92<|im_end|>\n");
}

TEST_CASE("toy task text: user message - targets and final answers", "[toy]") {
  const ArithProblem p = parse_problem("17+25*3");
  REQUIRE(user_message(p) == "17+25*3=");
  REQUIRE(target_completion(p, false) == "92<|im_end|>");
  REQUIRE(target_completion(p, true) == "25*3=75\n17+75=92\n</think>\n\n92<|im_end|>");
  REQUIRE(target_completion(parse_problem("4"), true) == "</think>\n\n4<|im_end|>");
  REQUIRE(final_answer("92<|im_end|>", false) == 92);
  REQUIRE(final_answer(" -7 <|im_end|>", false) == -7);
  REQUIRE(final_answer("25*3=75\n17+75=92\n</think>\n\n92<|im_end|>", true) == 92);
  REQUIRE(final_answer("25*3=75\n</think>\n\n91", true) == 91);  // no <|im_end|> (length limit): still read
  REQUIRE_FALSE(final_answer("25*3=75\n17+75=92", true).has_value());  // never closed its thinking
  REQUIRE_FALSE(final_answer("</think>\n\n9 2<|im_end|>", true).has_value());
  REQUIRE_FALSE(final_answer("92+1<|im_end|>", false).has_value());
  REQUIRE_FALSE(final_answer("<|im_end|>", false).has_value());
  REQUIRE_FALSE(final_answer("-", false).has_value());
}

TEST_CASE("toy held-out split never overlaps training problems", "[toy]") {
  ArithSpec spec;
  spec.min_operands = 2;
  spec.max_operands = 2;
  spec.max_operand = 9;
  spec.ops = "+*";
  // All 200 problems of this spec, split by hash: some, but not most, are held out.
  std::set<std::string> eval_all;
  for (int a = 0; a <= 9; ++a)
    for (int b = 0; b <= 9; ++b)
      for (char op : std::string("+*")) {
        ArithProblem p = parse_problem(std::to_string(a) + op + std::to_string(b));
        if (is_eval_problem(p, 0.1)) eval_all.insert(p.text());
      }
  REQUIRE(eval_all.size() >= 8);
  REQUIRE(eval_all.size() <= 40);
  std::mt19937_64 rng(3);
  std::set<std::string> train;
  for (int i = 0; i < 5000; ++i) {
    ArithProblem p = sample_train_problem(spec, 0.1, rng);
    REQUIRE_FALSE(eval_all.count(p.text()));
    train.insert(p.text());
  }
  REQUIRE(train.size() + eval_all.size() == 200);  // every other problem is trained on
  const auto ev = sample_eval_problems(spec, 0.1, 1000, 5);
  REQUIRE(ev.size() == eval_all.size());  // asked for more than exist: all distinct ones, no repeats
  for (const auto& p : ev) REQUIRE(eval_all.count(p.text()));
  // Reproducible and seed-dependent order.
  const auto a = sample_eval_problems(spec, 0.1, 5, 11), b = sample_eval_problems(spec, 0.1, 5, 11);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i].text() == b[i].text());
  // The default task: held-out problems are never produced by the training sampler.
  ArithSpec def;
  std::set<std::string> held;
  for (const auto& p : sample_eval_problems(def, 0.1, 300, 1)) held.insert(p.text());
  REQUIRE(held.size() == 300);
  for (int i = 0; i < 20000; ++i) REQUIRE_FALSE(held.count(sample_train_problem(def, 0.1, rng).text()));
}

TEST_CASE("GRPO group advantages on hand-computed rewards", "[toy]") {
  // Group [1,0,0,1]: mean 0.5, sample std sqrt(1/3) = 0.57735; A = +-0.5 / (0.57735 + 1e-4).
  // Group [1,1,1,1]: std 0, A = 0.
  const auto adv = group_advantages({1, 0, 0, 1, 1, 1, 1, 1}, 4, 1e-4);
  const std::vector<double> expect = {0.8658754297607016, -0.8658754297607016, -0.8658754297607016, 0.8658754297607016,
                                      0, 0, 0, 0};
  REQUIRE(adv.size() == expect.size());
  for (size_t i = 0; i < adv.size(); ++i) REQUIRE(adv[i] == Approx(expect[i]).margin(1e-12));
  // [1,0,0]: mean 1/3, std sqrt((4/9 + 1/9 + 1/9) / 2) = 0.57735.
  const auto adv3 = group_advantages({1, 0, 0}, 3, 1e-4);
  REQUIRE(adv3[0] == Approx(1.1545005730142688).epsilon(1e-12));
  REQUIRE(adv3[1] == Approx(-0.5772502865071343).epsilon(1e-12));
  REQUIRE_THROWS_AS(group_advantages({1, 0, 1}, 2), Error);
  REQUIRE_THROWS_AS(group_advantages({1, 0}, 1), Error);
}

TEST_CASE("GRPO clipped loss and k3 KL on hand-computed tokens", "[toy]") {
  // Two completions of 3 and 2 tokens (the last slot of the second is padding).
  at::Tensor logp = at::tensor({-1.0, -0.5, -2.0, -0.3, -1.3, 0.0}, at::kDouble).view({2, 3}).set_requires_grad(true);
  at::Tensor old = at::tensor({-1.2, -0.5, -1.0, -0.3, -1.0, -5.0}, at::kDouble).view({2, 3});
  at::Tensor ref = at::tensor({-1.1, -0.4, -2.0, -0.5, -1.2, -5.0}, at::kDouble).view({2, 3});
  at::Tensor mask = at::tensor({1.0, 1.0, 1.0, 1.0, 1.0, 0.0}, at::kDouble).view({2, 3});
  at::Tensor adv = at::tensor({1.0, -2.0}, at::kDouble);
  // Token by token (clip 0.2, beta 0.1):
  //  (0,0) r=e^0.2=1.2214 > 1.2 with A>0: clipped, policy -1.2;   KL e^-0.1+0.1-1 = 0.0048374
  //  (0,1) r=1: policy -1.0;                                     KL e^0.1-0.1-1  = 0.0051709
  //  (0,2) r=e^-1=0.36788 (A>0 takes the unclipped min): -0.36788; KL 0
  //  (1,0) r=1, A=-2: policy 2.0;                                 KL e^-0.2+0.2-1 = 0.0187308
  //  (1,1) r=e^-0.3=0.74082 < 0.8 with A<0: clipped, policy 1.6;  KL 0.0051709
  // loss = mean over completions of the per-token mean = 0.47278444; policy part 0.47202009;
  // mean KL over the 5 tokens 0.00678200; 2 of 5 tokens clipped.
  GrpoLossParts parts = grpo_loss(logp, old, ref, adv, mask, 0.2, 0.1);
  REQUIRE(parts.loss.item<double>() == Approx(0.4727844405187938).epsilon(1e-10));
  REQUIRE(parts.policy_loss == Approx(0.47202009313809296).epsilon(1e-10));
  REQUIRE(parts.kl == Approx(0.006782001453047348).epsilon(1e-10));
  REQUIRE(parts.clip_fraction == Approx(0.4));
  // Gradients: clipped tokens pass only the KL gradient beta*(1 - e^(ref-logp)); others also -r*A;
  // each divided by the completion's length and the number of completions.
  parts.loss.backward();
  const std::vector<double> g = {0.001586043032734008, -0.16841951530126079, -0.06131324019524039,
                                 0.5045317311730505,   -0.002629272951891193, 0.0};
  at::Tensor grad = logp.grad().reshape({-1});
  for (int i = 0; i < 6; ++i) REQUIRE(grad[i].item<double>() == Approx(g[i]).margin(1e-12));
}
