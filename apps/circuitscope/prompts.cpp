#include "prompts.hpp"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "command.hpp"

namespace circuitscope::app {

void add_prompt_options(CLI::App* sub, PromptOptions& o) {
  sub->add_option("--ids", o.ids, "token ids of one prompt, comma-separated (repeat for a batch)");
  sub->add_option("--ids-file", o.ids_file, "file with one prompt of comma- or space-separated ids per line");
  sub->add_option("--text", o.texts, "a prompt as text, tokenized with the model's tokenizer (repeatable)");
  sub->add_option("--chat", o.chats, "a user message rendered with the model's chat template (repeatable)");
  sub->add_option("--system", o.system, "system message for --chat prompts");
  sub->add_option("--think", o.think, "enable_thinking for the chat template: on or off (default: the template's)")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--template", o.template_file, "Jinja chat template file overriding the model's");
  sub->add_flag("--no-special-tokens", o.no_special_tokens, "--text: do not add the tokenizer's special tokens (e.g. BOS)");
}

namespace {
bool has_tokenizer_files(const std::string& dir) {
  namespace fs = std::filesystem;
  return fs::exists(fs::path(dir) / "tokenizer.json") || fs::exists(fs::path(dir) / "tokenizer.model");
}
}  // namespace

Prompts collect_prompts(const PromptOptions& o, const std::string& model_dir, bool need_tokenizer) {
  Prompts p;
  for (const auto& s : o.ids) p.ids.push_back(parse_id_list(s, "--ids"));
  if (!o.ids_file.empty())
    for (auto& v : read_id_file(o.ids_file)) p.ids.push_back(std::move(v));
  p.rendered.assign(p.ids.size(), "");
  const bool text_given = !o.texts.empty() || !o.chats.empty();
  if (o.chats.empty() && (!o.system.empty() || !o.think.empty() || !o.template_file.empty()))
    throw Error(ErrorCode::kUsage, "--system, --think and --template apply to --chat prompts only");
  if (text_given || (need_tokenizer && has_tokenizer_files(model_dir))) p.tokenizer = load_tokenizer(model_dir);
  for (const auto& t : o.texts) {
    p.ids.push_back(p.tokenizer->encode(t, !o.no_special_tokens).ids);
    p.rendered.push_back(t);
  }
  if (!o.chats.empty()) {
    TokenizerConfig cfg = load_tokenizer_config(model_dir);
    std::optional<std::string> override_src;
    if (!o.template_file.empty()) {
      std::ifstream in(o.template_file);
      if (!in) throw Error(ErrorCode::kIo, "cannot read chat template '" + o.template_file + "'");
      std::stringstream ss;
      ss << in.rdbuf();
      override_src = ss.str();
    }
    std::optional<bool> think;
    if (o.think == "on") think = true;
    if (o.think == "off") think = false;
    for (const auto& user : o.chats) {
      std::vector<ChatMessage> msgs;
      if (!o.system.empty()) msgs.push_back({"system", o.system});
      msgs.push_back({"user", user});
      const std::string text =
          apply_chat_template(cfg, msgs, /*add_generation_prompt=*/true, think, override_src ? &*override_src : nullptr);
      // The rendered prompt already spells its special tokens, as HF's apply_chat_template(tokenize=True).
      p.ids.push_back(p.tokenizer->encode(text, /*add_special_tokens=*/false).ids);
      p.rendered.push_back(text);
    }
  }
  if (p.ids.empty()) throw Error(ErrorCode::kUsage, "no prompt given: use --ids, --ids-file, --text or --chat");
  for (size_t i = 0; i < p.ids.size(); ++i)
    if (p.ids[i].empty()) throw Error(ErrorCode::kInput, "prompt " + std::to_string(i) + " has no tokens");
  return p;
}

Batch left_pad(const std::vector<std::vector<int64_t>>& prompts, int64_t pad_id) {
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, p.size());
  const int64_t B = static_cast<int64_t>(prompts.size());
  Batch b;
  b.ids = at::full({B, T}, pad_id, at::kLong);
  b.mask = at::zeros({B, T}, at::kLong);
  for (int64_t i = 0; i < B; ++i) {
    const int64_t n = static_cast<int64_t>(prompts[i].size());
    for (int64_t t = 0; t < n; ++t) b.ids[i][T - n + t] = prompts[i][t];
    b.mask[i].narrow(0, T - n, n).fill_(1);
    if (n != T) b.padded = true;
  }
  return b;
}

}  // namespace circuitscope::app
