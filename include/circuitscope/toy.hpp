// Toy lab: a synthetic multi-step integer arithmetic task, a character-level Hugging Face tokenizer
// with a Qwen3-style chat template, tiny Qwen2 models, and their training (base, SFT, GRPO) and
// held-out evaluation. Checkpoints are ordinary Hugging Face folders.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "circuitscope/config.hpp"

namespace circuitscope {
class HookedTransformer;
}  // namespace circuitscope

namespace circuitscope::toy {

// An expression over non-negative integers with + - * and the usual precedence, e.g. "17+25*3".
struct ArithProblem {
  std::vector<int64_t> operands;  // left to right
  std::vector<char> ops;          // ops[i] joins operands[i] and operands[i+1]
  std::string text() const;       // "17+25*3"
  int64_t answer() const;
  // Step-by-step trace: multiplications first (left to right), then + and - left to right, one step
  // per line, e.g. "25*3=75\n17+75=92". A single-operand problem has an empty trace.
  std::string trace() const;
};

struct ArithSpec {
  int min_operands = 2;
  int max_operands = 3;
  int64_t max_operand = 20;  // operands drawn from [0, max_operand]
  std::string ops = "+-*";
};

ArithProblem sample_problem(const ArithSpec& spec, std::mt19937_64& rng);
// Parses "17+25*3"; throws Error(kInput) on anything else.
ArithProblem parse_problem(const std::string& text);
// The integer after the last "=" or, failing that, the last integer in `completion`; nullopt if none.
std::optional<int64_t> extract_answer(const std::string& completion);

// The toy lab's default task: 2 or 3 operands in [0, 9] joined by + - *.
inline ArithSpec toy_default_spec() { return ArithSpec{2, 3, 9, "+-*"}; }

// ---------------------------------------------------------------------------------------------
// Held-out split: a problem belongs to the evaluation set when a hash of its text falls below
// eval_fraction, so training never samples an evaluation problem whatever the seed.
bool is_eval_problem(const ArithProblem& p, double eval_fraction);
// Samples problems that are not in the evaluation set (rejection sampling).
ArithProblem sample_train_problem(const ArithSpec& spec, double eval_fraction, std::mt19937_64& rng);
// Up to n distinct evaluation problems, reproducible from `seed` (fewer if the spec has fewer).
std::vector<ArithProblem> sample_eval_problems(const ArithSpec& spec, double eval_fraction, int64_t n, uint64_t seed);

// The task as a chat: the user message is the expression followed by "=" ("17+25*3=").
std::string user_message(const ArithProblem& p);
// The assistant completion after the generation prompt. Think off: "92<|im_end|>". Think on (the
// prompt already ends with "<think>\n"): "25*3=75\n17+75=92\n</think>\n\n92<|im_end|>".
std::string target_completion(const ArithProblem& p, bool think);
// The final answer of a completion (decoded with special tokens): the text after the last
// "</think>" (think on: nullopt when there is none), up to "<|im_end|>", must be exactly an integer
// once surrounding whitespace is trimmed; nullopt otherwise.
std::optional<int64_t> final_answer(const std::string& completion, bool think);

// ---------------------------------------------------------------------------------------------
// Tokenizer: one token per character (printable ASCII, tab, newline) plus the special tokens below,
// as a BPE tokenizer.json without merges.
inline constexpr const char* kEndOfText = "<|endoftext|>";
inline constexpr const char* kImStart = "<|im_start|>";
inline constexpr const char* kImEnd = "<|im_end|>";
inline constexpr const char* kThinkOpen = "<think>";
inline constexpr const char* kThinkClose = "</think>";
inline constexpr const char* kUnk = "<unk>";

std::string toy_tokenizer_json();         // tokenizer.json content
std::string toy_chat_template();          // Jinja source (Qwen3 style, honours enable_thinking)
std::string toy_tokenizer_config_json();  // tokenizer_config.json content (includes the template)
int64_t toy_vocab_size();
// Writes tokenizer.json and tokenizer_config.json into dir (created if needed).
void write_toy_tokenizer(const std::string& dir);

// ---------------------------------------------------------------------------------------------
// Models.
struct ToyModelShape {
  int64_t layers = 4;
  int64_t d_model = 128;
  int64_t heads = 8;
  int64_t kv_heads = 2;
  int64_t d_mlp = 512;
  int64_t max_positions = 256;
  bool tie_embeddings = true;
};

// A Qwen2 config of that shape over the toy vocabulary (eos: <|im_end|>, <|endoftext|>).
ModelConfig toy_model_config(const ToyModelShape& shape);
// Random initialisation (normal std 0.02, norms 1, biases 0) from a seeded generator.
std::unique_ptr<HookedTransformer> init_toy_model(const ToyModelShape& shape, uint64_t seed);
// Writes a Hugging Face folder: config.json (Qwen2ForCausalLM), generation_config.json,
// model.safetensors (float32), and tokenizer.json + tokenizer_config.json copied from
// tokenizer_dir (or the toy tokenizer when empty). Files are replaced, the folder is created.
void save_hf_checkpoint(const HookedTransformer& model, const std::string& dir, const std::string& tokenizer_dir = "");

// ---------------------------------------------------------------------------------------------
// GRPO arithmetic, kept pure so tests can check it by hand.
// Group-normalised advantages: rewards come in consecutive groups of group_size completions of the
// same prompt; A = (r - mean) / (std + eps) with the sample standard deviation (n - 1), as TRL.
std::vector<double> group_advantages(const std::vector<double>& rewards, int64_t group_size, double eps = 1e-4);

struct GrpoLossParts {
  at::Tensor loss;           // scalar, differentiable through logp
  double policy_loss = 0.0;  // the clipped-surrogate part
  double kl = 0.0;           // mean k3 KL per completion token
  double clip_fraction = 0.0;  // share of completion tokens whose ratio was clipped
};
// logp, old_logp, ref_logp, mask: [N,T] (mask 1 on completion tokens); advantages: [N].
// Per token: -min(r A, clip(r, 1-clip_eps, 1+clip_eps) A) + beta * (exp(ref-logp) - (ref-logp) - 1)
// with r = exp(logp - old_logp); averaged over each completion's tokens, then over completions.
GrpoLossParts grpo_loss(const at::Tensor& logp, const at::Tensor& old_logp, const at::Tensor& ref_logp,
                        const at::Tensor& advantages, const at::Tensor& mask, double clip_eps, double beta);

// ---------------------------------------------------------------------------------------------
// Training. Writes OUT/checkpoint-STEP/ every save_every steps and OUT/final/ at the end; each is a
// complete Hugging Face folder plus toy_lab.json (stage, step, task, options). Checkpoints also hold
// optimizer.pt, so a rerun with the same OUT resumes from the last one (the batch of each step is
// derived from (seed, step), so no RNG state has to be stored). GRPO appends to OUT/rewards.jsonl.
struct TrainOptions {
  std::string stage = "base";  // base | sft | grpo
  std::string out_dir;
  std::string init_dir;  // sft, grpo: the starting checkpoint (grpo: also the KL reference)
  ArithSpec spec = toy_default_spec();
  double eval_fraction = 0.1;
  ToyModelShape shape;  // used when there is no init_dir
  uint64_t seed = 1;
  int64_t steps = 0;        // 0: the stage's default
  int64_t save_every = 0;   // 0: steps / 4 (base), steps / 8 (sft, grpo)
  int64_t batch_size = 0;   // base, sft: sequences per step (32); grpo: prompts per step (32). 0: default
  double lr = 0.0;          // 0: the stage's default
  double weight_decay = 0.01;
  double warmup_fraction = 0.05;
  double grad_clip = 1.0;
  bool resume = true;
  std::optional<bool> think;  // default: off for base, on for sft and grpo
  // GRPO
  int64_t group_size = 8;
  int64_t max_new_tokens = 48;
  double temperature = 1.0;
  double clip_eps = 0.2;
  double kl_beta = 0.04;
  double format_reward = 0.0;
  double adv_eps = 1e-4;
  int64_t iterations = 1;  // policy updates per batch of samples
  bool progress = true;
  // Stop once this step is done, as if interrupted (no final/ is written); 0: run to the end.
  int64_t stop_after = 0;
};

// Fills the stage defaults (steps, batch size, lr, think) into a copy of the options.
TrainOptions resolve_train_defaults(TrainOptions o);

struct TrainResult {
  int64_t steps = 0;          // steps done in total
  int64_t resumed_from = 0;   // 0: fresh start
  double seconds = 0.0;       // wall time of this run
  double final_loss = 0.0;    // base/sft: the last step's loss; grpo: the last step's loss
  std::string final_dir;
};
TrainResult train_toy(const TrainOptions& options);

// ---------------------------------------------------------------------------------------------
// Held-out evaluation: greedy decoding of n evaluation problems.
struct EvalOptions {
  int64_t n = 200;
  bool think = false;
  uint64_t seed = 1234;
  int64_t batch_size = 100;
  int64_t max_new_tokens = 64;
  ArithSpec spec = toy_default_spec();
  double eval_fraction = 0.1;
};
struct EvalExample {
  std::string problem;
  int64_t answer = 0;
  std::string completion;
  std::optional<int64_t> predicted;
};
struct EvalResult {
  int64_t n = 0;
  int64_t correct = 0;
  int64_t answered = 0;  // completions with a well-formed final answer
  double accuracy = 0.0;
  double mean_completion_tokens = 0.0;
  std::vector<EvalExample> examples;
};
EvalResult evaluate_toy(HookedTransformer& model, const std::string& tokenizer_dir, const EvalOptions& options);

// The task, stage and options a toy checkpoint was trained with (its toy_lab.json), if any.
struct ToyCheckpointInfo {
  std::string stage;
  int64_t step = 0;
  ArithSpec spec;
  double eval_fraction = 0.1;
  bool think = false;
};
std::optional<ToyCheckpointInfo> read_toy_info(const std::string& dir);

}  // namespace circuitscope::toy
