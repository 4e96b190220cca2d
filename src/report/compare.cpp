#include "circuitscope/compare.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/report.hpp"

namespace circuitscope {

namespace {

int64_t get_int(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer())
    throw Error(ErrorCode::kFormat, where + ": \"" + key + "\" must be an integer");
  return j[key].get<int64_t>();
}

// Appended piece by piece: GCC 12 in C++20 mode flags `"L" + std::to_string(l)` with a false
// -Wrestrict once it is inlined into some unity batches (GCC bug 105651).
std::string head_name(int64_t l, int64_t h) {
  std::string s = "L";
  s += std::to_string(l);
  s += ".H";
  s += std::to_string(h);
  return s;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

ReportHeads report_heads_from_json(const nlohmann::json& report, const std::string& origin) {
  if (!report.is_object()) throw Error(ErrorCode::kFormat, "'" + origin + "': expected a JSON object (an attribute report)");
  if (!report.contains("heads"))
    throw Error(ErrorCode::kFormat, "'" + origin + "' has no \"heads\" array: run attribute with a circuit selection "
                                    "(--top-n or --threshold) so the report lists head importances");
  const nlohmann::json& heads = report["heads"];
  if (!heads.is_array()) throw Error(ErrorCode::kFormat, "'" + origin + "': \"heads\" must be an array");
  ReportHeads r;
  r.path = origin;
  if (report.contains("model") && report["model"].is_object()) {
    const auto& m = report["model"];
    if (m.contains("path") && m["path"].is_string()) r.model_path = m["path"].get<std::string>();
    if (m.contains("fingerprint") && m["fingerprint"].is_string()) r.fingerprint = m["fingerprint"].get<std::string>();
    if (m.contains("n_layers")) r.n_layers = get_int(m, "n_layers", "'" + origin + "': model");
    if (m.contains("n_heads")) r.n_heads = get_int(m, "n_heads", "'" + origin + "': model");
  }
  struct Row {
    int64_t layer, head;
    double importance;
    bool in_circuit;
  };
  std::vector<Row> rows;
  int64_t max_l = -1, max_h = -1;
  for (size_t i = 0; i < heads.size(); ++i) {
    const std::string where = "'" + origin + "': heads[" + std::to_string(i) + "]";
    const auto& e = heads[i];
    if (!e.is_object()) throw Error(ErrorCode::kFormat, where + ": expected {layer, head, importance, in_circuit}");
    Row row{get_int(e, "layer", where), get_int(e, "head", where), 0.0, false};
    if (!e.contains("importance") || !e["importance"].is_number())
      throw Error(ErrorCode::kFormat, where + ": \"importance\" must be a number");
    row.importance = e["importance"].get<double>();
    if (!(row.importance >= 0))
      throw Error(ErrorCode::kFormat, where + ": \"importance\" must be >= 0, found " + e["importance"].dump());
    if (!e.contains("in_circuit") || !e["in_circuit"].is_boolean())
      throw Error(ErrorCode::kFormat, where + ": \"in_circuit\" must be true or false");
    row.in_circuit = e["in_circuit"].get<bool>();
    if (row.layer < 0 || row.head < 0) throw Error(ErrorCode::kFormat, where + ": negative layer or head");
    max_l = std::max(max_l, row.layer);
    max_h = std::max(max_h, row.head);
    rows.push_back(row);
  }
  if (r.n_layers == 0) r.n_layers = max_l == INT64_MAX ? max_l : max_l + 1;  // too large either way: refused below
  if (r.n_heads == 0) r.n_heads = max_h == INT64_MAX ? max_h : max_h + 1;
  if (r.n_layers <= 0 || r.n_heads <= 0)
    throw Error(ErrorCode::kFormat, "'" + origin + "': no model.n_layers/n_heads and an empty \"heads\" array");
  // Far above any real model (Llama-3-405B: 126 x 128); keeps a hostile report from sizing the arrays.
  constexpr int64_t kMaxLayersOrHeads = 100000, kMaxHeadsTotal = 10000000;
  if (r.n_layers > kMaxLayersOrHeads || r.n_heads > kMaxLayersOrHeads || r.n_layers * r.n_heads > kMaxHeadsTotal)
    throw Error(ErrorCode::kFormat, "'" + origin + "': " + std::to_string(r.n_layers) + " layers x " +
                                        std::to_string(r.n_heads) + " heads is beyond any model (at most " +
                                        std::to_string(kMaxLayersOrHeads) + " each, " + std::to_string(kMaxHeadsTotal) +
                                        " heads in all)");
  r.importance.assign(r.n_layers * r.n_heads, 0.0);
  r.in_circuit.assign(r.n_layers * r.n_heads, false);
  std::vector<bool> seen(r.n_layers * r.n_heads, false);
  for (const Row& row : rows) {
    if (row.layer >= r.n_layers || row.head >= r.n_heads)
      throw Error(ErrorCode::kFormat, "'" + origin + "': head " + head_name(row.layer, row.head) + " lies outside the model's " +
                                          std::to_string(r.n_layers) + " layers x " + std::to_string(r.n_heads) + " heads");
    const size_t k = row.layer * r.n_heads + row.head;
    if (seen[k]) throw Error(ErrorCode::kFormat, "'" + origin + "': head " + head_name(row.layer, row.head) + " is listed twice");
    seen[k] = true;
    r.importance[k] = row.importance;
    r.in_circuit[k] = row.in_circuit;
  }
  return r;
}

ReportHeads read_report_heads(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kIo, "cannot read report '" + path + "'");
  nlohmann::json j;
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  check_json_depth(text, "report '" + path + "'");
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kFormat, "report '" + path + "' is not valid JSON: " + e.what());
  }
  return report_heads_from_json(j, path);
}

