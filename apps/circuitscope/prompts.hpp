// Prompt input shared by run and generate: token ids (--ids, --ids-file), raw text (--text), or a
// user message rendered through the model's own chat template (--chat, --system, --think).
#pragma once
#include <ATen/core/Tensor.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "circuitscope/tokenizer.hpp"

namespace circuitscope::app {

struct PromptOptions {
  std::vector<std::string> ids;  // one prompt per --ids
  std::string ids_file;
  std::vector<std::string> texts;  // one prompt per --text
  std::vector<std::string> chats;  // one prompt per --chat (the user message)
  std::string system;              // system message for --chat prompts
  std::string think;               // "", "on" or "off": enable_thinking for the chat template
  std::string template_file;       // overrides the config's chat template
  bool no_special_tokens = false;  // --text without the tokenizer's post-processor (BOS)
};

void add_prompt_options(CLI::App* sub, PromptOptions& o);

struct Prompts {
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::string> rendered;     // the text of each prompt where it came from text/chat
  std::shared_ptr<Tokenizer> tokenizer;  // loaded when text was given or the folder has one
};

// need_tokenizer: load the folder's tokenizer even for id prompts (generate decodes its output).
Prompts collect_prompts(const PromptOptions& o, const std::string& model_dir, bool need_tokenizer = false);

struct Batch {
  at::Tensor ids;   // [B,T] int64, left-padded
  at::Tensor mask;  // [B,T] int64, 1 = real token
  bool padded = false;
};
Batch left_pad(const std::vector<std::vector<int64_t>>& prompts, int64_t pad_id);

}  // namespace circuitscope::app
