#include "dataset_options.hpp"

#include "circuitscope/config.hpp"

namespace circuitscope::app {

void add_dataset_options(CLI::App* sub, DatasetOptions& o) {
  sub->add_option("--data", o.data,
                  "JSONL pairs: clean_ids/corrupted_ids/answer_id/wrong_id, or text: clean/corrupted with answer/wrong "
                  "or clean_continuation/corrupted_continuation")
      ->required();
  sub->add_flag("--skip-bad", o.skip_bad, "skip and count bad dataset lines instead of stopping");
  sub->add_option("--tokenizer", o.tokenizer, "tokenizer folder for text-form pairs (default: the model folder)");
  sub->add_flag("--chat", o.chat, "text pairs: render clean/corrupted as user messages through the chat template");
  sub->add_option("--think", o.think, "--chat: enable_thinking for the chat template, on or off (default: the template's)")
      ->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--system", o.system, "--chat: system message");
}

PairDataset load_pairs(const DatasetOptions& o, const std::string& model_dir, const ModelConfig& cfg, MetricKind metric) {
  return load_pair_dataset(pair_source(o), model_dir, cfg, metric);
}

PairSource pair_source(const DatasetOptions& o) {
  PairSource s;
  s.path = o.data;
  s.skip_bad = o.skip_bad;
  s.tokenizer = o.tokenizer;
  s.chat = o.chat;
  s.think = o.think;
  s.system = o.system;
  return s;
}

}  // namespace circuitscope::app
