// SWEEP.json: reading, resolving and validating a sweep's description.
#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include <spdlog/spdlog.h>

#include "circuitscope/error.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/sweep.hpp"

namespace circuitscope::sweep {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string resolve_path(const std::string& p, const std::string& base_dir) {
  if (p.empty()) return p;
  const fs::path path(p);
  fs::path r = (path.is_absolute() ? path : fs::path(base_dir) / path).lexically_normal();
  if (r.has_parent_path() && r.filename().empty()) r = r.parent_path();  // "checkpoint-100/"
  return r.string();
}

[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& what) {
  throw Error(ErrorCode::kFormat, source + ": '" + key + "' " + what);
}

std::string string_at(const json& j, const std::string& key, const std::string& source, const std::string& where) {
  if (!j.is_string() || j.get<std::string>().empty()) bad(source, where + key, "must be a non-empty string; found " + j.dump());
  return j.get<std::string>();
}

void check_keys(const json& obj, const std::set<std::string>& allowed, const std::string& source,
                const std::string& where) {
  for (const auto& [k, v] : obj.items())
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw Error(ErrorCode::kFormat, source + ": unknown key '" + where + k + "'; expected one of " + list);
    }
}

// A checkpoint entry: "path" or {"path", "name", "step"}.
Checkpoint read_checkpoint(const json& j, const std::string& source, const std::string& where,
                           const std::string& base_dir) {
  Checkpoint c;
  c.step = -1;  // read from the name unless given
  if (j.is_string()) {
    c.path = resolve_path(string_at(j, "", source, where), base_dir);
  } else if (j.is_object()) {
    check_keys(j, {"path", "name", "step"}, source, where + ".");
    if (!j.contains("path")) bad(source, where, "needs a \"path\"");
    c.path = resolve_path(string_at(j["path"], "path", source, where + "."), base_dir);
    if (j.contains("name")) c.name = string_at(j["name"], "name", source, where + ".");
    if (j.contains("step")) {
      if (!j["step"].is_number_integer() || j["step"].get<int64_t>() < 0)
        bad(source, where + ".step", "must be a non-negative integer; found " + j["step"].dump());
      c.step = j["step"].get<int64_t>();
    }
  } else {
    bad(source, where, "must be a folder path or {\"path\", \"name\", \"step\"}; found " + j.dump());
  }
  if (!fs::is_directory(c.path))
    throw Error(ErrorCode::kInput, source + ": '" + where + "': checkpoint folder '" + c.path + "' does not exist");
  if (c.name.empty()) c.name = fs::path(c.path).filename().string();
  if (c.name.empty() || c.name == "." || c.name == ".." || c.name.find('/') != std::string::npos)
    bad(source, where + ".name", "must be usable as a file name (it names reports/NAME.json); found '" + c.name + "'");
  return c;
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), GLOB_ONLYDIR | GLOB_MARK, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::string p = g.gl_pathv[i];
      if (!p.empty() && p.back() == '/') p.pop_back();  // GLOB_MARK: directories end in '/'
      if (fs::is_directory(p)) out.push_back(p);
    }
  ::globfree(&g);
  return out;
}

bool is_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

}  // namespace

