// tokenizer_config.json and chat-template rendering on top of the Jinja engine.
#include "circuitscope/chat_template.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/report.hpp"
#include "tokenizer/jinja_ast.hpp"

namespace circuitscope {

using nlohmann::ordered_json;

JinjaTemplate::JinjaTemplate(const std::string& source, const std::string& name)
    : program_(jinja::parse_program(source, name)) {}

std::string JinjaTemplate::render(const ordered_json& context) const {
  if (!context.is_object())
    throw Error(ErrorCode::kInput, program_->name + ": the render context must be a JSON object, got " +
                                       std::string(context.type_name()));
  jinja::Value ctx;
  jinja::NestingGuard::reset_visits();  // the visit budget is per render (the context's conversion counts)
  try {
    ctx = jinja::from_json(context);
  } catch (const jinja::ValueError& e) {
    throw Error(ErrorCode::kInput, program_->name + ": context: " + e.message);
  }
  std::string out;
  jinja::Runtime rt(*program_, ctx.as_dict(), out);
  rt.seed_undefined(program_->body_undefined);
  jinja::exec_body(program_->body, rt);
  spdlog::trace("{}: rendered {} bytes in {} steps ({} budgeted bytes)", program_->name, out.size(), rt.steps(), rt.bytes());
  return out;
}

std::string render_template(const std::string& source, const ordered_json& context, const std::string& name) {
  return JinjaTemplate(source, name).render(context);
}

namespace {

// A special token: a string, null, or an AddedToken object {"__type": "AddedToken", "content": ...}.
std::optional<std::string> token_field(const ordered_json& cfg, const char* key, const std::string& path) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
    throw Error(ErrorCode::kFormat, path + ": key '" + key + "' is an object without a string 'content' (expected an AddedToken)");
  }
  throw Error(ErrorCode::kFormat, path + ": key '" + key + "' must be a string, null or an AddedToken object, found " +
                                      std::string(it->type_name()));
}

std::optional<bool> bool_field(const ordered_json& cfg, const char* key, const std::string& path) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean())
    throw Error(ErrorCode::kFormat, path + ": key '" + key + "' must be a boolean, found " + std::string(it->type_name()));
  return it->get<bool>();
}

}  // namespace

TokenizerConfig load_tokenizer_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  TokenizerConfig c;
  c.path = (fs::path(model_dir) / "tokenizer_config.json").string();
  if (!fs::exists(c.path)) throw Error(ErrorCode::kIo, "no tokenizer_config.json in '" + model_dir + "'");
  ordered_json cfg;
  const std::string cfg_text = read_text_file(c.path);
  check_json_depth(cfg_text, c.path);
  try {
    cfg = ordered_json::parse(cfg_text);
  } catch (const ordered_json::exception& e) {
    throw Error(ErrorCode::kFormat, c.path + ": invalid JSON: " + e.what());
  }
  if (!cfg.is_object()) throw Error(ErrorCode::kFormat, c.path + ": expected a JSON object at the top level");

  c.bos_token = token_field(cfg, "bos_token", c.path);
  c.eos_token = token_field(cfg, "eos_token", c.path);
  c.pad_token = token_field(cfg, "pad_token", c.path);
  c.unk_token = token_field(cfg, "unk_token", c.path);
  c.add_bos_token = bool_field(cfg, "add_bos_token", c.path);
  c.add_eos_token = bool_field(cfg, "add_eos_token", c.path);
  if (auto it = cfg.find("additional_special_tokens"); it != cfg.end() && !it->is_null()) {
    if (!it->is_array())
      throw Error(ErrorCode::kFormat, c.path + ": key 'additional_special_tokens' must be a list, found " +
                                          std::string(it->type_name()));
    for (size_t i = 0; i < it->size(); ++i) {
      std::string key = "additional_special_tokens[" + std::to_string(i) + "]";
      ordered_json one = {{key, (*it)[i]}};
      auto t = token_field(one, key.c_str(), c.path);
      if (t) c.additional_special_tokens.push_back(*t);
    }
  }

  if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
    if (it->is_string()) {
      c.chat_template = it->get<std::string>();
      c.chat_template_origin = c.path + ":chat_template";
    } else if (it->is_array()) {
      for (size_t i = 0; i < it->size(); ++i) {
        const auto& e = (*it)[i];
        auto n = e.is_object() ? e.find("name") : e.end();
        auto t = e.is_object() ? e.find("template") : e.end();
        if (!e.is_object() || n == e.end() || t == e.end() || !n->is_string() || !t->is_string())
          throw Error(ErrorCode::kFormat, c.path + ": chat_template[" + std::to_string(i) +
                                              "] must be an object with string 'name' and 'template'");
        c.named_chat_templates.emplace_back(n->get<std::string>(), t->get<std::string>());
        if (n->get<std::string>() == "default") {
          c.chat_template = t->get<std::string>();
          c.chat_template_origin = c.path + ":chat_template[name=default]";
        }
      }
    } else {
      throw Error(ErrorCode::kFormat, c.path + ": key 'chat_template' must be a string or a list of {name, template}, found " +
                                          std::string(it->type_name()));
    }
  }
  // transformers reads chat_template.jinja when present and lets it replace the config's template.
  fs::path jinja_file = fs::path(model_dir) / "chat_template.jinja";
  if (fs::exists(jinja_file)) {
    c.chat_template = read_text_file(jinja_file.string());
    c.chat_template_origin = jinja_file.string();
  }
  return c;
}

