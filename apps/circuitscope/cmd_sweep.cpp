// circuitscope sweep plan SWEEP.json --out DIR
// circuitscope sweep run SWEEP.json --out DIR [--shard I/N]   (SLURM array: the shard from its variables)
// circuitscope sweep status DIR [--json]
// circuitscope sweep merge DIR [--partial]
// Options -> library (include/circuitscope/sweep.hpp). The "attribute" block of a SWEEP.json is
// parsed here with attribute's own options, exactly as `attribute --config` reads a file.
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "attribute_options.hpp"
#include "circuit_options.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/html_report.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/sweep.hpp"
#include "command.hpp"
#include "shard_option.hpp"

namespace circuitscope::app {
namespace {

namespace fs = std::filesystem;

struct SweepOptions {
  std::string spec;   // SWEEP.json (plan, run)
  std::string dir;    // --out DIR (plan, run) or the positional DIR (status, merge)
  std::string shard;  // I/N
  bool json = false;
  bool partial = false;
  std::string html;  // merge --html
};

sweep::AttributeBlock parse_attribute_block(const nlohmann::json& options, const std::string& origin) {
  CLI::App scratch{"attribute"};
  AttributeOptions o;
  add_attribute_options(&scratch, o);
  apply_config_json(&scratch, options, origin);
  sweep::AttributeBlock b;
  b.spec = make_attribute_spec(o);
  b.data = pair_source(o.dataset);
  b.dtype = o.model.dtype;
  b.device = o.model.device;
  return b;
}

sweep::SweepSpec read_spec(const std::string& path, nlohmann::json* resolved = nullptr) {
  return sweep::read_sweep_spec(path, parse_attribute_block, resolved);
}

// DIR/sweep.json, written by plan and run.
sweep::SweepSpec read_dir_spec(const std::string& dir) {
  const std::string path = (fs::path(dir) / "sweep.json").string();
  if (!fs::exists(path))
    throw Error(ErrorCode::kIo, "'" + dir + "' is not a sweep folder (no sweep.json): run `circuitscope sweep run "
                                            "SWEEP.json --out " + dir + "` first");
  return read_spec(path);
}

int run_plan(const SweepOptions& o) {
  nlohmann::json resolved;
  const sweep::SweepSpec spec = read_spec(o.spec, &resolved);
  const sweep::Plan plan = sweep::make_plan(spec);
  fs::create_directories(o.dir);
  write_file_atomically((fs::path(o.dir) / "sweep.json").string(), resolved.dump(1) + "\n");
  std::cout << "base " << spec.base.name << " (" << spec.base.path << ")\n";
  for (const auto& c : spec.checkpoints) std::cout << "step " << c.step << "\t" << c.name << "\t" << c.path << "\n";
  std::cout << plan.units.size() << " units: " << spec.all_checkpoints().size() << " checkpoints x "
            << plan.units.size() / spec.all_checkpoints().size() << " chunks of up to " << spec.chunk_size << " "
            << (spec.constructs_pairs() ? "prompts" : "pairs") << " (" << plan.n_items << " in all)\n";
  spdlog::info("wrote {}/sweep.json; run the array with `sweep run {}/sweep.json --out {}`", o.dir, o.dir, o.dir);
  return 0;
}

int run_run(const SweepOptions& o) {
  const sweep::Shard shard = shard_of(o.shard, "sweep");
  nlohmann::json resolved;
  const sweep::SweepSpec spec = read_spec(o.spec, &resolved);
  sweep::run_units(spec, resolved, o.dir, shard);
  return 0;
}

int run_status(const SweepOptions& o) {
  const sweep::SweepSpec spec = read_dir_spec(o.dir);
  const sweep::Plan plan = sweep::make_plan(spec);
  const auto status = sweep::sweep_status(spec, plan, o.dir);
  if (o.json) std::cout << sweep::status_json(spec, status).dump(1) << "\n";
  else std::cout << sweep::format_status(spec, status);
  return 0;
}

int run_merge(const SweepOptions& o) {
  const sweep::SweepSpec spec = read_dir_spec(o.dir);
  sweep::MergeOptions mo;
  mo.partial = o.partial;
  if (!o.shard.empty()) mo.shard = sweep::parse_shard(o.shard);
  const sweep::MergeResult r = sweep::merge_sweep(spec, o.dir, mo);
  if (!r.skipped.empty()) {
    std::string s;
    for (const auto& n : r.skipped) s += " " + n;
    spdlog::warn("--partial: left out (units missing or stale):{}", s);
  }
  if (mo.shard) {
    spdlog::info("merge shard {}/{}: {} report(s) under {}/reports ({} kept as current); the summary is written by "
                 "`sweep merge {}` without --shard",
                 mo.shard->index, mo.shard->count, r.reports.size(), o.dir, r.kept, o.dir);
    return 0;
  }
  spdlog::info("{} report(s) under {}/reports ({} kept as current), {} and {}/timeline.txt", r.reports.size(), o.dir,
               r.kept, r.summary_path, o.dir);
  if (!o.html.empty()) {
    // The sweep, then the last checkpoint's report (its circuit graph and tables).
    std::vector<HtmlSection> sections{sweep_section(o.dir, "s1")};
    sections.push_back(report_section(read_json_file(r.reports.back()), r.reports.back(), "s2"));
    write_file_atomically(o.html, html_page(sections, "circuitscope sweep: " + o.dir));
    spdlog::info("wrote {}", o.html);
  }
  std::cout << r.timeline;
  return 0;
}

CommandRegistrar reg_cmd_sweep(
    {"sweep", "Checkpoint sweeps as batch jobs: plan, run shards (SLURM arrays), status, merge into reports and a summary",
     [](CLI::App* sub) {
       auto o = std::make_shared<SweepOptions>();
       sub->require_subcommand(1);
       CLI::App* plan = sub->add_subcommand("plan", "Resolve SWEEP.json (glob, steps, paths) into DIR/sweep.json and list the units");
       plan->add_option("sweep", o->spec, "SWEEP.json (schemas/sweep.schema.json)")->required();
       plan->add_option("--out", o->dir, "sweep folder")->required();
       CLI::App* run = sub->add_subcommand("run", "Run the units of one shard; finished units are skipped, interrupted ones redone");
       run->add_option("sweep", o->spec, "SWEEP.json, or DIR/sweep.json")->required();
       run->add_option("--out", o->dir, "sweep folder")->required();
       run->add_option("--shard", o->shard,
                       "I/N: the I-th of N contiguous blocks of units (default: from SLURM_ARRAY_TASK_ID and "
                       "SLURM_ARRAY_TASK_COUNT, else 1/1)");
       CLI::App* status = sub->add_subcommand("status", "Units done, missing and stale, per checkpoint");
       status->add_option("dir", o->dir, "sweep folder")->required();
       status->add_flag("--json", o->json, "JSON on stdout");
       CLI::App* merge = sub->add_subcommand("merge", "Combine each checkpoint's units into an attribute report; write summary.json and the timeline");
       merge->add_option("dir", o->dir, "sweep folder")->required();
       merge->add_flag("--partial", o->partial, "merge the checkpoints whose units are all done, leave out the rest");
       merge->add_option("--html", o->html, "also write the sweep as an HTML page (as `report` does)");
       merge->add_option("--shard", o->shard,
                         "I/N: merge only the I-th of N blocks of checkpoints and write no summary (a merge array); "
                         "a final merge without --shard keeps their reports and writes the summary");
       sub->footer(
           "A unit is one checkpoint x one chunk of the pairs. Each finished unit is written atomically with its "
           "inputs (checkpoint identity, data hash, options); a rerun skips units whose inputs are unchanged and "
           "recomputes the others, saying why. Units are claimed with a lock, so two processes on one shard share "
           "it. Layout and SWEEP.json: docs/sweeps.md.");
       return [o, plan, run, status, merge] {
         if (plan->parsed()) return run_plan(*o);
         if (run->parsed()) return run_run(*o);
         if (status->parsed()) return run_status(*o);
         if (merge->parsed()) return run_merge(*o);
         return static_cast<int>(ErrorCode::kUsage);
       };
     }});

}  // namespace
}  // namespace circuitscope::app
