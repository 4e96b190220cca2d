// Checkpoint sweeps (include/circuitscope/sweep.hpp): the spec, the plan and its shards, claims,
// staleness, merge against direct attribution, and the summary's arithmetic.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/pipeline.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/sweep.hpp"
#include "circuitscope/toy.hpp"
#include "json_schema_lite.hpp"
#include "test_util.hpp"

using namespace circuitscope;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using cs_test::error_code_of;

std::string error_text_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A stand-in for the CLI's parser of the attribute block: the keys these tests use.
sweep::AttributeBlock test_attribute_parser(const json& o, const std::string& origin) {
  sweep::AttributeBlock b;
  b.spec.method = parse_attribution_method(o.value("method", std::string("eap-ig-inputs")));
  b.spec.ig_steps = o.value("ig_steps", 3);
  b.spec.batch_size = o.value("batch_size", int64_t{2});
  b.spec.metric = parse_metric(o.value("metric", std::string("logit-diff")));
  b.data.skip_bad = o.value("skip_bad", false);
  if (o.contains("top_n")) {
    b.spec.selection.kind = SelectionKind::kTopN;
    b.spec.selection.n = o["top_n"].get<int64_t>();
  }
  for (const auto& [k, v] : o.items())
    if (k != "method" && k != "ig_steps" && k != "batch_size" && k != "top_n" && k != "metric" && k != "skip_bad")
      throw Error(ErrorCode::kUsage, origin + ": unknown key '" + k + "'");
  return b;
}

// Small random Qwen2 checkpoints (the toy lab's format), distinct per seed.

// Token-form pairs over the toy vocabulary: 7 lines, so chunks of 3 give 3 + 3 + 1.
std::string pairs_text(int variant = 0) {
  std::string s;
  for (int i = 0; i < 7; ++i) {
    const int a = 20 + i + variant, b = 40 + 2 * i;
    s += "{\"clean_ids\": [5, " + std::to_string(a) + ", 30, " + std::to_string(b) + ", 9], \"corrupted_ids\": [5, " +
         std::to_string(a + 1) + ", 30, " + std::to_string(b + 3) + ", 9], \"answer_id\": " + std::to_string(b) +
         ", \"wrong_id\": " + std::to_string(b + 3) + "}\n";
    if (i == 2) s += "\n";  // blank lines are not pairs
  }
  return s;
}

struct SweepFixture {
  cs_test::TempDir tmp{"sweep"};
  std::string root = tmp.path;
  std::string dir = root + "/out";
  SweepFixture() {
    cs_test::write_random_toy(root + "/base", 1);
    cs_test::write_random_toy(root + "/run/checkpoint-20", 3);
    cs_test::write_random_toy(root + "/run/checkpoint-10", 2);
    cs_test::write_file(root, "pairs.jsonl", pairs_text());
  }
  json spec_json() const {
    return {{"base", "base"},
            {"checkpoints", "run/checkpoint-*"},
            {"data", {{"pairs", "pairs.jsonl"}}},
            {"chunk_size", 3},
            {"attribute", {{"top_n", 12}, {"ig_steps", 3}}}};
  }
  sweep::SweepSpec spec(const json& j, json* resolved = nullptr) const {
    return sweep::parse_sweep_spec(j, "SWEEP.json", root, test_attribute_parser, resolved);
  }
};

sweep::RunCounts run_all_shards(const sweep::SweepSpec& spec, const json& resolved, const std::string& dir, int n) {
  sweep::RunCounts total;
  for (int i = 1; i <= n; ++i) {
    const auto c = sweep::run_units(spec, resolved, dir, {i, n});
    total.units += c.units;
    total.computed += c.computed;
    total.recomputed += c.recomputed;
    total.redone += c.redone;
    total.already_done += c.already_done;
    total.waited += c.waited;
  }
  return total;
}

// The plan with its statuses (which point into it).
struct PlanStatus {
  sweep::Plan plan;
  std::vector<sweep::UnitStatus> units;
};
PlanStatus status_of(const sweep::SweepSpec& s, const std::string& dir) {
  PlanStatus r{sweep::make_plan(s), {}};
  r.units = sweep::sweep_status(s, r.plan, dir);
  return r;
}

int64_t count_state(const std::vector<sweep::UnitStatus>& st, sweep::UnitState s) {
  int64_t n = 0;
  for (const auto& u : st) n += u.state == s;
  return n;
}

}  // namespace

TEST_CASE("sweep: steps come from checkpoint-N names", "[sweep]") {
  REQUIRE(sweep::step_from_name("checkpoint-100") == 100);
  REQUIRE(sweep::step_from_name("run1-checkpoint-2500") == 2500);
  REQUIRE_FALSE(sweep::step_from_name("final").has_value());
  REQUIRE_FALSE(sweep::step_from_name("checkpoint-").has_value());
  REQUIRE_FALSE(sweep::step_from_name("checkpoint-12a").has_value());
  REQUIRE_FALSE(sweep::step_from_name("mycheckpoint-3").has_value());
}

