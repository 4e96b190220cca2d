// eval summaries (from samples alone), the table, and the files of runs and shards.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/eval.hpp"
#include "circuitscope/report.hpp"

namespace circuitscope {

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw Error(ErrorCode::kInternal, "pass@k with n=" + std::to_string(n) + " c=" + std::to_string(c) + " k=" + std::to_string(k));
  if (n - c < k) return 1.0;
  // C(n-c,k)/C(n,k) = prod_{i=n-c+1}^{n} (1 - k/i), stable for large n
  double prod = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) prod *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - prod;
}

nlohmann::ordered_json eval_sample_json(const EvalSample& s) {
  return {{"condition", s.condition},
          {"id", s.id},
          {"sample", s.sample},
          {"response", s.response},
          {"extracted", s.extracted ? nlohmann::ordered_json(*s.extracted) : nlohmann::ordered_json()},
          {"correct", s.correct},
          {"tokens", s.tokens},
          {"finish_reason", s.finish_reason},
          {"loop", s.loop}};
}

EvalSample eval_sample_from_json(const nlohmann::json& j, const std::string& origin) {
  try {
    EvalSample s;
    s.condition = j.at("condition").get<std::string>();
    s.id = j.at("id").get<std::string>();
    s.sample = j.at("sample").get<int64_t>();
    s.response = j.at("response").get<std::string>();
    if (!j.at("extracted").is_null()) s.extracted = j.at("extracted").get<std::string>();
    s.correct = j.at("correct").get<bool>();
    s.tokens = j.at("tokens").get<int64_t>();
    s.finish_reason = j.at("finish_reason").get<std::string>();
    s.loop = j.at("loop").get<bool>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kFormat, origin + ": not an eval sample (" + std::string(e.what()) + ")");
  }
}

namespace {

struct Interval {
  double mean = 0, lo = 0, hi = 0;
};

// Percentile bootstrap over problems; `index` holds the resampled problem indices (shared by every
// quantity, so paired differences use the same resamples).
Interval bootstrap(const std::vector<double>& per_problem, const std::vector<std::vector<int32_t>>& index) {
  Interval r;
  const size_t P = per_problem.size();
  if (P == 0) return r;
  double sum = 0;
  for (double v : per_problem) sum += v;
  r.mean = sum / static_cast<double>(P);
  std::vector<double> means;
  means.reserve(index.size());
  for (const auto& idx : index) {
    double s = 0;
    for (int32_t i : idx) s += per_problem[i];
    means.push_back(s / static_cast<double>(P));
  }
  std::sort(means.begin(), means.end());
  const auto at = [&](double q) {
    const size_t k = static_cast<size_t>(std::floor(q * static_cast<double>(means.size() - 1) + 0.5));
    return means[std::min(k, means.size() - 1)];
  };
  r.lo = at(0.025);
  r.hi = at(0.975);
  return r;
}

nlohmann::ordered_json interval_json(const Interval& i) { return {{"mean", i.mean}, {"ci95", {i.lo, i.hi}}}; }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct ConditionSamples {
  std::vector<std::vector<const EvalSample*>> by_problem;  // [problem][sample]
};

}  // namespace

