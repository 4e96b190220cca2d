#include "circuit_options.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/patching.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"

namespace circuitscope::app {

void add_circuit_options(CLI::App* sub, CircuitOptions& o) {
  sub->add_option("--top-n", o.top_n, "circuit: the N edges with the largest |score|, then pruned");
  sub->add_option("--threshold", o.threshold, "circuit: every edge with |score| >= TAU, then pruned");
  sub->add_option("--greedy", o.greedy,
                  "circuit: N edges grown backwards from logits, each step the best-scoring edge into a node already "
                  "in the circuit (EAP-IG's greedy), then pruned");
  sub->add_option("--simplify", o.simplify,
                  "circuit (with --top-n N): of the top N edges keep those with |score| >= TAU, then prune");
  sub->add_option("--selection", o.selection,
                  "preset: thinking-sparks = --top-n 5000 --simplify 0.1 (explicit --top-n/--simplify override)");
  sub->add_flag("--signed", o.signed_scores, "select by score instead of |score|");
  sub->add_option("--level", o.level,
                  "edge | node: with node, --top-n/--threshold pick heads and MLPs by node score (the sum of their "
                  "outgoing edge scores) and the circuit is every edge between picked nodes; nodes get scores")
      ->capture_default_str();
  sub->add_option("--intervention", o.intervention,
                  "faithfulness: edges outside the circuit carry patch (corrupted values), zero, mean (over the "
                  "dataset) or mean-positional (per position over the dataset)")
      ->capture_default_str();
  sub->add_option("--mean-source", o.mean_source, "inputs the means are taken over: clean | corrupted")
      ->capture_default_str();
  sub->add_option("--sizes", o.sizes,
                  "faithfulness curve: the top-n circuit (then pruned) for each size, e.g. 100,300,1000");
  sub->add_option("--sweep", o.sweep, "deprecated spelling of --sizes");
}

Selection make_selection(const CircuitOptions& in) {
  CircuitOptions o = in;
  auto set_n = [](int64_t v) { return v != kUnsetCount; };
  auto set_v = [](double v) { return !std::isnan(v); };
  if (!o.selection.empty()) {
    if (o.selection != "thinking-sparks")
      throw Error(ErrorCode::kUsage, "--selection '" + o.selection + "': expected thinking-sparks");
    if (!set_n(o.top_n)) o.top_n = 5000;
    if (!set_v(o.simplify)) o.simplify = 0.1;
  }
  for (auto [v, name] : {std::pair{o.top_n, "--top-n"}, std::pair{o.greedy, "--greedy"}})
    if (set_n(v) && v < 0) throw Error(ErrorCode::kUsage, std::string(name) + " must be >= 0; found " + std::to_string(v));
  Selection s;
  s.absolute = !o.signed_scores;
  if (o.level != "edge" && o.level != "node")
    throw Error(ErrorCode::kUsage, "--level '" + o.level + "': expected edge or node");
  s.node_level = o.level == "node";
  if (s.node_level && (set_n(o.greedy) || set_v(o.simplify)))
    throw Error(ErrorCode::kUsage, "--level node works with --top-n or --threshold, not --greedy or --simplify");
  const int given = set_n(o.top_n) + set_v(o.threshold) + set_n(o.greedy);
  if (given > 1) throw Error(ErrorCode::kUsage, "--top-n, --threshold and --greedy exclude each other");
  if (set_v(o.simplify)) {
    if (!set_n(o.top_n)) throw Error(ErrorCode::kUsage, "--simplify TAU needs --top-n N (the edges it thins out)");
    s.kind = SelectionKind::kSimplify;
    s.n = o.top_n;
    s.tau = o.simplify;
  } else if (set_n(o.top_n)) {
    s.kind = SelectionKind::kTopN;
    s.n = o.top_n;
  } else if (set_v(o.threshold)) {
    s.kind = SelectionKind::kThreshold;
    s.tau = o.threshold;
  } else if (set_n(o.greedy)) {
    s.kind = SelectionKind::kGreedy;
    s.n = o.greedy;
  }
  return s;
}

FaithfulnessSpec make_faithfulness_spec(const CircuitOptions& o) {
  FaithfulnessSpec f;
  f.intervention = parse_intervention(o.intervention);
  f.mean_source = parse_mean_source(o.mean_source);
  f.absolute = !o.signed_scores;
  std::string option = "--sizes", sizes = o.sizes;
  if (!o.sweep.empty()) {
    if (!o.sizes.empty()) throw Error(ErrorCode::kUsage, "--sweep and --sizes are one option: give --sizes only");
    spdlog::warn("--sweep is deprecated and will be removed: use --sizes (the report key is faithfulness.sizes)");
    option = "--sweep";
    sizes = o.sweep;
  }
  if (!sizes.empty()) f.sizes = parse_int_list(sizes, option, 0);
  return f;
}

void add_config_option(CLI::App* sub, std::string& path) {
  sub->add_option("--config", path,
                  "JSON file (comments allowed) with option values, keyed by long option name (top_n or top-n); "
                  "options on the command line win");
}

void apply_config(CLI::App* sub, const std::string& path) {
  if (path.empty()) return;
  apply_config_json(sub, read_json_file(path, /*allow_comments=*/true), path);
}

void apply_config_json(CLI::App* sub, const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) throw Error(ErrorCode::kFormat, path + ": a config must be a JSON object of option values");
  for (const auto& [key, value] : j.items()) {
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    CLI::Option* opt = nullptr;
    if (name == "model-dir" || name == "model") {
      opt = sub->get_option_no_throw("model_dir");
    } else if (name != "config" && name != "help") {
      opt = sub->get_option_no_throw("--" + name);
      if (!opt) {  // a positional argument (e.g. evaluate's report)
        CLI::Option* p = sub->get_option_no_throw(key);
        if (p && p->get_positional()) opt = p;
      }
    }
    if (!opt) throw Error(ErrorCode::kUsage, path + ": unknown key '" + key + "' (not an option of '" + sub->get_name() + "')");
    if (opt->count() > 0) continue;  // the command line wins
    std::vector<std::string> vals;
    auto one = [&vals, &path, key = std::string(key)](const nlohmann::json& v) {  // clang < 16: no capture of a binding
      if (v.is_string()) vals.push_back(v.get<std::string>());
      else if (v.is_boolean()) vals.push_back(v.get<bool>() ? "true" : "false");
      else if (v.is_number()) vals.push_back(v.dump());
      else throw Error(ErrorCode::kFormat, path + ": key '" + key + "' must be a string, number or boolean; found " + v.dump());
    };
    if (value.is_array()) {
      std::string joined;  // lists (e.g. sizes) as the comma-separated form of the command line
      for (const auto& v : value) {
        one(v);
        joined += (joined.empty() ? "" : ",") + vals.back();
      }
      vals = {joined};
    } else {
      one(value);
    }
    if (opt->get_expected_min() == 0 && vals[0] != "true" && vals[0] != "false")
      throw Error(ErrorCode::kFormat, path + ": key '" + key + "' is a flag: expected true or false; found " + value.dump());
    if (opt->get_expected_min() == 0 && vals[0] == "false") continue;
    try {
      for (const auto& v : vals) opt->add_result(v);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      throw Error(ErrorCode::kUsage, path + ": key '" + key + "': " + e.what());
    }
  }
}

void require_value(const std::string& value, const std::string& what) {
  if (value.empty()) throw Error(ErrorCode::kUsage, what + " is required (on the command line or in --config)");
}

}  // namespace circuitscope::app