TEST_CASE("sweep spec: glob, steps, names, the attribute block, and errors naming the key", "[sweep]") {
  SweepFixture f;
  json resolved;
  const sweep::SweepSpec s = f.spec(f.spec_json(), &resolved);
  REQUIRE(s.base.name == "base");
  REQUIRE(s.base.base);
  REQUIRE(s.checkpoints.size() == 2);
  REQUIRE(s.checkpoints[0].name == "checkpoint-10");  // sorted by step, not by name
  REQUIRE(s.checkpoints[0].step == 10);
  REQUIRE(s.checkpoints[1].step == 20);
  REQUIRE(fs::path(s.checkpoints[1].path).is_absolute());
  REQUIRE(s.pairs == (fs::path(f.root) / "pairs.jsonl").lexically_normal().string());
  REQUIRE(s.chunk_size == 3);
  REQUIRE(s.attribute.spec.selection.n == 12);
  // The resolved form lists every checkpoint and parses to the same sweep.
  REQUIRE(resolved["checkpoints"].size() == 2);
  REQUIRE(resolved["checkpoints"][1]["step"] == 20);
  std::ifstream sf(cs_test::data_dir() + "/../../schemas/sweep.schema.json");
  REQUIRE(sf.good());
  json schema;
  sf >> schema;
  std::vector<std::string> errors;
  REQUIRE(cs_test::validate_schema(f.spec_json(), schema, "$", errors));
  REQUIRE(cs_test::validate_schema(resolved, schema, "$", errors));
  json wrong = f.spec_json();
  wrong["chunk_size"] = 0;
  REQUIRE_FALSE(cs_test::validate_schema(wrong, schema, "$", errors));
  const sweep::SweepSpec again = sweep::parse_sweep_spec(resolved, "sweep.json", "/nonexistent", test_attribute_parser);
  REQUIRE(again.checkpoints[1].path == s.checkpoints[1].path);
  REQUIRE(again.pairs == s.pairs);

  // A config file under the block's own keys: the block wins.
  cs_test::write_file(f.root, "cfg.json", "// comment\n{\"top_n\": 50, \"ig_steps\": 7}\n");
  json j = f.spec_json();
  j["attribute"] = {{"config", "cfg.json"}, {"top_n", 9}};
  const sweep::SweepSpec c = f.spec(j);
  REQUIRE(c.attribute.spec.selection.n == 9);
  REQUIRE(c.attribute.spec.ig_steps == 7);
  j["attribute"] = "cfg.json";
  REQUIRE(f.spec(j).attribute.spec.selection.n == 50);

  // Explicit entries: step given, or read from the name; a name without a step is refused.
  fs::create_directories(f.root + "/other/final");
  cs_test::write_random_toy(f.root + "/other/final", 4);
  j = f.spec_json();
  j["checkpoints"] = json::array({"run/checkpoint-10", {{"path", "other/final"}, {"step", 15}, {"name", "late"}}});
  const sweep::SweepSpec e = f.spec(j);
  REQUIRE(e.checkpoints[1].name == "late");
  REQUIRE(e.checkpoints[1].step == 15);
  j["checkpoints"] = json::array({"other/final"});
  REQUIRE(error_text_of([&] { f.spec(j); }).find("no step in its name") != std::string::npos);

  j = f.spec_json();
  j["checkpoints"] = "run/nothing-*";
  REQUIRE(error_code_of([&] { f.spec(j); }) == static_cast<int>(ErrorCode::kInput));
  j = f.spec_json();
  j["chunk_sise"] = 3;
  REQUIRE(error_text_of([&] { f.spec(j); }).find("unknown key 'chunk_sise'") != std::string::npos);
  j = f.spec_json();
  j["data"] = {{"pairs", "pairs.jsonl"}, {"prompts", "pairs.jsonl"}};
  REQUIRE(error_text_of([&] { f.spec(j); }).find("exactly one of") != std::string::npos);
  j = f.spec_json();
  j["attribute"] = {{"ig_steps", 3}};
  REQUIRE(error_text_of([&] { f.spec(j); }).find("needs a circuit selection") != std::string::npos);
  j = f.spec_json();
  j["attribute"]["data"] = "x.jsonl";
  REQUIRE(error_text_of([&] { f.spec(j); }).find("attribute option 'data' is set by the sweep") != std::string::npos);
  j = f.spec_json();
  j["checkpoints"] = json::array({"run/checkpoint-10", {{"path", "run/checkpoint-20"}, {"name", "base"}}});
  REQUIRE(error_text_of([&] { f.spec(j); }).find("two checkpoints are named 'base'") != std::string::npos);
  j = f.spec_json();
  j["data"] = {{"prompts", "pairs.jsonl"}};  // building pairs needs a sequence metric
  REQUIRE(error_text_of([&] { f.spec(j); }).find("seq-logprob or seq-kl") != std::string::npos);
}

