// The toy lab's tokenizer: a real tokenizer.json (BPE over single characters, no merges) and a
// tokenizer_config.json whose chat template follows Qwen3 (ChatML turns, <think> on/off).
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/toy.hpp"

namespace circuitscope::toy {

namespace {
using nlohmann::ordered_json;

// Character vocabulary: printable ASCII, then tab and newline. Ids are stable: checkpoints depend on them.
std::vector<std::string> char_vocab() {
  std::vector<std::string> v;
  for (int c = 32; c <= 126; ++c) v.emplace_back(1, static_cast<char>(c));
  v.emplace_back("\t");
  v.emplace_back("\n");
  return v;
}

struct Added {
  const char* content;
  bool special;
};
// <think> and </think> are plain added tokens, as in Qwen3 (kept by skip_special_tokens).
const Added kAdded[] = {{kUnk, true},        {kEndOfText, true},  {kImStart, true},
                        {kImEnd, true},      {kThinkOpen, false}, {kThinkClose, false}};

void write_text(const std::filesystem::path& p, const std::string& text) { write_file_atomically(p.string(), text); }
}  // namespace

int64_t toy_vocab_size() { return static_cast<int64_t>(char_vocab().size() + std::size(kAdded)); }

std::string toy_tokenizer_json() {
  const auto chars = char_vocab();
  ordered_json vocab = ordered_json::object();
  for (size_t i = 0; i < chars.size(); ++i) vocab[chars[i]] = i;
  ordered_json added = ordered_json::array();
  for (size_t k = 0; k < std::size(kAdded); ++k) {
    const int64_t id = static_cast<int64_t>(chars.size() + k);
    if (std::string(kAdded[k].content) == kUnk) vocab[kUnk] = id;  // the BPE model's unknown token
    added.push_back({{"id", id},
                     {"content", kAdded[k].content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", kAdded[k].special}});
  }
  ordered_json j = {{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", added},
                    {"normalizer", nullptr},
                    {"pre_tokenizer", nullptr},
                    {"post_processor", nullptr},
                    {"decoder", {{"type", "Fuse"}}},
                    {"model",
                     {{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", kUnk},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"ignore_merges", false},
                      {"vocab", vocab},
                      {"merges", ordered_json::array()}}}};
  return j.dump(2) + "\n";
}

std::string toy_chat_template() {
  // Qwen3's structure, simplified: no tools; every assistant turn shows its reasoning block.
  return R"JINJA({%- for message in messages %}
{%- if message.role == 'user' or message.role == 'system' %}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- elif message.role == 'assistant' %}
{%- set content = message.content if message.content is string else '' %}
{%- if message.reasoning_content is string %}
{%- set reasoning = message.reasoning_content %}
{%- elif '</think>' in content %}
{%- set reasoning = content.split('</think>')[0].split('<think>')[-1] %}
{%- set content = content.split('</think>')[-1] %}
{%- else %}
{%- set reasoning = '' %}
{%- endif %}
{{- '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') + '<|im_end|>\n' }}
{%- else %}
{{- raise_exception('Unexpected message role: ' + message.role) }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}
{{- '<think>\n\n</think>\n\n' }}
{%- else %}
{{- '<think>\n' }}
{%- endif %}
{%- endif %}
)JINJA";
}

std::string toy_tokenizer_config_json() {
  const auto chars = char_vocab();
  ordered_json dec = ordered_json::object();
  ordered_json extra = ordered_json::array();
  for (size_t k = 0; k < std::size(kAdded); ++k) {
    dec[std::to_string(chars.size() + k)] = {{"content", kAdded[k].content}, {"lstrip", false}, {"normalized", false},
                                             {"rstrip", false},          {"single_word", false}, {"special", kAdded[k].special}};
    if (kAdded[k].special && std::string(kAdded[k].content) != kUnk) extra.push_back(kAdded[k].content);
  }
  ordered_json j = {{"add_bos_token", false},
                    {"add_prefix_space", false},
                    {"added_tokens_decoder", dec},
                    {"additional_special_tokens", extra},
                    {"bos_token", nullptr},
                    {"chat_template", toy_chat_template()},
                    {"clean_up_tokenization_spaces", false},
                    {"eos_token", kImEnd},
                    {"model_max_length", 256},
                    {"pad_token", kEndOfText},
                    {"tokenizer_class", "PreTrainedTokenizerFast"},
                    {"unk_token", kUnk}};
  return j.dump(2) + "\n";
}

void write_toy_tokenizer(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create '" + dir + "': " + ec.message());
  write_text(std::filesystem::path(dir) / "tokenizer.json", toy_tokenizer_json());
  write_text(std::filesystem::path(dir) / "tokenizer_config.json", toy_tokenizer_config_json());
}

}  // namespace circuitscope::toy
