// summary.json: the heads of a sweep's circuits over training, and the text timeline.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/sweep.hpp"
#include "sweep/sweep_files.hpp"

namespace circuitscope::sweep {

using nlohmann::json;
using nlohmann::ordered_json;

// ---- training logs ----

TrainingLog read_training_log(const std::string& path, const std::string& key) {
  std::vector<json> entries;
  const std::string text = read_text_file(path);
  const bool jsonl = std::filesystem::path(path).extension() == ".jsonl";
  try {
    if (jsonl) {
      std::istringstream in(text);
      std::string line;
      int64_t n = 0;
      while (std::getline(in, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
          check_json_depth(line, path + ":" + std::to_string(n));
          entries.push_back(json::parse(line));
        } catch (const json::exception& e) {
          throw Error(ErrorCode::kFormat, path + ":" + std::to_string(n) + ": not JSON: " + e.what());
        }
      }
    } else {
      check_json_depth(text, path);
      const json j = json::parse(text);
      if (!j.is_object() || !j.contains("log_history") || !j["log_history"].is_array())
        throw Error(ErrorCode::kFormat, path + ": expected a trainer_state.json with a 'log_history' list (or a .jsonl "
                                               "log of objects with a \"step\")");
      entries.assign(j["log_history"].begin(), j["log_history"].end());
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kFormat, path + ": not JSON: " + e.what());
  }
  TrainingLog log;
  log.path = path;
  log.key = key;
  if (log.key.empty()) {
    for (const char* k : {"reward", "mean_reward", "accuracy", "loss"}) {
      for (const json& e : entries)
        if (e.is_object() && e.contains(k) && e[k].is_number()) {
          log.key = k;
          break;
        }
      if (!log.key.empty()) break;
    }
    if (log.key.empty())
      throw Error(ErrorCode::kInput, path + ": no entry has a numeric reward, mean_reward, accuracy or loss; give "
                                            "log.key");
  }
  for (const json& e : entries) {
    if (!e.is_object() || !e.contains("step") || !e["step"].is_number_integer()) continue;
    if (!e.contains(log.key) || !e[log.key].is_number()) continue;
    log.points.emplace_back(e["step"].get<int64_t>(), e[log.key].get<double>());
  }
  if (log.points.empty())
    throw Error(ErrorCode::kInput, path + ": no entry has both an integer \"step\" and a numeric \"" + log.key + "\"");
  std::stable_sort(log.points.begin(), log.points.end(), [](auto& a, auto& b) { return a.first < b.first; });
  return log;
}

std::optional<double> log_value_at(const TrainingLog& log, int64_t previous_step, int64_t step) {
  double sum = 0.0;
  int64_t n = 0;
  std::optional<double> last_before;
  for (const auto& [s, v] : log.points) {
    if (s > previous_step && s <= step) {
      sum += v;
      ++n;
    }
    if (s <= step) last_before = v;
  }
  if (n > 0) return sum / static_cast<double>(n);
  return last_before;
}

// ---- correlations ----

double pearson_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  if (n != y.size() || n < 2) return std::numeric_limits<double>::quiet_NaN();
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx == 0 || syy == 0) return std::numeric_limits<double>::quiet_NaN();
  return sxy / std::sqrt(sxx * syy);
}

namespace {
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < v.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;  // ties share their mean rank
    for (size_t k = i; k <= j; ++k) r[order[k]] = mean_rank;
    i = j + 1;
  }
  return r;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string head_label(int64_t layer, int64_t head) {
  return "a" + std::to_string(layer) + ".h" + std::to_string(head);
}
}  // namespace

double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size()) return std::numeric_limits<double>::quiet_NaN();
  return pearson_correlation(ranks(x), ranks(y));
}

// ---- the summary ----