TEST_CASE("model fingerprints tell apart checkpoints of one shape (they sample the weights)", "[sweep]") {
  SweepFixture f;
  const auto a = HookedTransformer::from_pretrained(f.root + "/run/checkpoint-10");
  const auto b = HookedTransformer::from_pretrained(f.root + "/run/checkpoint-20");
  const auto a2 = HookedTransformer::from_pretrained(f.root + "/run/checkpoint-10");
  REQUIRE(a->fingerprint() != b->fingerprint());
  REQUIRE(a->fingerprint() == a2->fingerprint());
  REQUIRE(sweep::checkpoint_identity(f.root + "/run/checkpoint-10") != sweep::checkpoint_identity(f.root + "/run/checkpoint-20"));
}

TEST_CASE("sweep plan: deterministic units, and shards that partition them in contiguous blocks", "[sweep]") {
  SweepFixture f;
  const sweep::SweepSpec s = f.spec(f.spec_json());
  const sweep::Plan p = sweep::make_plan(s);
  REQUIRE(p.n_items == 7);  // the blank line is not a pair
  REQUIRE(p.units.size() == 9);  // 3 checkpoints x chunks [0,3) [3,6) [6,7)
  REQUIRE(p.units[0].id() == "base/chunk-0");
  REQUIRE(p.units[5].id() == "checkpoint-10/chunk-2");
  REQUIRE(p.units[5].begin == 6);
  REQUIRE(p.units[5].end == 7);
  const sweep::Plan p2 = sweep::make_plan(f.spec(f.spec_json()));
  for (size_t i = 0; i < p.units.size(); ++i) REQUIRE(p2.units[i].id() == p.units[i].id());

  for (int n = 1; n <= 12; ++n) {
    std::vector<int> seen(p.units.size(), 0);
    for (int i = 1; i <= n; ++i) {
      const auto mine = sweep::shard_units(p, {i, n});
      for (size_t k = 0; k < mine.size(); ++k) {
        ++seen[mine[k]->index];
        if (k > 0) REQUIRE(mine[k]->index == mine[k - 1]->index + 1);
      }
      REQUIRE(mine.size() >= p.units.size() / n);  // balanced within one unit
      REQUIRE(mine.size() <= (p.units.size() + n - 1) / n);
    }
    for (int c : seen) REQUIRE(c == 1);
  }
  REQUIRE(sweep::parse_shard("2/3").index == 2);
  for (const char* bad : {"0/3", "4/3", "3", "a/3", "1/0", "1/3x", "-1/3"})
    REQUIRE(error_code_of([&] { sweep::parse_shard(bad); }) == static_cast<int>(ErrorCode::kUsage));
}