ordered_json chat_messages_to_json(const std::vector<ChatMessage>& messages) {
  ordered_json out = ordered_json::array();
  for (const auto& m : messages) {
    ordered_json j = ordered_json::object();
    j["role"] = m.role;
    if (m.content) j["content"] = *m.content;
    else if (m.content_is_none) j["content"] = nullptr;
    if (m.reasoning_content) j["reasoning_content"] = *m.reasoning_content;
    out.push_back(std::move(j));
  }
  return out;
}

ordered_json chat_template_context(const TokenizerConfig& config, const ordered_json& messages,
                                   bool add_generation_prompt, std::optional<bool> enable_thinking,
                                   const ordered_json* extra) {
  if (!messages.is_array())
    throw Error(ErrorCode::kInput, "chat messages must be a JSON list, got " + std::string(messages.type_name()));
  ordered_json ctx = ordered_json::object();
  ctx["messages"] = messages;
  ctx["tools"] = nullptr;  // transformers passes tools=None and documents=None when not given
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = add_generation_prompt;
  // transformers' special_tokens_map: only the tokens that are set.
  if (config.bos_token) ctx["bos_token"] = *config.bos_token;
  if (config.eos_token) ctx["eos_token"] = *config.eos_token;
  if (config.unk_token) ctx["unk_token"] = *config.unk_token;
  if (config.pad_token) ctx["pad_token"] = *config.pad_token;
  if (!config.additional_special_tokens.empty()) ctx["additional_special_tokens"] = config.additional_special_tokens;
  if (enable_thinking) ctx["enable_thinking"] = *enable_thinking;
  if (extra) {
    if (!extra->is_object()) throw Error(ErrorCode::kInput, "extra chat-template variables must be a JSON object");
    for (auto it = extra->begin(); it != extra->end(); ++it) ctx[it.key()] = it.value();
  }
  return ctx;
}

std::string apply_chat_template_json(const TokenizerConfig& config, const ordered_json& messages,
                                     bool add_generation_prompt, std::optional<bool> enable_thinking,
                                     const std::string* template_override, const ordered_json* extra) {
  std::string name;
  const std::string* source = template_override;
  if (source) {
    name = "chat template (override)";
  } else {
    if (!config.chat_template)
      throw Error(ErrorCode::kConfig, config.path + " has no chat_template (and no chat_template.jinja); pass a template");
    source = &*config.chat_template;
    name = "chat template " + config.chat_template_origin;
  }
  JinjaTemplate t(*source, name);
  return t.render(chat_template_context(config, messages, add_generation_prompt, enable_thinking, extra));
}

std::string apply_chat_template(const TokenizerConfig& config, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, std::optional<bool> enable_thinking,
                                const std::string* template_override) {
  return apply_chat_template_json(config, chat_messages_to_json(messages), add_generation_prompt, enable_thinking,
                                  template_override);
}

}  // namespace circuitscope
