// circuitscope pairs A_DIR B_DIR --prompts F --out pairs.jsonl [--reverse] [--think on|off] [sampling]
// circuitscope pairs --numeric --prompts F --out pairs.jsonl [--tokenizer DIR] [--form answer|continuation]
#include <spdlog/spdlog.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "progress.hpp"
#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pairs.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct PairsOptions {
  std::vector<std::string> dirs;  // A_DIR B_DIR
  std::string prompts;
  std::string out;
  std::string dtype = "f32";
  std::string device = "cpu";
  std::string think;  // "" = on
  std::string system;
  int64_t max_new_tokens = 32;
  bool greedy = false;
  double temperature = 0.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  int64_t batch_size = 8;
  bool reverse = false;
  bool keep_identical = false;
  bool numeric = false;
  std::string tokenizer;
  int64_t max_operand = -1;
  std::string form = "answer";
};

void put_id(nlohmann::ordered_json& j, const PromptItem& it) {
  if (!it.id.empty()) j["id"] = nlohmann::ordered_json::parse(it.id);
}

int run_numeric(const PairsOptions& o) {
  if (o.dirs.size() > 1) throw Error(ErrorCode::kUsage, "--numeric takes no model pair: give at most one folder (its tokenizer)");
  if (o.reverse || o.keep_identical || !o.think.empty() || !o.system.empty() || o.greedy || o.temperature > 0 ||
      o.top_p < 1.0 || o.top_k > 0)
    throw Error(ErrorCode::kUsage, "--reverse, --keep-identical, --think, --system and the sampling options apply to "
                                   "model-opening pairs, not --numeric");
  if (o.max_operand > 1000000) throw Error(ErrorCode::kUsage, "--max-operand: at most 1000000");
  const std::string tok_dir = !o.tokenizer.empty() ? o.tokenizer : (o.dirs.empty() ? "" : o.dirs[0]);
  std::unique_ptr<Tokenizer> tok;
  if (!tok_dir.empty()) tok = load_tokenizer(tok_dir);
  else spdlog::warn("no tokenizer given (--tokenizer DIR): answers are made to differ in their first character");
  const auto items = read_prompt_file(o.prompts);
  AtomicFileWriter file(o.out);  // appears whole, once every line is written
  std::ostream& out = file.stream();
  std::mt19937_64 rng(o.seed);
  NumericPairOptions nopts;
  nopts.max_operand = o.max_operand;
  int64_t written = 0, unchanged = 0;
  for (const auto& it : items) {
    std::optional<NumericPair> p;
    try {
      p = make_numeric_pair(it.prompt, nopts, rng, tok.get());
    } catch (const Error& e) {
      throw Error(e.code(), o.prompts + ":" + std::to_string(it.line) + ": " + e.what());
    }
    if (!p) {
      ++unchanged;
      spdlog::warn("{}:{}: no single-operand change gives an answer with a different first token; skipped", o.prompts,
                   it.line);
      continue;
    }
    nlohmann::ordered_json j;
    j["clean"] = p->clean;
    j["corrupted"] = p->corrupted;
    if (o.form == "answer") {
      j["answer"] = p->answer;
      j["wrong"] = p->wrong;
    } else {
      j["clean_continuation"] = p->answer;
      j["corrupted_continuation"] = p->wrong;
    }
    j["problem"] = p->clean_problem;
    j["corrupted_problem"] = p->corrupted_problem;
    put_id(j, it);
    out << j.dump() << "\n";
    ++written;
  }
  file.commit();
  spdlog::info("wrote {} numeric pair(s) to {}; {} problem(s) skipped (no operand change moves the answer's first token)",
               written, o.out, unchanged);
  if (written == 0) spdlog::warn("no pair written");
  return 0;
}