TEST_CASE("sweep: 3 shards then merge equal direct attribution, reruns skip, changed inputs are recomputed",
          "[sweep]") {
  SweepFixture f;
  json resolved;
  const sweep::SweepSpec s = f.spec(f.spec_json(), &resolved);
  const sweep::RunCounts c = run_all_shards(s, resolved, f.dir, 3);
  REQUIRE(c.units == 9);
  REQUIRE(c.computed == 9);
  REQUIRE(fs::exists(f.dir + "/sweep.json"));
  const sweep::MergeResult m = sweep::merge_sweep(s, f.dir, {});
  REQUIRE(m.reports.size() == 3);

  // Direct attribution of each checkpoint on the whole pairs file, through the same library calls
  // `attribute` makes.
  for (const sweep::Checkpoint* ck : s.all_checkpoints()) {
    auto model = HookedTransformer::from_pretrained(ck->path);
    PairSource src;
    src.path = s.pairs;
    const PairDataset ds = load_pair_dataset(src, ck->path, model->config(), s.attribute.spec.metric);
    const json direct = attribute_report(attribute(*model, ds.examples, s.attribute.spec), s.attribute.spec, *model,
                                         ck->path, ds);
    const json merged = cs_test::read_json_file(f.dir + "/reports/" + ck->name + ".json");
    INFO(ck->name);
    for (const char* k : {"schema_version", "model", "dataset", "method", "heads", "nodes"}) {
      if (std::string(k) == "heads") {
        for (size_t i = 0; i < direct["heads"].size(); ++i) {
          REQUIRE(merged["heads"][i]["in_circuit"] == direct["heads"][i]["in_circuit"]);
          REQUIRE(std::abs(merged["heads"][i]["importance"].get<double>() - direct["heads"][i]["importance"].get<double>()) <=
                  1e-6);
        }
      } else {
        REQUIRE(merged[k] == direct[k]);
      }
    }
    double max_abs = 0.0, worst = 0.0;
    for (const auto& [name, e] : direct["edges"].items()) {
      const double ref = e["score"].get<double>(), got = merged["edges"][name]["score"].get<double>();
      max_abs = std::max(max_abs, std::abs(ref));
      worst = std::max(worst, std::abs(got - ref) - (1e-7 + 1e-5 * std::abs(ref)));
      REQUIRE(merged["edges"][name]["in_graph"] == e["in_graph"]);
    }
    INFO("max |score| " << max_abs);
    REQUIRE(worst <= 0.0);
    REQUIRE(max_abs > 1e-4);  // the comparison is not between zeros
    REQUIRE(std::abs(merged["baselines"]["clean"].get<double>() - direct["baselines"]["clean"].get<double>()) <= 1e-5);
    REQUIRE(std::abs(merged["faithfulness"]["circuit"].get<double>() - direct["faithfulness"]["circuit"].get<double>()) <=
            1e-4);
  }

  // summary.json follows its schema.
  std::ifstream sf(cs_test::data_dir() + "/../../schemas/summary.schema.json");
  REQUIRE(sf.good());
  json schema;
  sf >> schema;
  std::vector<std::string> errors;
  const json summary = cs_test::read_json_file(m.summary_path);
  INFO((errors.empty() ? "" : errors.front()));
  REQUIRE(cs_test::validate_schema(summary, schema, "$", errors));
  REQUIRE(summary["steps"].size() == 2);
  REQUIRE(summary["heads"].size() == 8);

  // Merging again keeps the current reports; a merge array (shards of checkpoints) then a final
  // merge gives the same reports; a new selection makes every report new.
  const std::string first_report = cs_test::read_json_file(m.reports[1]).dump();
  REQUIRE(sweep::merge_sweep(s, f.dir, {}).kept == 3);
  sweep::MergeOptions half;
  half.shard = sweep::Shard{2, 2};
  const sweep::MergeResult h = sweep::merge_sweep(s, f.dir, half);
  REQUIRE(h.reports.size() == 2);  // checkpoints [1, 3) of 3
  REQUIRE(h.summary_path.empty());
  json retop = f.spec_json();
  retop["attribute"]["top_n"] = 7;
  REQUIRE(sweep::merge_sweep(f.spec(retop), f.dir, {}).kept == 0);
  REQUIRE(cs_test::read_json_file(m.reports[1])["circuit"]["top_n"] == 7);
  REQUIRE(sweep::merge_sweep(s, f.dir, half).kept == 0);
  const sweep::MergeResult fin = sweep::merge_sweep(s, f.dir, {});
  REQUIRE(fin.kept == 2);
  REQUIRE(cs_test::read_json_file(m.reports[1]).dump() == first_report);

  // A rerun does nothing.
  const sweep::RunCounts again = run_all_shards(s, resolved, f.dir, 2);
  REQUIRE(again.computed + again.recomputed + again.redone == 0);
  REQUIRE(again.already_done == 9);

  // Changed data: only the chunk that changed is recomputed, for every checkpoint, and status says why.
  std::string text = pairs_text();
  text.replace(text.find("\"clean_ids\": [5, 23"), 19, "\"clean_ids\": [6, 23");  // line 4: chunk 1
  cs_test::write_file(f.root, "pairs.jsonl", text);
  const sweep::SweepSpec s2 = f.spec(f.spec_json(), &resolved);
  const PlanStatus ps2 = status_of(s2, f.dir);
  const auto& st = ps2.units;
  REQUIRE(count_state(st, sweep::UnitState::kStale) == 3);
  for (const auto& u : st)
    if (u.state == sweep::UnitState::kStale) {
      REQUIRE(u.unit->chunk == 1);
      REQUIRE(u.reason.find("data.sha256") != std::string::npos);
    }
  REQUIRE_THROWS_AS(sweep::merge_sweep(s2, f.dir, {}), Error);
  const sweep::RunCounts r2 = run_all_shards(s2, resolved, f.dir, 3);
  REQUIRE(r2.recomputed == 3);
  REQUIRE(r2.already_done == 6);

  // Changed options: every unit.
  json j = f.spec_json();
  j["attribute"]["ig_steps"] = 2;
  const sweep::SweepSpec s3 = f.spec(j, &resolved);
  const PlanStatus ps3 = status_of(s3, f.dir);
  const auto& st3 = ps3.units;
  REQUIRE(count_state(st3, sweep::UnitState::kStale) == 9);
  REQUIRE(st3[0].reason == "options.ig_steps 3 -> 2");
  // ...but not the selection, which only merge uses.
  j = f.spec_json();
  j["attribute"]["top_n"] = 5;
  const sweep::SweepSpec s4 = f.spec(j);
  REQUIRE(count_state(status_of(s4, f.dir).units, sweep::UnitState::kDone) == 9);

  // A retrained checkpoint (same shapes, new weights): its units only.
  cs_test::write_random_toy(f.root + "/run/checkpoint-20", 99);
  const PlanStatus ps5 = status_of(s2, f.dir);
  const auto& st5 = ps5.units;
  REQUIRE(count_state(st5, sweep::UnitState::kStale) == 3);
  for (const auto& u : st5)
    if (u.state == sweep::UnitState::kStale) {
      REQUIRE(u.unit->checkpoint.name == "checkpoint-20");
      REQUIRE(u.reason.rfind("checkpoint ", 0) == 0);
    }
}

