// Chat templates: tokenizer_config.json and a Jinja engine that renders a model's own
// `chat_template` the way Hugging Face transformers does (Jinja2's ImmutableSandboxedEnvironment
// with trim_blocks and lstrip_blocks, HF's `tojson`, `raise_exception` and `strftime_now`,
// loop controls). Supported: {{ }}, {% %}, {# #} with -/+ whitespace control, raw, if/elif/else,
// for (loop.*, else, inline if-filter, break/continue), set (incl. namespace attributes and set
// blocks), macro, filter and with blocks, HF's generation block, the full expression grammar,
// Jinja2's filters and tests except groupby/slice/pprint/urlize-style ones, Python str/dict/list
// methods that templates call, and Jinja2's compile-time variable scoping. Not supported:
// include/extends/import/block, call blocks, recursive loops, non-string dict keys, Markup
// (escape/safe return plain strings; autoescape is off in HF anyway).
#pragma once
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace circuitscope {

namespace jinja {
struct Program;
}

// A parsed template. Parsing throws Error(kFormat) naming `name`, line and column on syntax
// errors (kUnsupported for Jinja features circuitscope does not implement, such as include).
// render() keeps no state between calls, so one template may render from several threads.
class JinjaTemplate {
 public:
  explicit JinjaTemplate(const std::string& source, const std::string& name = "template");
  // `context` must be a JSON object; its keys become template variables (keys left out are
  // Jinja-undefined). Throws Error(kInput) naming line and column on runtime errors, including
  // the template's own raise_exception('msg') (the message is kept verbatim).
  std::string render(const nlohmann::ordered_json& context) const;

 private:
  std::shared_ptr<const jinja::Program> program_;
};

// Parse and render once.
std::string render_template(const std::string& source, const nlohmann::ordered_json& context,
                            const std::string& name = "template");

struct TokenizerConfig {
  std::string path;  // the tokenizer_config.json read (for messages)
  // Special tokens as strings (the AddedToken-object form is reduced to its content); nullopt
  // where the key is absent or null.
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;
  std::vector<std::string> additional_special_tokens;
  std::optional<bool> add_bos_token, add_eos_token;  // nullopt: key absent
  // The default chat template: the string form, the entry named "default" of the list form, or
  // chat_template.jinja beside the config (which overrides, as in transformers).
  std::optional<std::string> chat_template;
  std::string chat_template_origin;  // "tokenizer_config.json:chat_template", ... for messages
  // Every template of the list-of-{name, template} form (empty for the string form).
  std::vector<std::pair<std::string, std::string>> named_chat_templates;
};

// Reads model_dir/tokenizer_config.json (and model_dir/chat_template.jinja if present). Throws
// Error(kIo) if the config is missing, Error(kFormat) naming the file and key on malformed values.
TokenizerConfig load_tokenizer_config(const std::string& model_dir);

struct ChatMessage {
  std::string role;
  // nullopt: the key is left out (Jinja-undefined), unless content_is_none, which passes None.
  std::optional<std::string> content;
  bool content_is_none = false;
  std::optional<std::string> reasoning_content;  // nullopt: key left out
};

// [{"role": ..., "content": ...}, ...] in the order given.
nlohmann::ordered_json chat_messages_to_json(const std::vector<ChatMessage>& messages);

// The variables transformers passes to a chat template: messages, add_generation_prompt,
// tools=None, documents=None, the special tokens that are set (bos_token, eos_token, unk_token,
// pad_token, additional_special_tokens), and enable_thinking only when given.
// `extra` (an object, may be null) adds or overrides variables, e.g. tools.
nlohmann::ordered_json chat_template_context(const TokenizerConfig& config, const nlohmann::ordered_json& messages,
                                             bool add_generation_prompt, std::optional<bool> enable_thinking,
                                             const nlohmann::ordered_json* extra = nullptr);

// Renders the model's chat template (or *template_override) for a conversation. Throws
// Error(kConfig) if the config has no chat template and no override is given.
std::string apply_chat_template(const TokenizerConfig& config, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt, std::optional<bool> enable_thinking,
                                const std::string* template_override = nullptr);
// Same with messages as JSON (tool_calls and other fields pass through unchanged).
std::string apply_chat_template_json(const TokenizerConfig& config, const nlohmann::ordered_json& messages,
                                     bool add_generation_prompt, std::optional<bool> enable_thinking,
                                     const std::string* template_override = nullptr,
                                     const nlohmann::ordered_json* extra = nullptr);

}  // namespace circuitscope
