#include "dataset_options.hpp"

#include "circuitscope/config.hpp"

namespace circuitscope::app {

void add_dataset_options(CLI::App* sub, DatasetOptions& o) {
  sub->add_option("--data", o.data, "JSONL pairs: clean_ids, corrupted_ids, answer_id, wrong_id")->required();
  sub->add_flag("--skip-bad", o.skip_bad, "skip and count bad dataset lines instead of stopping");
}

PairDataset load_pairs(const DatasetOptions& o, const std::string& /*model_dir*/, const ModelConfig& cfg,
                       MetricKind metric) {
  PairReadOptions ro;
  ro.vocab_size = cfg.vocab_size;
  ro.require_answer = metric != MetricKind::kKl;
  ro.skip_bad = o.skip_bad;
  return read_pairs_jsonl(o.data, ro);
}

}  // namespace circuitscope::app
