// A model's own opening for chat prompts: render with its chat template, generate, decode.
#include <algorithm>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pairs.hpp"
#include "circuitscope/tokenizer.hpp"

namespace circuitscope {

std::vector<int64_t> end_of_turn_ids(const HookedTransformer& model, const Tokenizer& tok, const TokenizerConfig& cfg) {
  std::vector<int64_t> ids = model.config().eos_token_ids;
  // Chat models may end a turn with a token the config does not list (e.g. <|im_end|> when
  // config.json names <|endoftext|>); tokenizer_config's eos_token is the chat template's.
  if (cfg.eos_token)
    if (auto id = tok.token_to_id(*cfg.eos_token))
      if (std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  return ids;
}

std::vector<Opening> generate_openings(HookedTransformer& model, const Tokenizer& tok, const TokenizerConfig& cfg,
                                       const std::vector<std::string>& user_messages, const OpeningOptions& opts,
                                       const std::function<void(int64_t)>& on_done) {
  if (opts.batch_size < 1) throw Error(ErrorCode::kUsage, "batch size must be at least 1");
  std::vector<Opening> out(user_messages.size());
  std::vector<std::vector<int64_t>> prompt_ids(user_messages.size());
  for (size_t i = 0; i < user_messages.size(); ++i) {
    std::vector<ChatMessage> msgs;
    auto message = [](const char* role, const std::string& content) {
      ChatMessage m;
      m.role = role;
      m.content = content;
      return m;
    };
    if (!opts.system.empty()) msgs.push_back(message("system", opts.system));
    msgs.push_back(message("user", user_messages[i]));
    out[i].rendered = apply_chat_template(cfg, msgs, /*add_generation_prompt=*/true, opts.think);
    // The rendered text spells its special tokens, as HF's apply_chat_template(tokenize=True).
    prompt_ids[i] = tok.encode(out[i].rendered, /*add_special_tokens=*/false).ids;
    if (prompt_ids[i].empty()) throw Error(ErrorCode::kInput, "prompt " + std::to_string(i) + " renders to no tokens");
    for (int64_t id : prompt_ids[i])
      if (id >= model.config().vocab_size)
        throw Error(ErrorCode::kInput, "prompt " + std::to_string(i) + " has token id " + std::to_string(id) +
                                           ", outside the model's vocabulary of " +
                                           std::to_string(model.config().vocab_size));
  }
  GenerateOptions g;
  g.max_new_tokens = opts.max_new_tokens;
  g.sampling = opts.sampling;
  g.eos_ids = opts.stop_ids;
  const size_t bs = static_cast<size_t>(opts.batch_size);
  for (size_t start = 0; start < prompt_ids.size(); start += bs) {
    const size_t end = std::min(prompt_ids.size(), start + bs);
    std::vector<std::vector<int64_t>> batch(prompt_ids.begin() + start, prompt_ids.begin() + end);
    GenerateResult r = generate(model, batch, g);
    for (size_t k = 0; k < batch.size(); ++k) {
      Opening& o = out[start + k];
      o.ids = r.tokens[k];
      o.finish_reason = r.finish_reasons[k];
      if (o.finish_reason == "eos" && !o.ids.empty()) o.ids.pop_back();
      o.text = tok.decode(o.ids, /*skip_special_tokens=*/false);
    }
    if (on_done) on_done(static_cast<int64_t>(end));
  }
  return out;
}

}  // namespace circuitscope
