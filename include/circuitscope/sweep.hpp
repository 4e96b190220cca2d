// Checkpoint sweeps (the Thinking Sparks study at scale): a base checkpoint and a series of
// post-trained checkpoints, each attributed on its pairs, the circuits compared over training.
//
// The work is a deterministic list of units, one checkpoint x one chunk of its pairs. `run_units`
// does the units of one shard (a SLURM array task); each finished unit is one JSON file written
// atomically, holding its inputs (checkpoint identity, data hash, options) and the partial edge
// scores. `merge_sweep` combines each checkpoint's chunks weighted by example counts, selects and
// measures the circuit as `attribute` does, writes ordinary attribute reports, and a summary of the
// heads over training (summary.json). Layout of a sweep folder DIR:
//   DIR/sweep.json                    the resolved spec (explicit checkpoints, absolute paths)
//   DIR/data/chunk-K.jsonl            fixed pairs, chunk K (shared by every checkpoint)
//   DIR/units/NAME/chunk-K.json       a finished unit's record (inputs, counts, baselines)
//   DIR/units/NAME/chunk-K.scores.f32 its mean edge scores (float32, by edge index)
//   DIR/units/NAME/chunk-K.lock       its claim (flock) and who holds or last held it
//   DIR/units/NAME/chunk-K.pairs.jsonl  pairs built inside the unit (construction mode)
//   DIR/pairs/NAME.jsonl              a checkpoint's built pairs, chunks concatenated (merge)
//   DIR/reports/NAME.json             a checkpoint's attribute report (merge)
//   DIR/summary.json, DIR/timeline.txt  (merge)
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "circuitscope/compare.hpp"
#include "circuitscope/dataset.hpp"
#include "circuitscope/pairs.hpp"
#include "circuitscope/pipeline.hpp"

