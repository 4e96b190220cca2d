// circuitscope chat-format MODEL_DIR --user "..." [--system "..."] [--assistant "..."] [--think on|off]
//                          [--no-generation-prompt] [--template FILE]
// circuitscope chat-format MODEL_DIR --input-jsonl FILE [--template FILE]
// Renders the model's own chat template (tokenizer_config.json / chat_template.jinja) the way
// transformers' apply_chat_template does. Single mode prints the prompt exactly (no newline added);
// batch mode reads {"messages": [...], "add_generation_prompt": bool, "enable_thinking": bool,
// "tools": [...]} per line and prints {"text": ...} per line.
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "circuitscope/json_limits.hpp"
#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/tokenizer_json.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct ChatFormatOptions {
  std::string model_dir;
  std::string user, system, assistant;
  bool has_user = false, has_system = false, has_assistant = false;
  std::string think;  // "", "on", "off"
  bool no_generation_prompt = false;
  bool ids = false;
  std::string template_file;
  std::string input_jsonl;
};

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, std::string("cannot read ") + what + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int run_batch(const ChatFormatOptions& o, const TokenizerConfig& cfg, const JinjaTemplate& tpl) {
  std::unique_ptr<Tokenizer> tok;
  if (o.ids) tok = load_tokenizer(o.model_dir);  // once, before the loop
  std::ifstream in(o.input_jsonl);
  if (!in) throw Error(ErrorCode::kIo, "cannot read --input-jsonl file '" + o.input_jsonl + "'");
  std::string line;
  int n = 0, rendered = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = o.input_jsonl + ":" + std::to_string(n);
    nlohmann::ordered_json row;
    check_json_depth(line, where, false, ErrorCode::kInput);
    try {
      row = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::ordered_json::exception& e) {
      throw Error(ErrorCode::kInput, where + ": invalid JSON: " + e.what());
    }
    if (!row.is_object() || !row.contains("messages") || !row["messages"].is_array())
      throw Error(ErrorCode::kInput, where + ": expected an object with a 'messages' list");
    bool agp = true;
    if (row.contains("add_generation_prompt")) {
      if (!row["add_generation_prompt"].is_boolean())
        throw Error(ErrorCode::kInput, where + ": 'add_generation_prompt' must be a boolean");
      agp = row["add_generation_prompt"].get<bool>();
    }
    std::optional<bool> thinking;
    if (row.contains("enable_thinking") && !row["enable_thinking"].is_null()) {
      if (!row["enable_thinking"].is_boolean())
        throw Error(ErrorCode::kInput, where + ": 'enable_thinking' must be a boolean");
      thinking = row["enable_thinking"].get<bool>();
    }
    nlohmann::ordered_json extra = nlohmann::ordered_json::object();
    if (row.contains("tools")) extra["tools"] = row["tools"];
    std::string text;
    try {
      text = tpl.render(chat_template_context(cfg, row["messages"], agp, thinking, &extra));
    } catch (const Error& e) {
      throw Error(e.code(), where + ": " + e.what());
    }
    nlohmann::ordered_json out = {{"text", text}};
    if (tok) out["ids"] = tok->encode(text, /*add_special_tokens=*/false).ids;
    std::cout << out.dump() << "\n";
    ++rendered;
  }
  spdlog::info("chat-format: rendered {} conversation(s) from {}", rendered, o.input_jsonl);
  return 0;
}

int run_chat_format(const ChatFormatOptions& o) {
  TokenizerConfig cfg = load_tokenizer_config(o.model_dir);
  std::string source, name;
  if (!o.template_file.empty()) {
    source = read_text(o.template_file, "--template file");
    name = "chat template " + o.template_file;
  } else {
    if (!cfg.chat_template)
      throw Error(ErrorCode::kConfig, cfg.path + " has no chat_template (and there is no chat_template.jinja); pass --template FILE");
    source = *cfg.chat_template;
    name = "chat template " + cfg.chat_template_origin;
  }
  JinjaTemplate tpl(source, name);

  if (!o.input_jsonl.empty()) {
    if (o.has_user || o.has_system || o.has_assistant || !o.think.empty() || o.no_generation_prompt)
      throw Error(ErrorCode::kUsage, "--input-jsonl takes the conversation and flags from each line; drop --user/--system/--assistant/--think/--no-generation-prompt");
    return run_batch(o, cfg, tpl);
  }
  if (!o.has_user) throw Error(ErrorCode::kUsage, "chat-format needs --user TEXT (or --input-jsonl FILE)");
  std::vector<ChatMessage> messages;
  if (o.has_system) messages.push_back({"system", o.system, false, std::nullopt});
  messages.push_back({"user", o.user, false, std::nullopt});
  if (o.has_assistant) messages.push_back({"assistant", o.assistant, false, std::nullopt});
  std::optional<bool> thinking;
  if (o.think == "on") thinking = true;
  if (o.think == "off") thinking = false;
  const std::string text = tpl.render(chat_template_context(cfg, chat_messages_to_json(messages), !o.no_generation_prompt, thinking));
  std::cout << text;
  if (o.ids) {
    // The rendered prompt spells its special tokens, so no post-processor (as apply_chat_template(tokenize=True)).
    const auto enc = load_tokenizer(o.model_dir)->encode(text, /*add_special_tokens=*/false);
    std::cout << "\n";
    for (size_t i = 0; i < enc.ids.size(); ++i) std::cout << (i ? "," : "") << enc.ids[i];
    std::cout << "\n";
  }
  std::cout.flush();
  return 0;
}

CommandRegistrar reg_cmd_chat_format({"chat-format", "Render a conversation with the model's own chat template (as transformers' apply_chat_template)",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<ChatFormatOptions>();
                        sub->add_option("model_dir", o->model_dir, "model directory with tokenizer_config.json")->required();
                        sub->add_option("--user", o->user, "user message")->each([o](const std::string&) { o->has_user = true; });
                        sub->add_option("--system", o->system, "system message (first)")->each([o](const std::string&) { o->has_system = true; });
                        sub->add_option("--assistant", o->assistant, "assistant message (after the user message)")
                            ->each([o](const std::string&) { o->has_assistant = true; });
                        sub->add_option("--think", o->think, "enable_thinking: on or off (left undefined when not given)")
                            ->check(CLI::IsMember({"on", "off"}));
                        sub->add_flag("--no-generation-prompt", o->no_generation_prompt, "add_generation_prompt=false");
                        sub->add_flag("--ids", o->ids, "also print the token ids of the rendered prompt (after a newline; in batch mode an \"ids\" field)");
                        sub->add_option("--template", o->template_file, "render this Jinja file instead of the model's template");
                        sub->add_option("--input-jsonl", o->input_jsonl,
                                        "batch: one {\"messages\", \"add_generation_prompt\", \"enable_thinking\", \"tools\"} object per line; "
                                        "prints {\"text\"} per line");
                        return [o] { return run_chat_format(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
