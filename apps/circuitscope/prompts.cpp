#include "prompts.hpp"

#include <ATen/ATen.h>

#include "circuitscope/error.hpp"
#include "command.hpp"

namespace circuitscope::app {

void add_prompt_options(CLI::App* sub, PromptOptions& o) {
  sub->add_option("--ids", o.ids, "token ids of one prompt, comma-separated (repeat for a batch)");
  sub->add_option("--ids-file", o.ids_file, "file with one prompt of comma- or space-separated ids per line");
}

std::vector<std::vector<int64_t>> collect_prompts(const PromptOptions& o, const std::string& model_dir) {
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& s : o.ids) prompts.push_back(parse_id_list(s, "--ids"));
  if (!o.ids_file.empty())
    for (auto& p : read_id_file(o.ids_file)) prompts.push_back(std::move(p));
  if (prompts.empty()) throw Error(ErrorCode::kUsage, "no prompt given: use --ids or --ids-file");
  return prompts;
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
