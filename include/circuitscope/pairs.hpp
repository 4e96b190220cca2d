// Building clean/corrupted pair datasets (text form, see dataset.hpp) from prompts:
//  - model-opening pairs ("Thinking Sparks" style): the same user message, continued by two models
//    that share a tokenizer (a post-trained model A and its base model B);
//  - numeric-corruption pairs: the same arithmetic problem with one operand changed.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/generate.hpp"

namespace circuitscope {

class HookedTransformer;
class Tokenizer;

// One prompt of a prompts file. Plain text files: every non-blank line is a prompt (kept as is,
// apart from a trailing '\r'). JSONL files (detected by a first non-blank line starting with '{'):
// {"prompt": "..."} with optional "problem" and "id", passed through to the pairs.
struct PromptItem {
  std::string prompt;
  std::string problem;  // "problem" of a JSONL line, else the prompt
  std::string id;       // "id" of a JSONL line as JSON text ("" if absent)
  int64_t line = 0;     // 1-based line in the file
};

// Throws Error(kIo) if unreadable, Error(kInput) "PATH:LINE: reason" on a bad JSONL line, and
// Error(kInput) when the file holds no prompt.
std::vector<PromptItem> read_prompt_file(const std::string& path);

// Throws Error(kInput) naming both sources when the two tokenizers differ: vocabulary size, any
// id's token, or the encoding of a few probe texts (`extra_probes` adds texts, e.g. rendered prompts).
void check_same_tokenizer(const Tokenizer& a, const std::string& a_name, const Tokenizer& b, const std::string& b_name,
                          const std::vector<std::string>& extra_probes = {});

struct OpeningOptions {
  std::optional<bool> think = true;  // enable_thinking for the chat template (nullopt: template default)
  std::string system;                // system message ("" : none)
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;          // greedy by default
  int64_t batch_size = 8;            // prompts generated together (left-padded)
  std::vector<int64_t> stop_ids;     // end-of-turn ids (kept out of the text)
};

struct Opening {
  std::string rendered;          // the prompt as rendered by the chat template
  std::vector<int64_t> ids;      // generated ids, end-of-turn token excluded
  std::string text;              // ids decoded, special tokens kept
  std::string finish_reason;     // "eos" | "length"
};

// The ids that end a model's turn: the config's eos ids and the tokenizer_config eos_token.
std::vector<int64_t> end_of_turn_ids(const HookedTransformer& model, const Tokenizer& tok, const TokenizerConfig& cfg);

// Renders each user message with the chat template (add_generation_prompt) and generates the
// model's opening. `on_done(n)` is called after each batch with the number of prompts done.
std::vector<Opening> generate_openings(HookedTransformer& model, const Tokenizer& tok, const TokenizerConfig& cfg,
                                       const std::vector<std::string>& user_messages, const OpeningOptions& opts,
                                       const std::function<void(int64_t done)>& on_done = {});

// ---- model-opening pairs (the Thinking Sparks construction) ----

struct OpeningPairOptions {
  std::string dtype = "f32";     // compute dtype of both models
  std::string device = "cpu";
  OpeningOptions generation;     // stop_ids are filled per model (end_of_turn_ids)
  bool reverse = false;          // clean = B's opening, corrupted = A's (pairs for the base model's circuit)
  bool keep_identical = false;   // keep prompts whose two openings are identical (they carry no signal)
};

struct OpeningPairs {
  // JSONL lines (no newline): {"clean", "corrupted" (both the prompt), "clean_continuation",
  // "corrupted_continuation", "problem"[, "id"]}, in prompt order.
  std::vector<std::string> lines;
  int64_t identical = 0;       // prompts whose openings were identical
  int64_t empty_clean = 0;     // prompts skipped because the clean opening is empty
  int64_t not_round_trip = 0;  // openings whose text does not re-tokenize to the generated ids
};

// Loads A (post-trained, clean) and B (base, corrupted) one after the other, checks that they share
// a tokenizer, generates each model's opening for every prompt, and logs what was skipped and why.
// progress(done, total) counts openings of both models.
OpeningPairs make_opening_pairs(const std::string& dir_a, const std::string& dir_b, const std::vector<PromptItem>& items,
                                const OpeningPairOptions& options,
                                const std::function<void(int64_t done, int64_t total)>& progress = {});

// ---- numeric corruption ----

struct NumericPairOptions {
  // Largest value a changed operand may take; -1: the largest operand of the problem itself, at
  // least 9 (keeps the corrupted problem inside the distribution the prompts were drawn from).
  int64_t max_operand = -1;
};

struct NumericPair {
  std::string clean, corrupted;   // the prompt with the expression, and with one operand changed
  std::string clean_problem, corrupted_problem;  // the expressions alone, e.g. "17+25*3"
  std::string answer, wrong;      // the two answers as decimal text
  int64_t operand_index = -1;     // which operand changed
};

// Finds the first arithmetic expression (\d+([-+*]\d+)+) in `prompt`, changes one operand (same
// digit count preferred, so token lengths match) so that the answers' first tokens differ (under
// `tok`; without a tokenizer, their first characters), choosing among the candidates with `rng`.
// nullopt when no change gives different first tokens. Error(kInput) when the prompt holds no
// expression.
std::optional<NumericPair> make_numeric_pair(const std::string& prompt, const NumericPairOptions& opts,
                                             std::mt19937_64& rng, const Tokenizer* tok);

}  // namespace circuitscope
