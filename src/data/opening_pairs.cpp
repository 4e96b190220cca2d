// Model-opening pairs: each model's own continuation of the same prompt (pairs A B).
#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pairs.hpp"
#include "circuitscope/tokenizer_json.hpp"

namespace circuitscope {

OpeningPairs make_opening_pairs(const std::string& dir_a, const std::string& dir_b, const std::vector<PromptItem>& items,
                                const OpeningPairOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  auto tok_a = load_tokenizer(dir_a);
  auto tok_b = load_tokenizer(dir_b);
  const TokenizerConfig cfg_a = load_tokenizer_config(dir_a);
  const TokenizerConfig cfg_b = load_tokenizer_config(dir_b);
  std::vector<std::string> users;
  for (const auto& it : items) users.push_back(it.prompt);
  check_same_tokenizer(*tok_a, dir_a, *tok_b, dir_b, users);

  const int64_t n = static_cast<int64_t>(items.size());
  // One model in memory at a time: the two may each be as large as the device allows.
  auto openings_of = [&](const std::string& dir, const Tokenizer& tok, const TokenizerConfig& cfg, const char* role,
                         int64_t done_before) {
    spdlog::info("pairs: model {} ({}): generating openings", role, dir);
    auto model = HookedTransformer::from_pretrained(dir, {o.dtype, o.device});
    OpeningOptions g = o.generation;
    g.stop_ids = end_of_turn_ids(*model, tok, cfg);
    return generate_openings(*model, tok, cfg, users, g, [&](int64_t done) {
      if (progress) progress(done_before + done, 2 * n);
    });
  };
  const bool sampled = !o.generation.sampling.greedy;
  spdlog::info("pairs: {} prompt(s), {} opening(s) of up to {} token(s), think {}", n, sampled ? "sampled" : "greedy",
               o.generation.max_new_tokens,
               !o.generation.think.has_value() ? "(template default)" : *o.generation.think ? "on" : "off");
  const std::vector<Opening> open_a = openings_of(dir_a, *tok_a, cfg_a, "A", 0);
  const std::vector<Opening> open_b = openings_of(dir_b, *tok_b, cfg_b, "B", n);

  OpeningPairs out;
  // attribute tokenizes a continuation on its own; warn when that does not give back the generated
  // tokens (e.g. invalid UTF-8 from byte tokens, or merges across the pieces).
  for (const auto* v : {&open_a, &open_b})
    for (const Opening& op : *v) out.not_round_trip += tok_a->encode(op.text, /*add_special_tokens=*/false).ids != op.ids;
  if (out.not_round_trip > 0)
    spdlog::warn("pairs: {} of {} opening(s) do not re-tokenize to the generated tokens; attribute will score the "
                 "re-tokenized text", out.not_round_trip, 2 * n);

  std::map<std::string, int64_t> finish_a, finish_b;
  for (int64_t i = 0; i < n; ++i) {
    const Opening& a = open_a[i];
    const Opening& b = open_b[i];
    ++finish_a[a.finish_reason];
    ++finish_b[b.finish_reason];
    if (a.ids == b.ids) {
      ++out.identical;
      if (!o.keep_identical) continue;
    }
    const Opening& clean = o.reverse ? b : a;
    const Opening& corrupted = o.reverse ? a : b;
    // A sequence metric scores the clean opening's tokens: an empty one (the model ended its turn
    // at once) carries nothing to score, and attribute would refuse the line.
    if (clean.text.empty()) {
      ++out.empty_clean;
      continue;
    }
    nlohmann::ordered_json j;
    j["clean"] = items[i].prompt;
    j["corrupted"] = items[i].prompt;
    j["clean_continuation"] = clean.text;
    j["corrupted_continuation"] = corrupted.text;
    j["problem"] = items[i].problem;
    if (!items[i].id.empty()) j["id"] = nlohmann::ordered_json::parse(items[i].id);
    out.lines.push_back(j.dump());
  }
  auto reasons = [](const std::map<std::string, int64_t>& m) {
    std::string s;
    for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k + " " + std::to_string(v);
    return s;
  };
  spdlog::info("pairs: finish reasons A ({}), B ({})", reasons(finish_a), reasons(finish_b));
  if (out.identical > 0)
    spdlog::info("pairs: {} of {} prompt(s) gave identical openings{}", out.identical, n,
                 o.keep_identical ? " (kept: --keep-identical)" : " and were skipped: they carry no signal");
  if (out.empty_clean > 0)
    spdlog::info("pairs: {} of {} prompt(s) were skipped: the clean model's opening ({}) is empty", out.empty_clean, n,
                 o.reverse ? dir_b : dir_a);
  return out;
}

}  // namespace circuitscope