TEST_CASE("sweep: a unit left half done is redone, a unit claimed by another process is waited for", "[sweep]") {
  SweepFixture f;
  json resolved;
  const sweep::SweepSpec s = f.spec(f.spec_json(), &resolved);
  REQUIRE(sweep::run_units(s, resolved, f.dir, {1, 1}).computed == 9);
  const std::string unit_dir = f.dir + "/units/checkpoint-10";
  const std::string result = unit_dir + "/chunk-1.json";
  const std::string saved = cs_test::read_json_file(result).dump();

  // As a process killed mid-unit leaves it: no result, its claim text, a partial temporary file.
  fs::remove(result);
  cs_test::write_file(unit_dir, "chunk-1.lock", "pid 4242 on node7, started 2026-12-05T08:00:00Z\n");
  cs_test::write_file(unit_dir, "chunk-1.json.tmp4242", "{\"unit_version\": 1, \"inpu");
  const sweep::Plan plan = sweep::make_plan(s);
  const auto st = sweep::sweep_status(s, plan, f.dir);
  REQUIRE(count_state(st, sweep::UnitState::kMissing) == 1);
  for (const auto& u : st)
    if (u.state == sweep::UnitState::kMissing) REQUIRE(u.reason == "interrupted (pid 4242 on node7, started 2026-12-05T08:00:00Z)");
  const sweep::RunCounts c = sweep::run_units(s, resolved, f.dir, {1, 1});
  REQUIRE(c.redone == 1);
  REQUIRE(c.already_done == 8);
  REQUIRE_FALSE(fs::exists(unit_dir + "/chunk-1.json.tmp4242"));
  REQUIRE(cs_test::read_json_file(result)["scores"] == json::parse(saved)["scores"]);  // the same numbers again
  REQUIRE(cs_test::read_json_file(result)["inputs"] == json::parse(saved)["inputs"]);

  // Another holder of the claim: the run does every other unit, then waits; the holder finishes the
  // unit (here: puts the result in place) and lets go; the run counts it as done by another.
  fs::remove(result);
  const int fd = ::open((unit_dir + "/chunk-1.lock").c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  REQUIRE(sweep::sweep_status(s, plan, f.dir)[4].running);
  std::atomic<bool> finished{false};
  sweep::RunCounts held;
  std::thread t([&] {
    held = sweep::run_units(s, resolved, f.dir, {1, 1});
    finished = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  REQUIRE_FALSE(finished.load());  // waiting on the claim
  {
    std::ofstream out(result);
    out << saved;
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
  t.join();
  REQUIRE(held.waited == 1);
  REQUIRE(held.computed + held.redone + held.recomputed == 0);
  REQUIRE(held.already_done == 8);
}

TEST_CASE("sweep summary: emergence, frequency, E, cohorts and correlations on hand-made circuits", "[sweep]") {
  // 2 layers x 2 heads. Base circuit: a0.h0. Steps 100, 200, 300, 400.
  auto heads = [](std::vector<double> imp, std::vector<bool> in) {
    ReportHeads r;
    r.n_layers = 2;
    r.n_heads = 2;
    r.importance = std::move(imp);
    r.in_circuit = std::move(in);
    r.path = "r.json";
    return r;
  };
  sweep::StepHeads base{"base", 0, heads({0.5, 0.0, 0.5, 0.0}, {true, false, false, false}), std::nullopt};
  std::vector<sweep::StepHeads> steps = {
      {"checkpoint-100", 100, heads({0.5, 0.5, 0.0, 0.0}, {true, true, false, false}), 1.0},
      {"checkpoint-200", 200, heads({0.2, 0.4, 0.2, 0.2}, {true, true, true, true}), 4.0},
      {"checkpoint-300", 300, heads({0.5, 0.5, 0.0, 0.0}, {false, true, false, false}), 2.0},
      {"checkpoint-400", 400, heads({0.0, 0.5, 0.0, 0.5}, {false, true, false, true}), 3.0},
  };
  sweep::TrainingLog log;
  log.path = "log.jsonl";
  log.key = "reward";
  const json s = sweep::sweep_summary(base, steps, log);
  // a0.h1 first in the circuit at 100, a1.h0 and a1.h1 at 200; a0.h0 was in the base circuit.
  REQUIRE(s["heads"][0]["first_emergence_step"].is_null());
  REQUIRE(s["heads"][1]["first_emergence_step"] == 100);
  REQUIRE(s["heads"][2]["first_emergence_step"] == 200);
  REQUIRE(s["heads"][3]["first_emergence_step"] == 200);
  REQUIRE(s["heads"][1]["frequency"] == 1.0);
  REQUIRE(s["heads"][3]["frequency"] == 0.5);
  REQUIRE(s["heads"][0]["frequency"] == 0.5);
  // E = (post - base) / (post + base + 1e-6): a1.h0 at step 200 is (0.2 - 0.5) / (0.7 + 1e-6).
  REQUIRE(std::abs(s["heads"][2]["E"][1].get<double>() - (-0.3 / (0.7 + 1e-6))) < 1e-12);
  REQUIRE(s["heads"][1]["E"][0].get<double>() == Approx(1.0).margin(1e-5));
  // Emergent (in the step's circuit, not the base's) per step: 1, 3, 1, 2; new: 1, 2, 0, 0; lost: 0, 0, 1, 1.
  const std::vector<int64_t> emergent = {1, 3, 1, 2}, fresh = {1, 2, 0, 0}, lost = {0, 0, 1, 1};
  for (size_t i = 0; i < 4; ++i) {
    REQUIRE(s["steps"][i]["emergent"] == emergent[i]);
    REQUIRE(s["steps"][i]["new"] == fresh[i]);
    REQUIRE(s["steps"][i]["lost"] == lost[i]);
  }
  // Cohorts: {a0.h1} at 100, alive 1 1 1 1; {a1.h0, a1.h1} at 200, alive 2 0 1.
  REQUIRE(s["cohorts"].size() == 2);
  REQUIRE(s["cohorts"][0]["heads"] == json::array({"a0.h1"}));
  REQUIRE(s["cohorts"][1]["heads"] == json::array({"a1.h0", "a1.h1"}));
  std::vector<int64_t> alive;
  for (const auto& a : s["cohorts"][1]["alive"]) alive.push_back(a["count"]);
  REQUIRE(alive == std::vector<int64_t>{2, 0, 1});
  // Emergent counts x = (1, 3, 1, 2) against rewards y = (1, 4, 2, 3), worked by hand:
  // Pearson: mean x 1.75, y 2.5; Sxy = 3.5, Sxx = 2.75, Syy = 5; r = 3.5 / sqrt(13.75).
  REQUIRE(s["new_heads_vs_reward"]["n"] == 4);
  REQUIRE(std::abs(s["new_heads_vs_reward"]["pearson"].get<double>() - 3.5 / std::sqrt(13.75)) < 1e-12);
  // Spearman: ranks x = (1.5, 4, 1.5, 3), y = (1, 4, 2, 3); Sxy = 4.5, Sxx = 4.5, Syy = 5; rho = 4.5 / sqrt(22.5).
  REQUIRE(std::abs(s["new_heads_vs_reward"]["spearman"].get<double>() - 4.5 / std::sqrt(22.5)) < 1e-12);
  const std::string timeline = sweep::format_timeline(s);
  REQUIRE(timeline.find("a1.h0 a1.h1") != std::string::npos);
  REQUIRE(timeline.find("pearson +0.944, spearman +0.949 (n = 4)") != std::string::npos);

  // Too few points for a correlation: null, not NaN.
  steps.resize(1);
  const json one = sweep::sweep_summary(base, steps, log);
  REQUIRE(one["new_heads_vs_reward"]["pearson"].is_null());
  // Reports of another shape are refused.
  steps[0].heads.n_heads = 3;
  REQUIRE(error_code_of([&] { sweep::sweep_summary(base, steps, log); }) == static_cast<int>(ErrorCode::kInput));
}

TEST_CASE("sweep: training logs (trainer_state.json, JSONL) and a checkpoint's value", "[sweep]") {
  cs_test::TempDir tmp("sweeplog");
  const std::string ts = cs_test::write_file(
      tmp.path, "trainer_state.json",
      R"({"global_step": 300, "log_history": [{"step": 50, "loss": 1.0}, {"step": 100, "loss": 0.8, "reward": 0.1},)"
      R"( {"step": 150, "reward": 0.3}, {"step": 200, "reward": 0.5}, {"step": 300, "eval_loss": 2.0}]})");
  const sweep::TrainingLog l = sweep::read_training_log(ts);
  REQUIRE(l.key == "reward");  // preferred over loss
  REQUIRE(l.points.size() == 3);
  REQUIRE(*sweep::log_value_at(l, 100, 200) == Approx(0.4));  // mean of 0.3 and 0.5
  REQUIRE(*sweep::log_value_at(l, 0, 100) == Approx(0.1));
  REQUIRE(*sweep::log_value_at(l, 200, 300) == Approx(0.5));  // nothing in (200, 300]: the last before
  REQUIRE_FALSE(sweep::log_value_at(l, 0, 50).has_value());
  REQUIRE(sweep::read_training_log(ts, "loss").points.size() == 2);
  REQUIRE(error_code_of([&] { sweep::read_training_log(ts, "accuracy"); }) == static_cast<int>(ErrorCode::kInput));

  const std::string jl = cs_test::write_file(tmp.path, "rewards.jsonl",
                                             "{\"step\": 1, \"mean_reward\": 0.25, \"accuracy\": 0.5}\n\n"
                                             "{\"step\": 2, \"mean_reward\": 0.75, \"accuracy\": 0.5}\n");
  const sweep::TrainingLog r = sweep::read_training_log(jl);
  REQUIRE(r.key == "mean_reward");
  REQUIRE(*sweep::log_value_at(r, 0, 2) == Approx(0.5));
  const std::string broken = cs_test::write_file(tmp.path, "broken.jsonl", "{\"step\": 1}\n{oops\n");
  REQUIRE(error_text_of([&] { sweep::read_training_log(broken, "loss"); }).find("broken.jsonl:2") != std::string::npos);
}

TEST_CASE("sweep: a chunk without a usable pair counts 0 pairs, a failing unit does not stop the shard", "[sweep]") {
  SweepFixture f;
  // Lines 4-6 (chunk 1) name token ids past the vocabulary: with skip_bad they are skipped, so
  // chunk 1 holds no pair at all.
  std::string text = pairs_text();
  std::string bad;
  for (int i = 0; i < 3; ++i) bad += "{\"clean_ids\": [5, 99999], \"corrupted_ids\": [5, 99998], \"answer_id\": 7, \"wrong_id\": 8}\n";
  const size_t third = text.find('\n', text.find('\n', text.find('\n') + 1) + 1) + 1;
  text.insert(third, bad);
  cs_test::write_file(f.root, "pairs.jsonl", text);
  json j = f.spec_json();
  j["attribute"]["skip_bad"] = true;
  json resolved;
  const sweep::SweepSpec s = f.spec(j, &resolved);
  REQUIRE(sweep::make_plan(s).n_items == 10);
  REQUIRE(sweep::run_units(s, resolved, f.dir, {1, 1}).computed == 12);
  REQUIRE(cs_test::read_json_file(f.dir + "/units/base/chunk-1.json")["n_examples"] == 0);
  REQUIRE(cs_test::read_json_file(f.dir + "/units/base/chunk-1.json")["skipped"] == 3);
  sweep::merge_sweep(s, f.dir, {});
  auto model = HookedTransformer::from_pretrained(s.base.path);
  PairSource src;
  src.path = s.pairs;
  src.skip_bad = true;
  const PairDataset ds = load_pair_dataset(src, s.base.path, model->config(), s.attribute.spec.metric);
  REQUIRE(ds.examples.size() == 7);
  const json direct = attribute_report(attribute(*model, ds.examples, s.attribute.spec), s.attribute.spec, *model,
                                       s.base.path, ds);
  const json merged = cs_test::read_json_file(f.dir + "/reports/base.json");
  REQUIRE(merged["dataset"] == direct["dataset"]);  // examples 7, skipped 3
  for (const auto& [name, e] : direct["edges"].items())
    REQUIRE(std::abs(merged["edges"][name]["score"].get<double>() - e["score"].get<double>()) <=
            1e-7 + 1e-5 * std::abs(e["score"].get<double>()));

  // A checkpoint that cannot be read: its units fail, the others are done, and the run then fails
  // naming them; the claims say what happened; once fixed, a rerun redoes just those.
  SweepFixture g;
  json r2;
  const sweep::SweepSpec s2 = g.spec(g.spec_json(), &r2);
  const std::string weights = g.root + "/run/checkpoint-10/model.safetensors";
  fs::rename(weights, weights + ".hidden");
  const std::string err = error_text_of([&] { sweep::run_units(s2, r2, g.dir, {1, 1}); });
  INFO(err);
  REQUIRE(err.find("3 unit(s) failed") != std::string::npos);
  REQUIRE(err.find("checkpoint-10/chunk-2: ") != std::string::npos);
  const PlanStatus ps = status_of(s2, g.dir);
  REQUIRE(count_state(ps.units, sweep::UnitState::kDone) == 6);
  for (const auto& u : ps.units)
    if (u.state != sweep::UnitState::kDone) {
      REQUIRE(u.unit->checkpoint.name == "checkpoint-10");
      REQUIRE(u.reason.rfind("failed in pid ", 0) == 0);
      REQUIRE(u.reason.find("has no .safetensors file") != std::string::npos);
    }
  fs::rename(weights + ".hidden", weights);
  const sweep::RunCounts c = sweep::run_units(s2, r2, g.dir, {1, 1});
  REQUIRE(c.redone == 3);
  REQUIRE(c.already_done == 6);
  REQUIRE(c.failed == 0);
}

TEST_CASE("sweep spec: globs take checkpoint-N folders only, trailing slashes, a checkpoint twice", "[sweep]") {
  SweepFixture f;
  fs::create_directories(f.root + "/run/checkpoint-30-tmp");
  json j = f.spec_json();
  REQUIRE(f.spec(j).checkpoints.size() == 2);  // checkpoint-30-tmp left out (with a warning)
  j["checkpoints"] = json::array({"run/checkpoint-10/", "run/checkpoint-20"});
  const sweep::SweepSpec s = f.spec(j);
  REQUIRE(s.checkpoints[0].name == "checkpoint-10");
  REQUIRE(s.checkpoints[0].step == 10);
  j["checkpoints"] = json::array({"run/checkpoint-10", "run/../run/checkpoint-10/"});
  REQUIRE(error_text_of([&] { f.spec(j); }).find("is listed twice") != std::string::npos);
  j["checkpoints"] = json::array({"run/checkpoint-10", {{"path", "base"}, {"step", 5}, {"name", "b2"}}});
  REQUIRE(error_text_of([&] { f.spec(j); }).find("(or is the base)") != std::string::npos);
  j["checkpoints"] = json::array({{{"path", "run/checkpoint-10"}, {"name", "../x"}}});
  REQUIRE(error_text_of([&] { f.spec(j); }).find("usable as a file name") != std::string::npos);
}

TEST_CASE("sweep CLI: the attribute block as attribute parses it, shards from SLURM's variables, status, merge",
          "[sweep][cli]") {
  SweepFixture f;
  const std::string repo = cs_test::data_dir() + "/../..";
  cs_test::write_file(f.root, "sweep.json",
                      "// configs/thinking-sparks.json as is, under the block's own keys\n"
                      "{\"base\": \"base\", \"checkpoints\": \"run/checkpoint-*\", \"data\": {\"pairs\": \"pairs.jsonl\"},\n"
                      " \"chunk_size\": 3, \"attribute\": {\"config\": \"" + repo +
                          "/configs/thinking-sparks.json\", \"ig-steps\": 2, \"simplify\": 0.0001, "
                          "\"batch_size\": 2}}\n");
  const std::string cs = cs_test::binary_path() + " --threads 1 ";
  std::string out;
  REQUIRE(cs_test::run_command(cs + "sweep plan " + f.root + "/sweep.json --out " + f.dir, out) == 0);
  INFO(out);
  REQUIRE(out.find("9 units: 3 checkpoints x 3 chunks of up to 3 pairs (7 in all)") != std::string::npos);
  const json plan = cs_test::read_json_file(f.dir + "/sweep.json");
  REQUIRE(plan["attribute"]["top_n"] == 5000);
  REQUIRE(plan["attribute"]["ig-steps"] == 2);

  // A task resubmitted alone cannot tell its shard; an array 1-3 can.
  const std::string env_alone = "SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=1 SLURM_ARRAY_TASK_MIN=2 SLURM_ARRAY_TASK_MAX=2 ";
  REQUIRE(cs_test::run_command(env_alone + cs + "sweep run " + f.dir + "/sweep.json --out " + f.dir, out) == 2);
  REQUIRE(out.find("give --shard 2/N") != std::string::npos);
  for (int i = 1; i <= 3; ++i) {
    const std::string env = "SLURM_ARRAY_TASK_ID=" + std::to_string(i) +
                            " SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=3 ";
    REQUIRE(cs_test::run_command(env + cs + "sweep run " + f.dir + "/sweep.json --out " + f.dir, out) == 0);
    REQUIRE(out.find("shard " + std::to_string(i) + "/3 from SLURM_ARRAY_TASK_ID=" + std::to_string(i)) !=
            std::string::npos);
    if (i == 2) {
      REQUIRE(cs_test::run_command(cs + "sweep status " + f.dir + " --json > " + f.root + "/st.json", out) == 0);
      const json st = cs_test::read_json_file(f.root + "/st.json");
      REQUIRE(st["units"]["done"] == 6);
      REQUIRE(st["units"]["missing"] == 3);
      REQUIRE(st["complete"] == false);
      REQUIRE(cs_test::run_command(cs + "sweep merge " + f.dir, out) == static_cast<int>(ErrorCode::kInput));
      REQUIRE(out.find("checkpoint-20: checkpoint-20/chunk-0 (missing)") != std::string::npos);
    }
  }
  REQUIRE(cs_test::run_command(cs + "sweep merge " + f.dir, out) == 0);
  REQUIRE(out.find("base base:") != std::string::npos);
  // The merged report against `attribute` with the same options.
  const std::string ck = f.root + "/run/checkpoint-20";
  REQUIRE(cs_test::run_command(cs + "attribute " + ck + " --data " + f.root + "/pairs.jsonl --config " + repo +
                                   "/configs/thinking-sparks.json --ig-steps 2 --simplify 0.0001 --batch-size 2 --out " +
                                   f.root + "/direct.json",
                               out) == 0);
  const json direct = cs_test::read_json_file(f.root + "/direct.json");
  const json merged = cs_test::read_json_file(f.dir + "/reports/checkpoint-20.json");
  REQUIRE(merged["method"] == direct["method"]);
  REQUIRE(merged["circuit"] == direct["circuit"]);
  REQUIRE(merged["dataset"]["sha256"] == direct["dataset"]["sha256"]);
  for (const auto& [name, e] : direct["edges"].items()) {
    REQUIRE(merged["edges"][name]["in_graph"] == e["in_graph"]);
    REQUIRE(std::abs(merged["edges"][name]["score"].get<double>() - e["score"].get<double>()) <=
            1e-7 + 1e-5 * std::abs(e["score"].get<double>()));
  }
  // Options the sweep sets are refused, naming the key.
  cs_test::write_file(f.root, "bad.json",
                      "{\"base\": \"base\", \"checkpoints\": \"run/checkpoint-*\", \"data\": {\"pairs\": \"pairs.jsonl\"},"
                      " \"attribute\": {\"top_n\": 5, \"model-dir\": \"x\"}}");
  REQUIRE(cs_test::run_command(cs + "sweep plan " + f.root + "/bad.json --out " + f.root + "/bad", out) == 2);
  REQUIRE(out.find("attribute option 'model-dir' is set by the sweep") != std::string::npos);
}
