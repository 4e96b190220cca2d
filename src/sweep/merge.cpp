// Merging a sweep: each checkpoint's chunks -> one attribute report; the reports -> summary.json.
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "circuitscope/config.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/sha256.hpp"
#include "circuitscope/sweep.hpp"
#include "sweep/sweep_files.hpp"

namespace circuitscope::sweep {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Edge scores of a checkpoint from its units: each unit holds the mean over its chunk, so the
// checkpoint's mean is the sum of n_k * mean_k over the sum of n_k (what eap_scores does across
// its batches, up to float32 summation order).
struct UnitRecord {
  std::string path;  // chunk-K.json
  std::string text;
  json record;
  std::string scores_path;
};

EdgeScores combine_units(const std::vector<UnitRecord>& units, int64_t n_edges, const std::string& name) {
  EdgeScores out;
  out.scores.assign(static_cast<size_t>(n_edges), 0.0);
  double clean = 0.0, corrupted = 0.0;
  for (const UnitRecord& ur : units) {
    const json& u = ur.record;
    const int64_t n = u["n_examples"].get<int64_t>();
    // "run.seconds"; units written before the run block had "seconds" at the top.
    out.seconds += u.contains("run") && u["run"].is_object() ? u["run"].value("seconds", 0.0) : u.value("seconds", 0.0);
    if (n == 0) continue;
    const std::string bytes = read_text_file(ur.scores_path);
    const std::string want = u["scores"].value("sha256", "");
    if (static_cast<int64_t>(bytes.size()) != n_edges * static_cast<int64_t>(sizeof(float)) || sha256_hex(bytes) != want)
      throw Error(ErrorCode::kFormat, ur.scores_path + " holds " + std::to_string(bytes.size()) + " bytes (sha256 " +
                                          sha256_hex(bytes).substr(0, 12) + "); the unit recorded " +
                                          std::to_string(n_edges * sizeof(float)) + " (" + want.substr(0, 12) +
                                          "). Delete " + ur.path + " and run the unit again");
    std::vector<float> s(static_cast<size_t>(n_edges));
    std::memcpy(s.data(), bytes.data(), bytes.size());
    for (int64_t e = 0; e < n_edges; ++e) out.scores[e] += static_cast<double>(n) * static_cast<double>(s[e]);
    clean += static_cast<double>(n) * u["metric_clean"].get<double>();
    corrupted += static_cast<double>(n) * u["metric_corrupted"].get<double>();
    out.n_examples += n;
  }
  if (out.n_examples == 0) throw Error(ErrorCode::kInput, name + ": no unit holds a pair; nothing to merge");
  const double inv = 1.0 / static_cast<double>(out.n_examples);
  for (double& v : out.scores) v *= inv;
  out.metric_clean = clean * inv;
  out.metric_corrupted = corrupted * inv;
  return out;
}

}  // namespace

namespace {

// Everything a checkpoint's report depends on besides its units: the options of every stage.
json merge_options(const SweepSpec& spec) {
  const AttributeSpec& a = spec.attribute.spec;
  json sizes = json::array();
  for (int64_t n : a.faithfulness.sizes) sizes.push_back(n);
  return {{"method", attribution_method_name(a.method)}, {"ig_steps", a.eap_options().ig_steps},
          {"metric", metric_name(a.metric)},              {"loss", a.loss},
          {"kv_edges", kv_edges_name(a.kv_edges)},         {"batch_size", a.batch_size},
          {"selection", selection_json(a.selection)},      {"node_level", a.selection.node_level},
          {"intervention", intervention_name(a.faithfulness.intervention)},
          {"mean_source", mean_source_name(a.faithfulness.mean_source)},
          {"sizes", sizes},                                {"absolute", a.faithfulness.absolute},
          {"dtype", spec.attribute.dtype},                 {"device", spec.attribute.device},
          {"pairs", spec.pairs.empty() ? "" : sha256_hex(read_text_file(spec.pairs))}};
}

// The key of a checkpoint's report: its units' files (each rewritten whenever it is recomputed) and
// the options. A report whose recorded key matches is current and is not merged again. A unit's
// "run" block (time, host) is left out: a recomputed unit with the same content merges to the same
// report, and the key, like the report, is the same bytes from run to run.
std::string merge_key(const std::vector<json>& unit_records, const json& options) {
  std::string material = options.dump();
  for (json u : unit_records) {
    if (u.is_object()) u.erase("run");
    material += "\n" + sha256_hex(u.dump());
  }
  return sha256_hex(material);
}

std::string recorded_key(const std::string& path) {
  try {
    const std::string text = read_text_file(path);
    check_json_depth(text, path);
    const json j = json::parse(text);
    return j.is_object() ? j.value("key", "") : "";
  } catch (const json::exception&) {
    return "";  // unreadable: merged again
  } catch (const Error&) {
    return "";
  }
}

}  // namespace