const char* head_change_name(HeadChange c) {
  switch (c) {
    case HeadChange::kEmergent: return "emergent";
    case HeadChange::kRetained: return "retained";
    case HeadChange::kLost: return "lost";
    default: return "neither";
  }
}

double importance_effect(double base, double post) { return (post - base) / (post + base + 1e-6); }

CircuitComparison compare_circuits(const ReportHeads& base, const ReportHeads& post) {
  if (base.n_layers != post.n_layers || base.n_heads != post.n_heads)
    throw Error(ErrorCode::kInput, "the reports describe different shapes: '" + base.path + "' has " +
                                       std::to_string(base.n_layers) + " layers x " + std::to_string(base.n_heads) +
                                       " heads, '" + post.path + "' has " + std::to_string(post.n_layers) + " x " +
                                       std::to_string(post.n_heads) + " (compare needs two versions of one model)");
  CircuitComparison c;
  c.base = base;
  c.post = post;
  c.n_layers = base.n_layers;
  c.n_heads = base.n_heads;
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (int64_t h = 0; h < c.n_heads; ++h) {
      const size_t k = l * c.n_heads + h;
      HeadComparison x;
      x.layer = l;
      x.head = h;
      x.base = base.importance[k];
      x.post = post.importance[k];
      x.in_base = base.in_circuit[k];
      x.in_post = post.in_circuit[k];
      x.effect = importance_effect(x.base, x.post);
      x.change = x.in_post ? (x.in_base ? HeadChange::kRetained : HeadChange::kEmergent)
                           : (x.in_base ? HeadChange::kLost : HeadChange::kNeither);
      if (x.change == HeadChange::kEmergent) c.emergent.push_back(k);
      if (x.change == HeadChange::kRetained) c.retained.push_back(k);
      if (x.change == HeadChange::kLost) c.lost.push_back(k);
      c.heads.push_back(x);
    }
  auto by = [&](std::vector<size_t>& v, bool use_post) {
    std::stable_sort(v.begin(), v.end(), [&](size_t a, size_t b) {
      return use_post ? c.heads[a].post > c.heads[b].post : c.heads[a].base > c.heads[b].base;
    });
  };
  by(c.emergent, true);
  by(c.retained, true);
  by(c.lost, false);
  return c;
}