ordered_json sweep_summary(const StepHeads& base, const std::vector<StepHeads>& steps,
                           const std::optional<TrainingLog>& log, const std::vector<std::string>& skipped) {
  const int64_t L = base.heads.n_layers, H = base.heads.n_heads, n_heads = L * H;
  for (const StepHeads& s : steps)
    if (s.heads.n_layers != L || s.heads.n_heads != H)
      throw Error(ErrorCode::kInput, s.heads.path + " has " + std::to_string(s.heads.n_layers) + " layers x " +
                                         std::to_string(s.heads.n_heads) + " heads; the base report " + base.heads.path +
                                         " has " + std::to_string(L) + " x " + std::to_string(H));
  const size_t S = steps.size();
  auto count = [](const std::vector<bool>& v) { return static_cast<int64_t>(std::count(v.begin(), v.end(), true)); };

  // First emergence: the first step at which a head is in the circuit and not in the base's.
  std::vector<std::optional<size_t>> first(n_heads);
  for (int64_t h = 0; h < n_heads; ++h)
    for (size_t s = 0; s < S && !base.heads.in_circuit[h]; ++s)
      if (steps[s].heads.in_circuit[h]) {
        first[h] = s;
        break;
      }

  ordered_json j;
  j["schema_version"] = kSummaryVersion;
  j["tool"] = tool_name();
  j["base"] = {{"name", base.name}, {"path", base.heads.model_path}, {"report", base.heads.path},
               {"circuit_heads", count(base.heads.in_circuit)}};
  j["log"] = log ? ordered_json{{"path", log->path},
                                {"key", log->key},
                                {"value", "mean of the logged values at steps in (previous checkpoint's step, step]; "
                                          "the last earlier value when there is none"}}
                 : ordered_json(nullptr);
  j["n_layers"] = L;
  j["n_heads"] = H;
  j["skipped"] = skipped;  // checkpoints a partial merge left out: frequency counts the steps below only

  ordered_json js = ordered_json::array();
  std::vector<int64_t> emergent_per_step(S, 0);
  for (size_t s = 0; s < S; ++s) {
    const auto& in = steps[s].heads.in_circuit;
    int64_t emergent = 0, fresh = 0, lost = 0;
    for (int64_t h = 0; h < n_heads; ++h) {
      emergent += in[h] && !base.heads.in_circuit[h];
      fresh += first[h] && *first[h] == s;
      lost += !in[h] && base.heads.in_circuit[h];
    }
    emergent_per_step[s] = emergent;
    ordered_json e = {{"step", steps[s].step}, {"name", steps[s].name}, {"report", steps[s].heads.path}};
    e["reward"] = steps[s].reward ? json(*steps[s].reward) : json(nullptr);
    e["circuit_heads"] = count(in);
    e["emergent"] = emergent;
    e["new"] = fresh;
    e["lost"] = lost;
    js.push_back(e);
  }
  j["steps"] = js;

  ordered_json jh = ordered_json::array();
  for (int64_t h = 0; h < n_heads; ++h) {
    ordered_json e;
    e["layer"] = h / H;
    e["head"] = h % H;
    e["in_base"] = static_cast<bool>(base.heads.in_circuit[h]);
    e["importance_base"] = base.heads.importance[h];
    ordered_json in = ordered_json::array(), imp = ordered_json::array(), eff = ordered_json::array();
    int64_t n_in = 0;
    for (size_t s = 0; s < S; ++s) {
      in.push_back(static_cast<bool>(steps[s].heads.in_circuit[h]));
      imp.push_back(steps[s].heads.importance[h]);
      eff.push_back(importance_effect(base.heads.importance[h], steps[s].heads.importance[h]));
      n_in += steps[s].heads.in_circuit[h];
    }
    e["in_circuit"] = in;
    e["importance"] = imp;
    e["E"] = eff;
    e["first_emergence_step"] = first[h] ? json(steps[*first[h]].step) : json(nullptr);
    e["frequency"] = S ? static_cast<double>(n_in) / static_cast<double>(S) : 0.0;
    jh.push_back(e);
  }
  j["heads"] = jh;

  ordered_json jc = ordered_json::array();
  for (size_t s = 0; s < S; ++s) {
    std::vector<int64_t> cohort;
    for (int64_t h = 0; h < n_heads; ++h)
      if (first[h] && *first[h] == s) cohort.push_back(h);
    if (cohort.empty()) continue;
    ordered_json e;
    e["step"] = steps[s].step;
    ordered_json names = ordered_json::array();
    for (int64_t h : cohort) names.push_back(head_label(h / H, h % H));
    e["heads"] = names;
    ordered_json alive = ordered_json::array();
    for (size_t t = s; t < S; ++t) {
      int64_t n = 0;
      for (int64_t h : cohort) n += steps[t].heads.in_circuit[h];
      alive.push_back({{"step", steps[t].step}, {"count", n}});
    }
    e["alive"] = alive;
    jc.push_back(e);
  }
  j["cohorts"] = jc;

  ordered_json nr;
  nr["key"] = log ? json(log->key) : json(nullptr);
  ordered_json pts = ordered_json::array();
  std::vector<double> xs, ys;
  for (size_t s = 0; s < S; ++s) {
    pts.push_back({{"step", steps[s].step},
                   {"emergent", emergent_per_step[s]},
                   {"reward", steps[s].reward ? json(*steps[s].reward) : json(nullptr)}});
    if (steps[s].reward) {
      xs.push_back(static_cast<double>(emergent_per_step[s]));
      ys.push_back(*steps[s].reward);
    }
  }
  nr["points"] = pts;
  nr["n"] = static_cast<int64_t>(xs.size());
  nr["pearson"] = number_or_null(pearson_correlation(xs, ys));
  nr["spearman"] = number_or_null(spearman_correlation(xs, ys));
  j["new_heads_vs_reward"] = nr;
  return j;
}