MergeResult merge_sweep(const SweepSpec& spec, const std::string& dir, const MergeOptions& options) {
  const Plan plan = make_plan(spec);
  const std::vector<UnitStatus> status = sweep_status(spec, plan, dir);
  const std::vector<const Checkpoint*> all = spec.all_checkpoints();
  // With a shard, a contiguous block of the checkpoints (base first), and no summary.
  size_t lo = 0, hi = all.size();
  if (options.shard) {
    lo = static_cast<size_t>((options.shard->index - 1) * static_cast<int64_t>(all.size()) / options.shard->count);
    hi = static_cast<size_t>(options.shard->index * static_cast<int64_t>(all.size()) / options.shard->count);
  }
  MergeResult out;
  std::vector<const Checkpoint*> complete;
  std::string problems;
  for (size_t i = lo; i < hi; ++i) {
    const Checkpoint* c = all[i];
    std::string missing;
    for (const UnitStatus& st : status)
      if (st.unit->checkpoint.name == c->name && st.state != UnitState::kDone)
        missing += " " + st.unit->id() + " (" + unit_state_name(st.state) + (st.running ? ", running" : "") + ")";
    if (missing.empty()) complete.push_back(c);
    else if (options.partial && !c->base) out.skipped.push_back(c->name);
    else problems += "\n " + c->name + ":" + missing;
  }
  if (!problems.empty())
    throw Error(ErrorCode::kInput, "sweep " + dir + " is not complete" +
                                       std::string(options.partial ? " (the base must be, even with --partial)" : "") +
                                       "; run `sweep run` for:" + problems);

  fs::create_directories(fs::path(dir) / "reports");
  const json opts = merge_options(spec);
  std::vector<StepHeads> steps;
  StepHeads base;
  for (const Checkpoint* c : complete) {
    std::vector<UnitRecord> units;
    std::vector<json> records;
    for (const Unit& u : plan.units)
      if (u.checkpoint.name == c->name) {
        UnitRecord r;
        r.path = unit_result_path(dir, u);
        r.scores_path = unit_scores_path(dir, u);
        auto rec = read_unit_result(r.path);
        if (!rec) throw Error(ErrorCode::kInput, r.path + " is missing or unreadable (a unit rerun since the status check?); "
                                                          "run `sweep status` and merge again");
        r.record = *rec;
        records.push_back(r.record);
        units.push_back(std::move(r));
      }
    const std::string path = (fs::path(dir) / "reports" / (c->name + ".json")).string();
    const std::string key_path = unit_dir(dir, *c) + "/merged.json";
    const std::string key = merge_key(records, opts);
    json report;
    if (fs::exists(path) && fs::exists(key_path) && recorded_key(key_path) == key) {
      spdlog::info("merge {}: its report is current (same units and options); kept", c->name);
      report = read_json_file(path);
      ++out.kept;
    } else {
      // The checkpoint's pairs: the fixed file, or the chunks built in its units, concatenated.
      std::string data_path = spec.pairs;
      if (spec.constructs_pairs()) {
        std::string text;
        for (const Unit& u : plan.units)
          if (u.checkpoint.name == c->name) text += read_text_file(unit_pairs_path(dir, u));
        fs::create_directories(fs::path(dir) / "pairs");
        data_path = (fs::path(dir) / "pairs" / (c->name + ".jsonl")).string();
        write_file_atomically(data_path, text);
      }
      spdlog::info("merge {}: {} unit(s); loading {}", c->name, units.size(), c->path);
      auto model = HookedTransformer::from_pretrained(c->path, {spec.attribute.dtype, spec.attribute.device});
      PairSource src = spec.attribute.data;
      src.path = data_path;
      const PairDataset ds = load_pair_dataset(src, c->path, model->config(), spec.attribute.spec.metric);
      const ModelConfig& mc = model->config();
      AttributeResult r;
      r.graph = {mc.n_layers, mc.n_heads, mc.n_kv_heads, spec.attribute.spec.kv_edges};
      const Graph graph(r.graph);
      r.scores = combine_units(units, graph.n_edges(), c->name);
      if (r.scores.n_examples != static_cast<int64_t>(ds.examples.size()))
        throw Error(ErrorCode::kInput, c->name + ": its units hold " + std::to_string(r.scores.n_examples) +
                                           " pairs; " + data_path + " gives " + std::to_string(ds.examples.size()));
      r.circuit = select_and_measure(*model, graph, ds.examples, r.scores.scores, spec.attribute.spec);
      report = attribute_report(r, spec.attribute.spec, *model, c->path, ds);
      write_file_atomically(path, report.dump(1) + "\n");
      write_file_atomically(key_path,
                            json{{"key", key}, {"report", path}, {"run", {{"merged", utc_now()}}}}.dump() + "\n");
    }
    out.reports.push_back(path);

    StepHeads sh;
    sh.name = c->name;
    sh.step = c->step;
    sh.heads = report_heads_from_json(report, path);
    sh.heads.path = path;
    if (c->base) base = sh;
    else steps.push_back(sh);
  }
  if (options.shard) return out;  // the summary is the unsharded merge's

  std::optional<TrainingLog> log;
  if (!spec.log_path.empty()) {
    log = read_training_log(spec.log_path, spec.log_key);
    // Windows end at the previous checkpoint of the series, merged or not.
    for (StepHeads& s : steps) {
      int64_t previous = 0;
      for (const Checkpoint& c : spec.checkpoints)
        if (c.step < s.step) previous = c.step;
      s.reward = log_value_at(*log, previous, s.step);
    }
  }
  const nlohmann::ordered_json summary = sweep_summary(base, steps, log, out.skipped);
  out.summary_path = (fs::path(dir) / "summary.json").string();
  write_file_atomically(out.summary_path, summary.dump(1) + "\n");
  out.timeline = format_timeline(summary);
  write_file_atomically((fs::path(dir) / "timeline.txt").string(), out.timeline);
  return out;
}

}  // namespace circuitscope::sweep