nlohmann::ordered_json eval_summary(const nlohmann::ordered_json& settings, const std::vector<std::string>& problem_ids,
                                    const std::vector<EvalSample>& samples) {
  const int64_t n = settings.at("samples").get<int64_t>();
  const std::vector<int64_t> ks = settings.at("ks").get<std::vector<int64_t>>();
  const int64_t B = settings.at("bootstrap_samples").get<int64_t>();
  std::vector<std::string> names;
  for (const auto& c : settings.at("conditions")) names.push_back(c.at("name").get<std::string>());
  const size_t P = problem_ids.size();
  if (P == 0) throw Error(ErrorCode::kInput, "eval summary: no problems");
  std::map<std::string, size_t> problem_index;
  for (size_t i = 0; i < P; ++i) problem_index[problem_ids[i]] = i;
  std::map<std::string, ConditionSamples> by_cond;
  for (const auto& name : names) by_cond[name].by_problem.assign(P, std::vector<const EvalSample*>(n, nullptr));
  for (const auto& s : samples) {
    auto c = by_cond.find(s.condition);
    auto p = problem_index.find(s.id);
    if (c == by_cond.end() || p == problem_index.end() || s.sample < 0 || s.sample >= n)
      throw Error(ErrorCode::kInput, "eval summary: sample " + std::to_string(s.sample) + " of problem '" + s.id +
                                         "' under condition '" + s.condition + "' does not belong to this run");
    auto& slot = c->second.by_problem[p->second][s.sample];
    if (slot) throw Error(ErrorCode::kInput, "eval summary: sample " + std::to_string(s.sample) + " of problem '" + s.id +
                                                 "' under '" + s.condition + "' appears twice");
    slot = &s;
  }
  for (const auto& name : names)
    for (size_t i = 0; i < P; ++i)
      for (int64_t k = 0; k < n; ++k)
        if (!by_cond[name].by_problem[i][k])
          throw Error(ErrorCode::kInput, "eval summary: sample " + std::to_string(k) + " of problem '" + problem_ids[i] +
                                             "' under '" + name + "' is missing");

  // One set of resamples for everything (seeded by the run's seed: the same run gives the same intervals).
  std::mt19937_64 rng(settings.at("sampling").at("seed").get<uint64_t>() ^ 0xB007B007ULL);
  std::vector<std::vector<int32_t>> index(B, std::vector<int32_t>(P));
  for (auto& idx : index)
    for (auto& i : idx) i = static_cast<int32_t>(rng() % P);

  std::map<std::string, std::vector<double>> acc;  // per-problem fraction correct
  for (const auto& name : names) {
    auto& v = acc[name];
    for (size_t i = 0; i < P; ++i) {
      int64_t c = 0;
      for (const auto* s : by_cond[name].by_problem[i]) c += s->correct;
      v.push_back(static_cast<double>(c) / static_cast<double>(n));
    }
  }

  nlohmann::ordered_json out_conds = nlohmann::ordered_json::array();
  const std::string& baseline = names.front();
  for (size_t ci = 0; ci < names.size(); ++ci) {
    const std::string& name = names[ci];
    const auto& cs = by_cond[name];
    nlohmann::ordered_json j;
    j["name"] = name;
    j["mode"] = settings["conditions"][ci]["mode"];
    j["heads"] = settings["conditions"][ci]["heads"].size();
    if (settings["conditions"][ci].contains("control_of")) j["control_of"] = settings["conditions"][ci]["control_of"];
    j["problems"] = P;
    j["samples"] = static_cast<int64_t>(P) * n;
    nlohmann::ordered_json pass = nlohmann::ordered_json::object(), success = nlohmann::ordered_json::object();
    for (int64_t k : ks) {
      double p = 0, sc = 0;
      for (size_t i = 0; i < P; ++i) {
        int64_t c = 0;
        bool any = false;
        for (int64_t s = 0; s < n; ++s) {
          c += cs.by_problem[i][s]->correct;
          if (s < k && cs.by_problem[i][s]->correct) any = true;
        }
        p += pass_at_k(n, c, k);
        sc += any ? 1.0 : 0.0;
      }
      pass[std::to_string(k)] = p / static_cast<double>(P);
      success[std::to_string(k)] = sc / static_cast<double>(P);
    }
    j["pass_at_k"] = pass;
    j["success_at_k"] = success;
    j["accuracy"] = interval_json(bootstrap(acc[name], index));
    if (ci > 0) {
      std::vector<double> d(P);
      for (size_t i = 0; i < P; ++i) d[i] = acc[name][i] - acc[baseline][i];
      j["diff_vs_baseline"] = interval_json(bootstrap(d, index));
    }
    std::vector<double> lens;
    int64_t cut = 0, loops = 0, answered = 0;
    for (const auto& prob : cs.by_problem)
      for (const auto* s : prob) {
        lens.push_back(static_cast<double>(s->tokens));
        cut += s->finish_reason == "length";
        loops += s->loop;
        answered += s->extracted.has_value();
      }
    double total = 0;
    for (double l : lens) total += l;
    const double N = static_cast<double>(lens.size());
    j["length"] = {{"mean", total / N}, {"median", median(lens)}};
    j["cut_fraction"] = static_cast<double>(cut) / N;
    j["loop_fraction"] = static_cast<double>(loops) / N;
    j["answered_fraction"] = static_cast<double>(answered) / N;
    out_conds.push_back(j);
  }

  // Random controls against the condition they mirror: the paired difference to the controls' mean.
  nlohmann::ordered_json controls = nlohmann::ordered_json::array();
  for (const auto& name : names) {
    std::vector<std::string> ctl;
    std::vector<int64_t> shared;  // heads each control has in common with the chosen set
    std::set<std::pair<int64_t, int64_t>> chosen;
    for (const auto& c : settings.at("conditions"))
      if (c.at("name") == name)
        for (const auto& h : c.at("heads")) chosen.insert({h.at("layer").get<int64_t>(), h.at("head").get<int64_t>()});
    for (const auto& c : settings.at("conditions"))
      if (c.value("control_of", "") == name) {
        ctl.push_back(c.at("name").get<std::string>());
        int64_t k = 0;
        for (const auto& h : c.at("heads")) k += chosen.count({h.at("layer").get<int64_t>(), h.at("head").get<int64_t>()});
        shared.push_back(k);
      }
    if (ctl.empty()) continue;
    std::vector<double> d(P, 0.0), ctl_acc;
    for (const auto& r : ctl) {
      double m = 0;
      for (size_t i = 0; i < P; ++i) {
        d[i] -= acc[r][i] / static_cast<double>(ctl.size());
        m += acc[r][i];
      }
      ctl_acc.push_back(m / static_cast<double>(P));
    }
    double mine = 0;
    for (size_t i = 0; i < P; ++i) {
      d[i] += acc[name][i];
      mine += acc[name][i];
    }
    mine /= static_cast<double>(P);
    int64_t at_or_below = 0;
    double ctl_mean = 0;
    for (double a : ctl_acc) {
      at_or_below += a <= mine;
      ctl_mean += a / static_cast<double>(ctl_acc.size());
    }
    controls.push_back({{"condition", name},
                        {"controls", ctl},
                        {"accuracy", mine},
                        {"control_accuracy", ctl_acc},
                        {"control_accuracy_mean", ctl_mean},
                        {"heads", chosen.size()},
                        {"control_shared_heads", shared},
                        {"controls_at_or_below", at_or_below},
                        {"diff_vs_controls", interval_json(bootstrap(d, index))}});
  }

  nlohmann::ordered_json out;
  out["schema_version"] = 1;
  out["tool"] = tool_name();
  out["settings"] = settings;
  out["problems"] = P;
  out["conditions"] = out_conds;
  out["controls"] = controls;
  return out;
}