std::string format_timeline(const ordered_json& summary) {
  std::ostringstream os;
  const std::string key = summary["log"].is_null() ? "reward" : summary["log"]["key"].get<std::string>();
  os << "base " << summary["base"]["name"].get<std::string>() << ": " << summary["base"]["circuit_heads"]
     << " circuit heads of " << summary["n_layers"].get<int64_t>() * summary["n_heads"].get<int64_t>() << " ("
     << summary["n_layers"] << " layers x " << summary["n_heads"] << ")\n";
  char line[512];
  std::snprintf(line, sizeof line, "%8s %10s %6s %9s %4s %5s  %s\n", "step", key.substr(0, 10).c_str(), "heads",
                "emergent", "new", "lost", "first emerging here");
  os << line;
  std::map<int64_t, std::string> new_at;
  for (const auto& c : summary["cohorts"]) {
    std::string s;
    for (const auto& h : c["heads"]) s += (s.empty() ? "" : " ") + h.get<std::string>();
    new_at[c["step"].get<int64_t>()] = s;
  }
  for (const auto& s : summary["steps"]) {
    char reward[32] = "-";
    if (!s["reward"].is_null()) std::snprintf(reward, sizeof reward, "%.4g", s["reward"].get<double>());
    const int64_t step = s["step"].get<int64_t>();
    std::snprintf(line, sizeof line, "%8lld %10s %6lld %9lld %4lld %5lld  ", static_cast<long long>(step), reward,
                  static_cast<long long>(s["circuit_heads"].get<int64_t>()),
                  static_cast<long long>(s["emergent"].get<int64_t>()), static_cast<long long>(s["new"].get<int64_t>()),
                  static_cast<long long>(s["lost"].get<int64_t>()));
    os << line << (new_at.count(step) ? new_at[step] : "") << "\n";
  }
  const auto& nr = summary["new_heads_vs_reward"];
  if (!nr["key"].is_null()) {
    auto num = [](const json& v) {
      if (v.is_null()) return std::string("n/a");
      char b[32];
      std::snprintf(b, sizeof b, "%+.3f", v.get<double>());
      return std::string(b);
    };
    os << "emergent heads vs " << key << ": pearson " << num(nr["pearson"]) << ", spearman " << num(nr["spearman"])
       << " (n = " << nr["n"] << ")\n";
  }
  if (!summary["skipped"].empty()) {
    os << "left out (partial merge):";
    for (const auto& n : summary["skipped"]) os << " " << n.get<std::string>();
    os << "\n";
  }
  if (!summary["cohorts"].empty()) {
    os << "cohorts (heads by first-emergence step; how many are in the circuit at each later step):\n";
    for (const auto& c : summary["cohorts"]) {
      std::snprintf(line, sizeof line, "%8lld: %2zu head(s) |", static_cast<long long>(c["step"].get<int64_t>()),
                    c["heads"].size());
      os << line;
      for (const auto& a : c["alive"]) os << " " << a["count"].get<int64_t>();
      os << "\n";
    }
  }
  return os.str();
}

}  // namespace circuitscope::sweep
