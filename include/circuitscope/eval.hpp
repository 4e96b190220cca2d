// Benchmark evaluation under head interventions (the second half of the Thinking Sparks study):
// generate n samples per problem under each condition (baseline, heads zeroed, mean-ablated or
// scaled, random-head controls), grade them, and summarise pass@k, success@k, accuracy with
// bootstrap intervals, paired differences to the baseline, response lengths, cuts and loops.
// Every condition shares the problems and the per-sample seeds, so differences are paired.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "circuitscope/generate.hpp"
#include "circuitscope/grade.hpp"
#include "circuitscope/hooks.hpp"

namespace circuitscope {

class HookedTransformer;

// ---------------------------------------------------------------------------------------------
// Benchmarks: JSONL lines {"id", "problem", "answer"} with optional "choices", "aliases", "type".
struct BenchmarkItem {
  std::string id;
  std::string problem;
  std::string answer;
  std::vector<std::string> choices;
  std::vector<std::string> aliases;
  std::optional<AnswerKind> kind;
};

struct Benchmark {
  std::string path;
  std::string sha256;  // of the file's bytes
  std::vector<BenchmarkItem> items;
};

// Throws Error(kIo) when unreadable, Error(kInput) naming file:line on a bad line or a repeated id.
Benchmark load_benchmark(const std::string& path);

// The user message for a problem: `tmpl` with {problem} and {choices} ("A) ...\nB) ..." lines)
// replaced. A template without {choices} gets the choice lines appended when the item has choices.
std::string format_problem(const std::string& tmpl, const BenchmarkItem& item);

// ---------------------------------------------------------------------------------------------
// Conditions.
enum class HeadMode { kNone, kZero, kMean, kScale };
const char* head_mode_name(HeadMode m);  // "none" | "zero" | "mean" | "scale"

struct EvalCondition {
  std::string name;
  HeadMode mode = HeadMode::kNone;
  std::vector<HeadIntervention> heads;  // factor is used by kScale only
  std::string control_of;               // a random control: the condition it mirrors
};

// The head sets of a `compare` JSON: "emergent", "retained", "lost" -> (layer, head), in its order.
struct HeadSets {
  std::string path;
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> sets;
};
// Error(kIo) / Error(kFormat) naming the file and key.
HeadSets read_head_sets(const std::string& compare_json);

// "L.H,L.H" (and "L.H=F" entries, for scaling) or "@emergent" / "@retained" / "@lost" from a
// comparison. default_factor applies to entries without "=F".
std::vector<HeadIntervention> parse_head_list(const std::string& list, const HeadSets* heads_from, double default_factor);
// "NAME:none", "NAME:zero:HEADS", "NAME:mean:HEADS", "NAME:scale:HEADS" (each head L.H=F) or
// "NAME:scale=F:HEADS".
EvalCondition parse_condition(const std::string& spec, const HeadSets* heads_from);
// K controls "NAME~rand1".."NAME~randK": for each layer, as many heads as `chosen` has there, drawn
// without replacement from that layer's other heads (the chosen ones only when too few are left),
// each head keeping its factor's place. Seeded; the same seed gives the same sets.
std::vector<EvalCondition> random_controls(const EvalCondition& chosen, int64_t k, int64_t n_heads, uint64_t seed);
// Checks layers and heads against the model; Error(kUsage) naming the condition.
void validate_condition(const EvalCondition& c, int64_t n_layers, int64_t n_heads);

// Mean output (hook_z) of every head of the given layers over the real tokens of `prompts`:
// [n_layers] entries, undefined for layers not asked for, else [n_heads, d_head] float32.
std::vector<at::Tensor> mean_head_outputs(HookedTransformer& model, const std::vector<std::vector<int64_t>>& prompts,
                                          const std::vector<int64_t>& layers, int64_t batch_size, int64_t pad_id);
// Attaches the condition's write hooks on blocks.{l}.attn.hook_z; removed with the handles.
std::vector<HookHandle> apply_condition(HookManager& hooks, const EvalCondition& c, const std::vector<at::Tensor>& means,
                                        int64_t n_heads);

// ---------------------------------------------------------------------------------------------
// Loops. A response loops when its tokens (a final EOS left out) end with a block of p tokens
// (1 <= p <= max_period) repeated back to back, covering at least min_span tokens, at least
// min_repeats times; or at least min_cut_repeats times when it was cut at max_new_tokens.
struct LoopSpec {
  int64_t max_period = 64;
  int64_t min_repeats = 4;
  int64_t min_cut_repeats = 2;
  int64_t min_span = 16;
};
struct LoopInfo {
  bool looping = false;
  // Looping: the shortest period that loops. Otherwise the period with the most copies (the
  // shortest among ties), 0 when the end does not repeat at all.
  int64_t period = 0;
  int64_t repeats = 0;  // complete copies of the final block of that period (1 = no repetition)
};
LoopInfo detect_loop(const std::vector<int64_t>& tokens, bool cut, const LoopSpec& spec);

// ---------------------------------------------------------------------------------------------
// Running.
struct EvalPromptSpec {
  bool chat = false;
  std::optional<bool> think;  // enable_thinking for the template (nullopt: the template's default)
  std::string system;
  std::string prompt_template = "{problem}";
  std::string chat_template_file;  // overrides the model's template
};

struct EvalSpec {
  EvalPromptSpec prompt;
  int64_t samples = 1;
  SamplingOptions sampling;  // greedy when sampling.greedy
  int64_t max_new_tokens = 512;
  int64_t batch_size = 16;     // generated rows per batch
  std::vector<int64_t> ks = {1};
  std::vector<EvalCondition> conditions;  // the baseline (mode none) first
  LoopSpec loop;
  int64_t shard_index = 1, shard_count = 1;  // 1-based I/N as sweeps: contiguous blocks of problems
  int64_t bootstrap_samples = 2000;
  void validate() const;
};

struct EvalSample {
  std::string condition;
  std::string id;
  int64_t sample = 0;
  std::string response;
  std::optional<std::string> extracted;
  bool correct = false;
  int64_t tokens = 0;          // generated tokens, a final EOS included
  std::string finish_reason;   // "stop" | "length"
  bool loop = false;
};
nlohmann::ordered_json eval_sample_json(const EvalSample& s);
EvalSample eval_sample_from_json(const nlohmann::json& j, const std::string& origin);

struct EvalProgress {
  std::string condition;
  int64_t rows_done = 0, rows_total = 0;  // over all conditions
  int64_t tokens = 0;
  double seconds = 0;
};

struct EvalRun {
  nlohmann::ordered_json settings;   // what fixes the results (model, benchmark, prompts, sampling, conditions)
  std::vector<std::string> problem_ids;  // the shard's problems, in benchmark order
  std::vector<EvalSample> samples;   // by condition, then problem, then sample
};

// FNV-1a, 64 bit: the same on every platform (std::hash is not).
uint64_t stable_hash(const std::string& s);
// The seed of sample `sample` of problem `id` (same under every condition, shard and batch).
uint64_t sample_seed(uint64_t seed, const std::string& id, int64_t sample);

EvalRun run_eval(HookedTransformer& model, const std::string& model_dir, const Benchmark& bench, const EvalSpec& spec,
                 const std::function<void(const EvalProgress&)>& on_progress = {});

// ---------------------------------------------------------------------------------------------
// Summaries, from samples alone (so merged shards summarise like one run).
// Unbiased pass@k for n samples with c correct: 1 - C(n-c, k) / C(n, k).
double pass_at_k(int64_t n, int64_t c, int64_t k);
nlohmann::ordered_json eval_summary(const nlohmann::ordered_json& settings, const std::vector<std::string>& problem_ids,
                                    const std::vector<EvalSample>& samples);
std::string format_eval_table(const nlohmann::ordered_json& summary);

// Files: DIR/samples.jsonl and DIR/summary.json for a whole run; DIR/shards/I-of-N.{json,samples.jsonl}
// for a shard (settings + problem ids, samples), combined by merge_eval_shards.
void write_eval_run(const std::string& dir, const EvalRun& run, const nlohmann::ordered_json& summary);
void write_eval_shard(const std::string& dir, const EvalRun& run, int64_t shard_index, int64_t shard_count);
// Reads every shard of DIR; Error(kInput) when one is missing or the settings differ.
EvalRun merge_eval_shards(const std::string& dir);

}  // namespace circuitscope