std::string format_eval_table(const nlohmann::ordered_json& summary) {
  std::ostringstream o;
  const auto& ks = summary.at("settings").at("ks");
  char buf[1024];
  std::snprintf(buf, sizeof buf, "%-22s %5s  %-22s  %-23s", "condition", "heads", "accuracy [95% CI]", "vs baseline [95% CI]");
  o << buf;
  for (const auto& k : ks) o << "  pass@" << k.get<int64_t>();
  for (const auto& k : ks)
    if (k.get<int64_t>() > 1) o << "  succ@" << k.get<int64_t>();
  std::snprintf(buf, sizeof buf, "  %-13s  %5s  %5s\n", "len mean/med", "cut", "loop");
  o << buf;
  for (const auto& c : summary.at("conditions")) {
    const auto& a = c.at("accuracy");
    std::snprintf(buf, sizeof buf, "%-22s %5lld  %.3f [%.3f, %.3f]  ", c.at("name").get<std::string>().c_str(),
                  static_cast<long long>(c.at("heads").get<int64_t>()), a.at("mean").get<double>(),
                  a.at("ci95")[0].get<double>(), a.at("ci95")[1].get<double>());
    o << buf;
    if (c.contains("diff_vs_baseline")) {
      const auto& d = c.at("diff_vs_baseline");
      std::snprintf(buf, sizeof buf, "%+.3f [%+.3f, %+.3f]", d.at("mean").get<double>(), d.at("ci95")[0].get<double>(),
                    d.at("ci95")[1].get<double>());
    } else {
      std::snprintf(buf, sizeof buf, "%-23s", "-");
    }
    o << buf;
    for (const auto& k : ks) {
      std::snprintf(buf, sizeof buf, "  %*.3f", static_cast<int>(5 + std::to_string(k.get<int64_t>()).size()),
                    c.at("pass_at_k").at(std::to_string(k.get<int64_t>())).get<double>());
      o << buf;
    }
    for (const auto& k : ks)
      if (k.get<int64_t>() > 1) {
        std::snprintf(buf, sizeof buf, "  %*.3f", static_cast<int>(5 + std::to_string(k.get<int64_t>()).size()),
                      c.at("success_at_k").at(std::to_string(k.get<int64_t>())).get<double>());
        o << buf;
      }
    std::snprintf(buf, sizeof buf, "  %6.1f/%-6.1f  %5.3f  %5.3f\n", c.at("length").at("mean").get<double>(),
                  c.at("length").at("median").get<double>(), c.at("cut_fraction").get<double>(),
                  c.at("loop_fraction").get<double>());
    o << buf;
  }
  for (const auto& c : summary.at("controls")) {
    const auto& d = c.at("diff_vs_controls");
    const size_t K = c.at("controls").size();
    double lo = 1, hi = 0;
    for (const auto& a : c.at("control_accuracy")) lo = std::min(lo, a.get<double>()), hi = std::max(hi, a.get<double>());
    double shared = 0;
    for (const auto& x : c.at("control_shared_heads")) shared += x.get<double>() / static_cast<double>(K);
    std::snprintf(buf, sizeof buf,
                  "\n%s: accuracy %.3f; %zu random head set(s) of the same size and layers (sharing %.1f of its %lld heads "
                  "on average): mean %.3f (range %.3f-%.3f); %lld of %zu at or below it.\n  paired difference to the random "
                  "sets' mean: %+.3f [%+.3f, %+.3f] (95%% CI, bootstrap over problems)",
                  c.at("condition").get<std::string>().c_str(), c.at("accuracy").get<double>(), K, shared,
                  static_cast<long long>(c.at("heads").get<int64_t>()), c.at("control_accuracy_mean").get<double>(), lo, hi,
                  static_cast<long long>(c.at("controls_at_or_below").get<int64_t>()), K, d.at("mean").get<double>(),
                  d.at("ci95")[0].get<double>(), d.at("ci95")[1].get<double>());
    o << buf;
    const double dlo = d.at("ci95")[0].get<double>(), dhi = d.at("ci95")[1].get<double>();
    o << (dhi < 0   ? ": the chosen heads hurt more than random heads of the same layers.\n"
          : dlo > 0 ? ": the chosen heads hurt less than random heads of the same layers.\n"
                    : ": no difference from random heads at this sample size (the interval holds 0).\n");
  }
  return o.str();
}

