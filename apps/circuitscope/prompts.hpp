// Prompt input shared by run and generate: --ids (repeatable) and --ids-file.
#pragma once
#include <ATen/core/Tensor.h>

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace circuitscope::app {

struct PromptOptions {
  std::vector<std::string> ids;  // one prompt per --ids
  std::string ids_file;
};

void add_prompt_options(CLI::App* sub, PromptOptions& o);
std::vector<std::vector<int64_t>> collect_prompts(const PromptOptions& o, const std::string& model_dir);

struct Batch {
  at::Tensor ids;   // [B,T] int64, left-padded
  at::Tensor mask;  // [B,T] int64, 1 = real token
  bool padded = false;
};
Batch left_pad(const std::vector<std::vector<int64_t>>& prompts, int64_t pad_id);

}  // namespace circuitscope::app