namespace circuitscope::sweep {

// The versions of the sweep's files, raised when their layout changes.
constexpr int kSweepSpecVersion = 1;  // SWEEP.json (schemas/sweep.schema.json)
constexpr int kUnitVersion = 1;       // units/NAME/chunk-K.json
constexpr int kSummaryVersion = 1;    // summary.json (schemas/summary.schema.json)

struct Checkpoint {
  std::string name;  // unique in the sweep: reports/NAME.json
  std::string path;  // Hugging Face folder (absolute once resolved)
  int64_t step = 0;  // training step; the base's is 0
  bool base = false;
};

// The step in a "checkpoint-N" folder name (HF Trainer, TRL, toy train), if any.
std::optional<int64_t> step_from_name(const std::string& name);

// What a SWEEP.json's "attribute" block sets: the attribute options (parsed by the caller, who
// knows the option names: the CLI parses them exactly as `attribute --config` does).
struct AttributeBlock {
  AttributeSpec spec;
  PairSource data;  // tokenization options only (chat, think, system, tokenizer, skip_bad); path unused
  std::string dtype = "f32";
  std::string device = "cpu";
};
// Parses a flat object of attribute option values; `origin` names it in errors.
using AttributeParser = std::function<AttributeBlock(const nlohmann::json& options, const std::string& origin)>;

struct SweepSpec {
  std::string source;  // the file it was read from (for messages)
  Checkpoint base;
  std::vector<Checkpoint> checkpoints;  // the series, by step
  // Fixed data: one pairs file for every checkpoint. Construction: `prompts` and `generation`; each
  // checkpoint's pairs are built in its units (clean = its opening, corrupted = the base's; for the
  // base itself clean = the base's opening, corrupted = the last checkpoint's).
  std::string pairs;
  std::string prompts;
  OpeningPairOptions generation;  // dtype/device are the sweep's
  int64_t chunk_size = 64;        // pairs (construction: prompts) per unit
  AttributeBlock attribute;
  std::string log_path;  // training log for the reward overlay ("": none)
  std::string log_key;   // "": the first of reward, mean_reward, accuracy, loss found in the log
  bool constructs_pairs() const { return !prompts.empty(); }
  // Base first, then the series.
  std::vector<const Checkpoint*> all_checkpoints() const;
};

// Reads a SWEEP.json (comments allowed): resolves paths against its folder, expands the glob of the
// series, reads steps from the names, merges the attribute block's "config" file under its own keys,
// and validates everything; Error(kFormat/kInput/kUsage) naming the file and key otherwise. Returns
// the spec and, in `resolved`, the same sweep as explicit JSON (what DIR/sweep.json holds).
SweepSpec read_sweep_spec(const std::string& path, const AttributeParser& parse_attribute,
                          nlohmann::json* resolved = nullptr);
SweepSpec parse_sweep_spec(const nlohmann::json& j, const std::string& source, const std::string& base_dir,
                           const AttributeParser& parse_attribute, nlohmann::json* resolved = nullptr);

// ---- the plan ----

struct Unit {
  int64_t index = 0;       // position in the plan
  Checkpoint checkpoint;  // a copy: a plan outlives the spec it was made from
  int64_t chunk = 0;       // chunk index within the checkpoint
  int64_t begin = 0, end = 0;  // items [begin, end) of the pairs (construction: prompts)
  std::string id() const;  // "NAME/chunk-K"
};

struct Plan {
  int64_t n_items = 0;  // pairs (construction: prompts), the same for every checkpoint
  std::vector<std::string> item_lines;  // the non-blank lines of the pairs (prompts) file
  std::vector<Unit> units;              // checkpoint-major, base first
};
// Deterministic: the same spec and files give the same list on every machine.
Plan make_plan(const SweepSpec& spec);

struct Shard {
  int64_t index = 1;  // 1-based
  int64_t count = 1;
};
// "I/N" with 1 <= I <= N; Error(kUsage) otherwise.
Shard parse_shard(const std::string& s);
// Contiguous blocks, so that a shard loads few checkpoints: shard i holds units
// [floor((i-1) U / N), floor(i U / N)).
std::vector<const Unit*> shard_units(const Plan& plan, const Shard& shard);
std::vector<const Unit*> shard_units(Plan&& plan, const Shard& shard) = delete;  // points into the plan

// ---- units ----

// A checkpoint's identity for staleness: SHA-256 over config.json and, for each *.safetensors file
// (by name), its size, its first 64 KiB (the header) and 32 evenly spaced 4 KiB blocks of its data.
// Cheap on any size; training changes every block, so a retrained checkpoint reads as changed.
std::string checkpoint_identity(const std::string& dir);

// The inputs a unit's result depends on (batch size, device and selection do not change it):
// checkpoint identity, data chunk hash, options; `tokenizer` is the identity of the attribute
// block's tokenizer ("" when the checkpoints' own are used).
nlohmann::json unit_inputs(const SweepSpec& spec, const Plan& plan, const Unit& unit, const std::string& identity,
                           const std::string& tokenizer);
// "" when equal; else what changed, e.g. "data sha256 3f2a… -> 9b1c…".
std::string inputs_difference(const nlohmann::json& recorded, const nlohmann::json& current);

enum class UnitState { kMissing, kDone, kStale };
const char* unit_state_name(UnitState s);  // "missing", "done", "stale"

struct UnitStatus {
  const Unit* unit = nullptr;
  UnitState state = UnitState::kMissing;
  std::string reason;        // why stale; for missing: "" or "interrupted (pid P on HOST)"
  bool running = false;      // its claim is held by a live process now
};
// Every unit of the plan; identities are computed once per checkpoint. The statuses point into
// `plan`, which must outlive them.
std::vector<UnitStatus> sweep_status(const SweepSpec& spec, const Plan& plan, const std::string& dir);
std::vector<UnitStatus> sweep_status(const SweepSpec& spec, Plan&& plan, const std::string& dir) = delete;
nlohmann::ordered_json status_json(const SweepSpec& spec, const std::vector<UnitStatus>& status);
std::string format_status(const SweepSpec& spec, const std::vector<UnitStatus>& status);

struct RunCounts {
  int64_t units = 0;          // in the shard
  int64_t computed = 0;       // fresh units this process computed
  int64_t recomputed = 0;     // stale results replaced
  int64_t redone = 0;         // units an interrupted run had left half done
  int64_t already_done = 0;   // finished before this run
  int64_t waited = 0;         // held by another process, waited for, and finished by it
  int64_t failed = 0;         // threw (then run_units throws too, after the other units)
  double seconds = 0.0;
};
// Does the units of `shard`: skips finished ones whose inputs are unchanged, claims each unit with
// an exclusive lock (a second process on the same shard takes the other units, then waits for the
// ones it could not claim), redoes units left half done, and writes each result atomically (scores
// first, then the record). A unit that fails is logged and the shard goes on; at the end an Error
// (the first failure's code) lists the failed units. Writes DIR/sweep.json (`resolved`) first,
// warning when it described another sweep. Logs one line per unit and the counts at the end.
RunCounts run_units(const SweepSpec& spec, const nlohmann::json& resolved, const std::string& dir, const Shard& shard);

// ---- merge and summary ----

// One checkpoint's reward (or accuracy, or loss) from a training log: HF trainer_state.json
// (log_history) or JSONL lines with a "step". The value of a checkpoint at step s is the mean of the
// log's values at steps in (previous checkpoint's step, s]; when none, the last value before s.
struct TrainingLog {
  std::string path;
  std::string key;
  std::vector<std::pair<int64_t, double>> points;  // (step, value), by step
};
// Error(kIo/kFormat) naming the file; Error(kInput) when `key` ("" : the first of reward,
// mean_reward, accuracy, loss) is in no entry.
TrainingLog read_training_log(const std::string& path, const std::string& key = "");
std::optional<double> log_value_at(const TrainingLog& log, int64_t previous_step, int64_t step);

struct StepHeads {
  std::string name;
  int64_t step = 0;
  ReportHeads heads;
  std::optional<double> reward;
};
double pearson_correlation(const std::vector<double>& x, const std::vector<double>& y);   // NaN if undefined
double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y);  // ties get mean ranks