std::optional<int64_t> step_from_name(const std::string& name) {
  static const std::regex re("(?:^|[^0-9A-Za-z])checkpoint-([0-9]+)$");
  std::smatch m;
  if (!std::regex_search(name, m, re)) return std::nullopt;
  try {
    return std::stoll(m[1].str());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<const Checkpoint*> SweepSpec::all_checkpoints() const {
  std::vector<const Checkpoint*> out{&base};
  for (const Checkpoint& c : checkpoints) out.push_back(&c);
  return out;
}

SweepSpec parse_sweep_spec_impl(const json& j, const std::string& source, const std::string& base_dir,
                           const AttributeParser& parse_attribute, json* resolved) {
  if (!j.is_object()) throw Error(ErrorCode::kFormat, source + ": a sweep must be a JSON object");
  check_keys(j, {"schema_version", "base", "checkpoints", "data", "chunk_size", "attribute", "log"}, source, "");
  if (j.contains("schema_version") && j["schema_version"] != kSweepSpecVersion)
    bad(source, "schema_version", "must be " + std::to_string(kSweepSpecVersion) + "; found " + j["schema_version"].dump());
  for (const char* k : {"base", "checkpoints", "data", "attribute"})
    if (!j.contains(k)) throw Error(ErrorCode::kFormat, source + ": missing key '" + std::string(k) + "'");

  SweepSpec s;
  s.source = source;
  s.base = read_checkpoint(j["base"], source, "base", base_dir);
  s.base.base = true;
  if (!j["base"].is_object() || !j["base"].contains("name")) s.base.name = "base";
  s.base.step = 0;

  // The series: a glob, or a list of folders (each possibly a glob) and entries.
  const json& cj = j["checkpoints"];
  std::vector<json> entries;
  if (cj.is_string()) entries.push_back(cj);
  else if (cj.is_array()) entries.assign(cj.begin(), cj.end());
  else bad(source, "checkpoints", "must be a glob or a list; found " + cj.dump());
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string where = "checkpoints[" + std::to_string(i) + "]";
    if (entries[i].is_string() && is_glob(entries[i].get<std::string>())) {
      const std::string pattern = resolve_path(entries[i].get<std::string>(), base_dir);
      const auto dirs = expand_glob(pattern);
      if (dirs.empty())
        throw Error(ErrorCode::kInput, source + ": '" + (cj.is_string() ? std::string("checkpoints") : where) +
                                           "': no folder matches '" + pattern + "'");
      int64_t matched = 0;
      for (const auto& d : dirs) {
        // A glob also matches folders such as checkpoint-100-tmp: only checkpoint-N names are taken.
        if (!step_from_name(fs::path(d).filename().string())) {
          spdlog::warn("{}: '{}' matches '{}', whose name has no step (checkpoint-N); left out", source, pattern, d);
          continue;
        }
        s.checkpoints.push_back(read_checkpoint(json(d), source, where, base_dir));
        ++matched;
      }
      if (matched == 0)
        throw Error(ErrorCode::kInput, source + ": '" + (cj.is_string() ? std::string("checkpoints") : where) +
                                           "': no checkpoint-N folder matches '" + pattern + "'");
    } else {
      s.checkpoints.push_back(read_checkpoint(entries[i], source, where, base_dir));
    }
  }
  if (s.checkpoints.empty()) bad(source, "checkpoints", "names no checkpoint");
  for (Checkpoint& c : s.checkpoints) {
    if (c.step >= 0) continue;
    const auto st = step_from_name(fs::path(c.path).filename().string());
    if (!st)
      throw Error(ErrorCode::kInput, source + ": checkpoint '" + c.path +
                                         "': no step in its name (expected checkpoint-N); give {\"path\", \"step\"}");
    c.step = *st;
  }
  std::stable_sort(s.checkpoints.begin(), s.checkpoints.end(),
                   [](const Checkpoint& a, const Checkpoint& b) { return a.step < b.step; });
  std::set<std::string> names{s.base.name};
  std::set<std::string> paths{fs::weakly_canonical(s.base.path).string()};
  std::set<int64_t> steps;
  for (const Checkpoint& c : s.checkpoints) {
    if (!paths.insert(fs::weakly_canonical(c.path).string()).second)
      throw Error(ErrorCode::kInput, source + ": checkpoint '" + c.path + "' is listed twice (or is the base)");
    if (!names.insert(c.name).second)
      throw Error(ErrorCode::kInput, source + ": two checkpoints are named '" + c.name + "' (reports/NAME.json must be "
                                         "unique); give each a \"name\"");
    if (!steps.insert(c.step).second)
      throw Error(ErrorCode::kInput, source + ": two checkpoints have step " + std::to_string(c.step));
  }

  // Data.
  const json& dj = j["data"];
  if (!dj.is_object()) bad(source, "data", "must be {\"pairs\": FILE} or {\"prompts\": FILE, \"generation\": {...}}");
  check_keys(dj, {"pairs", "prompts", "generation"}, source, "data.");
  if (dj.contains("pairs") == dj.contains("prompts"))
    bad(source, "data", "needs exactly one of \"pairs\" (a fixed pairs file) and \"prompts\" (pairs built per checkpoint)");
  if (dj.contains("generation") && !dj.contains("prompts"))
    bad(source, "data.generation", "applies to \"prompts\" only");
  if (dj.contains("pairs")) s.pairs = resolve_path(string_at(dj["pairs"], "pairs", source, "data."), base_dir);
  json gen_resolved = json::object();
  if (dj.contains("prompts")) {
    s.prompts = resolve_path(string_at(dj["prompts"], "prompts", source, "data."), base_dir);
    const json g = dj.value("generation", json::object());
    if (!g.is_object()) bad(source, "data.generation", "must be an object");
    check_keys(g, {"think", "system", "max_new_tokens", "greedy", "temperature", "top_p", "top_k", "seed",
                   "batch_size", "keep_identical"},
               source, "data.generation.");
    OpeningOptions& o = s.generation.generation;
    try {
      const std::string think = g.value("think", std::string("on"));
      if (think != "on" && think != "off") bad(source, "data.generation.think", "must be on or off; found " + think);
      o.think = think == "on";
      o.system = g.value("system", std::string());
      o.max_new_tokens = g.value("max_new_tokens", int64_t{32});
      const double temperature = g.value("temperature", 0.0);
      const double top_p = g.value("top_p", 1.0);
      const int64_t top_k = g.value("top_k", int64_t{0});
      const bool greedy = g.value("greedy", false);
      const bool sampling = !greedy && (temperature > 0 || top_p < 1.0 || top_k > 0);
      if (greedy && (temperature > 0 || top_p < 1.0 || top_k > 0))
        bad(source, "data.generation.greedy", "cannot be combined with temperature/top_p/top_k");
      if (o.max_new_tokens < 1 || temperature < 0 || top_p <= 0 || top_p > 1 || top_k < 0)
        bad(source, "data.generation", "has a value out of range: " + g.dump());
      o.sampling.greedy = !sampling;
      o.sampling.temperature = temperature > 0 ? temperature : 1.0;
      o.sampling.top_p = top_p;
      o.sampling.top_k = top_k;
      if (g.contains("seed") && !g["seed"].is_number_unsigned())
        bad(source, "data.generation.seed", "must be a non-negative integer; found " + g["seed"].dump());
      o.sampling.seed = g.value("seed", uint64_t{0});
      o.batch_size = g.value("batch_size", int64_t{8});
      if (o.batch_size < 1) bad(source, "data.generation.batch_size", "must be positive");
      s.generation.keep_identical = g.value("keep_identical", false);
      gen_resolved = {{"think", think}, {"system", o.system}, {"max_new_tokens", o.max_new_tokens},
                      {"greedy", !sampling}, {"temperature", temperature}, {"top_p", top_p}, {"top_k", top_k},
                      {"seed", o.sampling.seed}, {"batch_size", o.batch_size},
                      {"keep_identical", s.generation.keep_identical}};
    } catch (const json::exception& e) {
      bad(source, "data.generation", std::string("has a value of the wrong type: ") + e.what());
    }
  }
  const std::string data_file = s.pairs.empty() ? s.prompts : s.pairs;
  if (!fs::is_regular_file(data_file))
    throw Error(ErrorCode::kInput, source + ": data file '" + data_file + "' does not exist");

  if (j.contains("chunk_size")) {
    if (!j["chunk_size"].is_number_integer() || j["chunk_size"].get<int64_t>() < 1)
      bad(source, "chunk_size", "must be a positive integer; found " + j["chunk_size"].dump());
    s.chunk_size = j["chunk_size"].get<int64_t>();
  }

  // The attribute options: a config file, or an object whose keys win over its "config" file's.
  const json& aj = j["attribute"];
  json options = json::object();
  std::string config_path;
  if (aj.is_string()) {
    config_path = resolve_path(aj.get<std::string>(), base_dir);
  } else if (aj.is_object()) {
    if (aj.contains("config")) config_path = resolve_path(string_at(aj["config"], "config", source, "attribute."), base_dir);
  } else {
    bad(source, "attribute", "must be a config file or an object of attribute options; found " + aj.dump());
  }
  if (!config_path.empty()) {
    const json c = read_json_file(config_path, /*allow_comments=*/true);
    if (!c.is_object()) throw Error(ErrorCode::kFormat, config_path + ": a config must be a JSON object of option values");
    options = c;
  }
  if (aj.is_object())
    for (const auto& [k, v] : aj.items())
      if (k != "config") options[k] = v;
  for (const auto& [k, v] : options.items()) {
    std::string key = k;
    std::replace(key.begin(), key.end(), '-', '_');
    if (key == "model_dir" || key == "model" || key == "data" || key == "out" || key == "config")
      throw Error(ErrorCode::kUsage, source + ": attribute option '" + k + "'" +
                                         (aj.is_object() && aj.contains(k) ? "" : " (from " + config_path + ")") +
                                         " is set by the sweep (checkpoints, data, DIR); remove it");
  }
  if (options.contains("tokenizer") && options["tokenizer"].is_string())
    options["tokenizer"] = resolve_path(options["tokenizer"].get<std::string>(), base_dir);
  s.attribute = parse_attribute(options, source + ": attribute");
  s.generation.dtype = s.attribute.dtype;
  s.generation.device = s.attribute.device;
  if (s.attribute.spec.selection.kind == SelectionKind::kNone)
    throw Error(ErrorCode::kUsage, source + ": attribute: a sweep compares circuits, so it needs a circuit selection "
                                            "(e.g. \"selection\": \"thinking-sparks\", or \"top_n\" with \"simplify\")");
  if (s.constructs_pairs() && s.attribute.spec.metric != MetricKind::kSeqLogprob &&
      s.attribute.spec.metric != MetricKind::kSeqKl)
    throw Error(ErrorCode::kUsage, source + ": data.prompts builds continuation pairs (each model's opening): the "
                                            "attribute metric must be seq-logprob or seq-kl; found " +
                                            std::string(metric_name(s.attribute.spec.metric)));

  // The training log.
  json log_resolved;
  if (j.contains("log")) {
    const json& lj = j["log"];
    if (lj.is_string()) {
      s.log_path = resolve_path(lj.get<std::string>(), base_dir);
    } else if (lj.is_object()) {
      check_keys(lj, {"path", "key"}, source, "log.");
      if (!lj.contains("path")) bad(source, "log", "needs a \"path\"");
      s.log_path = resolve_path(string_at(lj["path"], "path", source, "log."), base_dir);
      if (lj.contains("key")) s.log_key = string_at(lj["key"], "key", source, "log.");
    } else {
      bad(source, "log", "must be a file or {\"path\", \"key\"}; found " + lj.dump());
    }
    if (!fs::is_regular_file(s.log_path))
      throw Error(ErrorCode::kInput, source + ": training log '" + s.log_path + "' does not exist");
    log_resolved = {{"path", s.log_path}};
    if (!s.log_key.empty()) log_resolved["key"] = s.log_key;
  }

  if (resolved) {
    auto ck = [](const Checkpoint& c) { return json{{"path", c.path}, {"name", c.name}, {"step", c.step}}; };
    json r;
    r["schema_version"] = kSweepSpecVersion;
    r["base"] = {{"path", s.base.path}, {"name", s.base.name}};
    r["checkpoints"] = json::array();
    for (const Checkpoint& c : s.checkpoints) r["checkpoints"].push_back(ck(c));
    r["data"] = s.pairs.empty() ? json{{"prompts", s.prompts}, {"generation", gen_resolved}} : json{{"pairs", s.pairs}};
    r["chunk_size"] = s.chunk_size;
    r["attribute"] = options;
    if (!log_resolved.is_null()) r["log"] = log_resolved;
    *resolved = r;
  }
  return s;
}

// Paths in a spec come from its author: a name the file system refuses (too long, bad bytes) is an
// input error naming the spec, not a std::filesystem exception.
SweepSpec parse_sweep_spec(const json& j, const std::string& source, const std::string& base_dir,
                           const AttributeParser& parse_attribute, json* resolved) {
  try {
    return parse_sweep_spec_impl(j, source, base_dir, parse_attribute, resolved);
  } catch (const std::filesystem::filesystem_error& e) {
    throw Error(ErrorCode::kInput, source + ": " + e.what());
  }
}

SweepSpec read_sweep_spec(const std::string& path, const AttributeParser& parse_attribute, json* resolved) {
  const json j = read_json_file(path, /*allow_comments=*/true);
  const std::string dir = fs::absolute(fs::path(path)).parent_path().string();
  return parse_sweep_spec(j, path, dir, parse_attribute, resolved);
}

}  // namespace circuitscope::sweep