int run_pairs(const PairsOptions& o) {
  if (o.numeric) return run_numeric(o);
  if (o.dirs.size() != 2)
    throw Error(ErrorCode::kUsage, "pairs needs two model folders, A_DIR (post-trained: clean) and B_DIR (base: corrupted), "
                                   "or --numeric");
  if (!o.tokenizer.empty() || o.max_operand >= 0 || o.form != "answer")
    throw Error(ErrorCode::kUsage, "--tokenizer, --max-operand and --form apply to --numeric pairs only");
  if (o.greedy && (o.temperature > 0 || o.top_p < 1.0 || o.top_k > 0))
    throw Error(ErrorCode::kUsage, "--greedy cannot be combined with --temperature/--top-p/--top-k");
  const auto items = read_prompt_file(o.prompts);
  AtomicFileWriter file(o.out);  // appears whole, once every line is written
  std::ostream& out = file.stream();

  // A is the post-trained model (clean), B the base model (corrupted); --reverse swaps the roles.
  const std::string& dir_a = o.dirs[0];
  const std::string& dir_b = o.dirs[1];
  OpeningPairOptions po;
  po.dtype = o.dtype;
  po.device = o.device;
  po.reverse = o.reverse;
  po.keep_identical = o.keep_identical;
  OpeningOptions& g = po.generation;
  g.think = o.think != "off";
  g.system = o.system;
  g.max_new_tokens = o.max_new_tokens;
  g.batch_size = o.batch_size;
  const bool sampling = !o.greedy && (o.temperature > 0 || o.top_p < 1.0 || o.top_k > 0);
  g.sampling.greedy = !sampling;
  g.sampling.temperature = o.temperature > 0 ? o.temperature : 1.0;
  g.sampling.top_p = o.top_p;
  g.sampling.top_k = o.top_k;
  g.sampling.seed = o.seed;

  EtaLog eta("pairs", "prompts (both models)");
  const OpeningPairs pairs = make_opening_pairs(
      dir_a, dir_b, items, po, [&](int64_t done, int64_t total) { eta(static_cast<size_t>(done), static_cast<size_t>(total)); });
  for (const std::string& line : pairs.lines) out << line << "\n";
  file.commit();
  const size_t written = pairs.lines.size();
  spdlog::info("wrote {} pair(s) to {} (clean = {}, corrupted = {})", written, o.out, o.reverse ? dir_b : dir_a,
               o.reverse ? dir_a : dir_b);
  if (written == 0) spdlog::warn("no pair written");
  return 0;
}

CommandRegistrar reg_cmd_pairs({"pairs", "Build clean/corrupted pairs: two models' own openings, or numeric corruptions",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<PairsOptions>();
                        sub->add_option("dirs", o->dirs,
                                        "A_DIR B_DIR: post-trained model (clean) and base model (corrupted); with "
                                        "--numeric, an optional folder whose tokenizer is used")
                            ->expected(0, 2);
                        sub->add_option("--prompts", o->prompts,
                                        "prompts: a text file (one problem a line) or JSONL {\"prompt\": ...}")
                            ->required();
                        sub->add_option("--out", o->out, "output JSONL (text-form pairs)")->required();
                        sub->add_option("--dtype", o->dtype, "compute dtype: f32 | bf16")
                            ->check(CLI::IsMember({"f32", "bf16"}));
                        sub->add_option("--device", o->device, "cpu | cuda | cuda:N");
                        sub->add_option("--think", o->think, "enable_thinking for the chat template: on (default) or off")
                            ->check(CLI::IsMember({"on", "off"}));
                        sub->add_option("--system", o->system, "system message before each prompt");
                        sub->add_option("--max-new-tokens", o->max_new_tokens, "opening length in tokens (default 32)")
                            ->check(CLI::PositiveNumber);
                        sub->add_flag("--greedy", o->greedy, "greedy openings (the default when no sampling option is set)");
                        sub->add_option("--temperature", o->temperature, "sampling temperature (> 0 enables sampling)")
                            ->check(CLI::NonNegativeNumber);
                        sub->add_option("--top-p", o->top_p, "nucleus sampling threshold")->check(CLI::Range(0.0, 1.0));
                        sub->add_option("--top-k", o->top_k, "keep the k most likely tokens")->check(CLI::NonNegativeNumber);
                        sub->add_option("--seed", o->seed, "sampling seed; with --numeric, the seed choosing operand changes");
                        sub->add_option("--batch-size", o->batch_size, "prompts generated together (default 8)")
                            ->check(CLI::PositiveNumber);
                        sub->add_flag("--reverse", o->reverse,
                                      "clean = B's opening, corrupted = A's (pairs for the base model's circuit)");
                        sub->add_flag("--keep-identical", o->keep_identical,
                                      "keep prompts whose two openings are identical (skipped by default)");
                        sub->add_flag("--numeric", o->numeric,
                                      "numeric-corruption pairs: the same arithmetic problem with one operand changed");
                        sub->add_option("--tokenizer", o->tokenizer,
                                        "--numeric: folder whose tokenizer decides that the answers' first tokens differ");
                        sub->add_option("--max-operand", o->max_operand,
                                        "--numeric: largest value for a changed operand (default: the problem's largest "
                                        "operand, at least 9)")
                            ->check(CLI::NonNegativeNumber);
                        sub->add_option("--form", o->form,
                                        "--numeric: answer (answer/wrong keys) or continuation (clean_continuation/"
                                        "corrupted_continuation = each problem's answer)")
                            ->check(CLI::IsMember({"answer", "continuation"}));
                        sub->footer(
                            "Model-opening pairs: each prompt is rendered as a user message with each model's chat "
                            "template and continued by each model; lines are {\"clean\", \"corrupted\" (both the prompt), "
                            "\"clean_continuation\" (A's opening), \"corrupted_continuation\" (B's), \"problem\"}, for "
                            "attribute --chat with a sequence metric. Openings stop at the end-of-turn token (config "
                            "eos ids and tokenizer_config eos_token), which is left out. Numeric pairs: lines "
                            "{\"clean\", \"corrupted\", \"answer\", \"wrong\"}.");
                        return [o] { return run_pairs(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