// summary.json (schemas/summary.schema.json): schema_version, tool, base {name, path, report,
// circuit_heads}, log {path, key, value} (or null), n_layers, n_heads, skipped (checkpoints a partial
// merge left out), steps [{step, name, report, reward, circuit_heads, emergent, new, lost}], heads
// [{layer, head, in_base, importance_base, in_circuit[], importance[], E[], first_emergence_step,
// frequency}], cohorts [{step, heads[], alive [{step, count}]}], new_heads_vs_reward {key, points
// [{step, emergent, reward}], n, pearson, spearman}. Steps are in `steps` order (by step). Errors
// when the reports' shapes differ.
nlohmann::ordered_json sweep_summary(const StepHeads& base, const std::vector<StepHeads>& steps,
                                     const std::optional<TrainingLog>& log,
                                     const std::vector<std::string>& skipped = {});
// The short text timeline: one line per step (reward, circuit heads, emergent, new, lost, the heads
// that first emerge there), then the cohorts.
std::string format_timeline(const nlohmann::ordered_json& summary);

struct MergeOptions {
  bool partial = false;  // merge the checkpoints whose units are all done; skip the rest
  // Merge only a contiguous block of the checkpoints (base first) and write no summary: a merge
  // spread over array tasks, followed by an unsharded merge that keeps their reports.
  std::optional<Shard> shard;
};
struct MergeResult {
  std::vector<std::string> reports;  // written or kept, base first
  int64_t kept = 0;                  // reports already current (same units and options), not redone
  std::vector<std::string> skipped;  // checkpoints left out (partial)
  std::string summary_path, timeline;  // empty with a shard
};
// A checkpoint's report is current when its units and the options are those it was merged from
// (recorded in units/NAME/merged.json); a current report is kept, not merged again. Errors (kInput)
// listing the missing or stale units unless options.partial (the base must be complete either way,
// unless a shard leaves it out).
MergeResult merge_sweep(const SweepSpec& spec, const std::string& dir, const MergeOptions& options);

}  // namespace circuitscope::sweep