namespace {
std::string samples_text(const std::vector<EvalSample>& samples) {
  std::string out;
  for (const auto& s : samples) out += eval_sample_json(s).dump() + "\n";
  return out;
}
std::string shard_stem(const std::string& dir, int64_t i, int64_t n) {
  return (std::filesystem::path(dir) / "shards" / (std::to_string(i) + "-of-" + std::to_string(n))).string();
}
std::vector<EvalSample> read_samples(const std::string& path) {
  std::vector<EvalSample> out;
  std::istringstream in(read_text_file(path));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    nlohmann::json j;
    check_json_depth(line, path + ":" + std::to_string(n));
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kFormat, path + ":" + std::to_string(n) + ": not valid JSON (" + e.what() + ")");
    }
    out.push_back(eval_sample_from_json(j, path + ":" + std::to_string(n)));
  }
  return out;
}
}  // namespace

void write_eval_run(const std::string& dir, const EvalRun& run, const nlohmann::ordered_json& summary) {
  std::filesystem::create_directories(dir);
  write_file_atomically((std::filesystem::path(dir) / "samples.jsonl").string(), samples_text(run.samples));
  write_file_atomically((std::filesystem::path(dir) / "summary.json").string(), summary.dump(2) + "\n");
}

void write_eval_shard(const std::string& dir, const EvalRun& run, int64_t i, int64_t n) {
  std::filesystem::create_directories(std::filesystem::path(dir) / "shards");
  const std::string stem = shard_stem(dir, i, n);
  // Samples first: a shard counts as done once its .json exists.
  write_file_atomically(stem + ".samples.jsonl", samples_text(run.samples));
  const nlohmann::ordered_json meta = {
      {"shard", {{"index", i}, {"count", n}}}, {"problem_ids", run.problem_ids}, {"settings", run.settings}};
  write_file_atomically(stem + ".json", meta.dump(2) + "\n");
}