nlohmann::ordered_json comparison_to_json(const CircuitComparison& c) {
  auto side = [](const ReportHeads& r) {
    const int64_t n = std::count(r.in_circuit.begin(), r.in_circuit.end(), true);
    return nlohmann::ordered_json{{"path", r.path}, {"model_path", r.model_path}, {"fingerprint", r.fingerprint},
                          {"circuit_heads", n}};
  };
  auto list = [&](const std::vector<size_t>& v) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (size_t k : v) {
      const HeadComparison& x = c.heads[k];
      a.push_back({{"layer", x.layer}, {"head", x.head}, {"importance_base", x.base}, {"importance_post", x.post},
                   {"effect", x.effect}});
    }
    return a;
  };
  nlohmann::ordered_json heads = nlohmann::ordered_json::array();
  for (const HeadComparison& x : c.heads)
    heads.push_back({{"layer", x.layer},
                     {"head", x.head},
                     {"importance_base", x.base},
                     {"importance_post", x.post},
                     {"in_base", x.in_base},
                     {"in_post", x.in_post},
                     {"effect", x.effect},
                     {"change", head_change_name(x.change)}});
  nlohmann::ordered_json j;
  j["schema_version"] = kCompareSchemaVersion;
  j["tool"] = "circuitscope compare";
  j["effect_formula"] = "(I_post - I_base) / (I_post + I_base + 1e-6)";
  j["base"] = side(c.base);
  j["post"] = side(c.post);
  j["n_layers"] = c.n_layers;
  j["n_heads"] = c.n_heads;
  j["counts"] = {{"emergent", c.emergent.size()}, {"retained", c.retained.size()}, {"lost", c.lost.size()}};
  j["emergent"] = list(c.emergent);
  j["retained"] = list(c.retained);
  j["lost"] = list(c.lost);
  j["heads"] = std::move(heads);
  return j;
}

std::string format_comparison(const CircuitComparison& c) {
  std::ostringstream s;
  auto count = [](const ReportHeads& r) { return std::count(r.in_circuit.begin(), r.in_circuit.end(), true); };
  s << "base: " << c.base.path << " (" << count(c.base) << " circuit heads)\n"
    << "post: " << c.post.path << " (" << count(c.post) << " circuit heads)\n"
    << "emergent " << c.emergent.size() << ", retained " << c.retained.size() << ", lost " << c.lost.size() << " of "
    << c.n_layers * c.n_heads << " heads (" << c.n_layers << " layers x " << c.n_heads << ")\n\n";

  // Column width fits the widest head number and, for the E grid, "+1.00".
  const int hw = static_cast<int>(std::to_string(c.n_heads - 1).size());
  const int lw = std::max<int>(5, static_cast<int>(std::to_string(c.n_layers - 1).size()));
  auto pad = [](const std::string& t, int w) { return std::string(w > (int)t.size() ? w - t.size() : 0, ' ') + t; };
  auto header = [&](int w) {
    s << pad("layer", lw) << " |";
    for (int64_t h = 0; h < c.n_heads; ++h) s << " " << pad(std::to_string(h), w);
    s << "\n" << std::string(lw + 2 + (w + 1) * c.n_heads, '-') << "\n";
  };

  s << "circuit heads by layer (columns: head)   + emergent  = retained  - lost  . neither\n";
  header(hw);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    s << pad(std::to_string(l), lw) << " |";
    for (int64_t h = 0; h < c.n_heads; ++h) {
      const HeadComparison& x = c.heads[l * c.n_heads + h];
      const char m = x.change == HeadChange::kEmergent   ? '+'
                     : x.change == HeadChange::kRetained ? '='
                     : x.change == HeadChange::kLost     ? '-'
                                                         : '.';
      s << " " << pad(std::string(1, m), hw);
    }
    s << "\n";
  }

  const int ew = std::max(hw, 5);
  s << "\nimportance effect E = (I_post - I_base)/(I_post + I_base + 1e-6)   (. where both importances are 0)\n";
  header(ew);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    s << pad(std::to_string(l), lw) << " |";
    for (int64_t h = 0; h < c.n_heads; ++h) {
      const HeadComparison& x = c.heads[l * c.n_heads + h];
      s << " " << pad(x.base == 0 && x.post == 0 ? "." : fmt("%+.2f", x.effect), ew);
    }
    s << "\n";
  }

  auto list = [&](const char* title, const std::vector<size_t>& v) {
    s << "\n" << title << " (" << v.size() << ")" << (v.empty() ? "\n" : ":\n");
    for (size_t k : v) {
      const HeadComparison& x = c.heads[k];
      s << "  " << pad(head_name(x.layer, x.head), 8) << "  I_base " << fmt("%.4f", x.base) << "  I_post "
        << fmt("%.4f", x.post) << "  E " << fmt("%+.3f", x.effect) << "\n";
    }
  };
  list("emergent heads, in the post-trained circuit only", c.emergent);
  list("retained heads, in both circuits", c.retained);
  list("lost heads, in the base circuit only", c.lost);
  return s.str();
}

}  // namespace circuitscope
