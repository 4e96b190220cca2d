// Loading a model's pairs (text or token form), shared by attribute, patch, evaluate and sweeps.
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/config.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/metric.hpp"
#include "circuitscope/tokenizer_json.hpp"

namespace circuitscope {

namespace {
// Whether any line is in text form, so token-form datasets need no tokenizer.
bool has_text_lines(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.find("\"clean\"") != std::string::npos || line.find("\"corrupted\"") != std::string::npos) return true;
  return false;
}
}  // namespace

PairDataset load_pair_dataset(const PairSource& o, const std::string& model_dir, const ModelConfig& cfg,
                              MetricKind metric) {
  if (!o.chat && (!o.think.empty() || !o.system.empty()))
    throw Error(ErrorCode::kUsage, "--think and --system apply to --chat datasets only");
  if (!o.think.empty() && o.think != "on" && o.think != "off")
    throw Error(ErrorCode::kUsage, "think: expected on or off; found '" + o.think + "'");
  PairReadOptions ro;
  ro.vocab_size = cfg.vocab_size;
  ro.require_answer = metric == MetricKind::kLogitDiff || metric == MetricKind::kProbDiff;
  ro.require_continuation = metric == MetricKind::kSeqLogprob || metric == MetricKind::kSeqKl;
  ro.skip_bad = o.skip_bad;
  ro.allow_empty = o.allow_empty;
  const std::string tok_dir = o.tokenizer.empty() ? model_dir : o.tokenizer;
  std::unique_ptr<Tokenizer> tok;
  if (!o.tokenizer.empty() || o.chat || has_text_lines(o.path)) tok = load_tokenizer(tok_dir);
  ro.tokenizer = tok.get();
  std::optional<TokenizerConfig> tcfg;
  if (o.chat) {
    namespace fs = std::filesystem;
    // The tokenizer may be a tokenizer.json file; its folder holds tokenizer_config.json.
    const std::string cfg_dir = fs::is_directory(tok_dir) ? tok_dir : fs::path(tok_dir).parent_path().string();
    tcfg = load_tokenizer_config(cfg_dir);
    std::optional<bool> think;
    if (o.think == "on") think = true;
    if (o.think == "off") think = false;
    ro.render_prompt = [&tcfg, think, system = o.system](const std::string& user) {
      std::vector<ChatMessage> msgs;
      if (!system.empty()) msgs.push_back({"system", system});
      msgs.push_back({"user", user});
      return apply_chat_template(*tcfg, msgs, /*add_generation_prompt=*/true, think);
    };
  }
  return read_pairs_jsonl(o.path, ro);
}

}  // namespace circuitscope