EvalRun merge_eval_shards(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path shards = fs::path(dir) / "shards";
  if (!fs::is_directory(shards))
    throw Error(ErrorCode::kIo, "'" + shards.string() + "' does not exist: run eval with --shard I/N --out " + dir + " first");
  int64_t count = -1;
  for (const auto& e : fs::directory_iterator(shards)) {
    const std::string f = e.path().filename().string();
    static const std::regex kName("([0-9]{1,6})-of-([0-9]{1,6})\\.json");
    std::smatch m;
    if (!std::regex_match(f, m, kName)) continue;  // samples files, editor leftovers
    const int64_t c = std::stoll(m[2].str());
    if (count >= 0 && c != count)
      throw Error(ErrorCode::kInput, "'" + shards.string() + "' holds shards of " + std::to_string(count) + " and of " +
                                         std::to_string(c) + " parts; remove the stale ones");
    count = c;
  }
  if (count < 1) throw Error(ErrorCode::kInput, "'" + shards.string() + "' holds no finished shard");
  EvalRun run;
  std::vector<std::string> missing;
  std::vector<std::vector<EvalSample>> parts;
  for (int64_t i = 1; i <= count; ++i) {
    const std::string stem = shard_stem(dir, i, count);
    if (!fs::exists(stem + ".json")) {
      missing.push_back(std::to_string(i));
      continue;
    }
    try {
      const std::string meta_text = read_text_file(stem + ".json");
      check_json_depth(meta_text, stem + ".json");
      const nlohmann::ordered_json meta = nlohmann::ordered_json::parse(meta_text);
      if (run.settings.is_null()) run.settings = meta.at("settings");
      else if (meta.at("settings") != run.settings)
        throw Error(ErrorCode::kInput, "shard " + stem + ".json was run with other settings than shard 1 (model, "
                                       "benchmark, prompts, sampling or conditions differ); rerun it");
      for (const auto& id : meta.at("problem_ids")) run.problem_ids.push_back(id.get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kFormat, stem + ".json: not an eval shard (" + std::string(e.what()) + "); rerun that shard");
    }
    parts.push_back(read_samples(stem + ".samples.jsonl"));
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw Error(ErrorCode::kInput, std::to_string(missing.size()) + " of " + std::to_string(count) + " shards are not done (" +
                                       list + "); run eval --shard I/" + std::to_string(count) + " for them");
  }
  // The order of a whole run: condition, then problem, then sample.
  for (const auto& c : run.settings.at("conditions")) {
    const std::string name = c.at("name").get<std::string>();
    for (const auto& part : parts)
      for (const auto& s : part)
        if (s.condition == name) run.samples.push_back(s);
  }
  return run;
}

}  // namespace circuitscope
