// The HTML report page: sections of figures and tables for reports, comparisons and sweeps.
#include "circuitscope/html_report.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/figures.hpp"
#include "circuitscope/report.hpp"

namespace circuitscope {

namespace fs = std::filesystem;
using nlohmann::json;
using fig::xml_escape;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Tolerant readers: a missing key, null or a value of another type reads as absent (NaN, false,
// the default, or null), so that a hand-edited or partial file still draws.
const json& child(const json& j, const char* key) {
  static const json kNull;
  return j.is_object() && j.contains(key) ? j[key] : kNull;
}
double dnum(const json& j, const char* key, double def = std::numeric_limits<double>::quiet_NaN()) {
  const json& v = child(j, key);
  return v.is_number() ? v.get<double>() : def;
}
bool dbool(const json& j, const char* key) {
  const json& v = child(j, key);
  return v.is_boolean() && v.get<bool>();
}
int64_t dint(const json& j, const char* key, int64_t def) {
  const json& v = child(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : def;
}
std::string dstr(const json& j, const char* key) {
  const json& v = child(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

std::string num(const json& v, int digits = 4) {
  if (!v.is_number()) return v.is_null() ? "–" : xml_escape(v.dump());
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v.get<double>());
  return buf;
}

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) ? (j[key].is_string() ? j[key].get<std::string>() : j[key].dump()) : "";
}

// A <table> of key/value rows.
std::string kv_table(const std::string& caption, const std::vector<std::pair<std::string, std::string>>& rows) {
  std::ostringstream o;
  o << "<table class=\"kv\"><caption>" << xml_escape(caption) << "</caption>\n";
  for (const auto& [k, v] : rows) o << "<tr><th>" << xml_escape(k) << "</th><td>" << v << "</td></tr>\n";
  o << "</table>\n";
  return o.str();
}

// Far above any real model; keeps a hostile report from sizing the page's arrays.
constexpr int64_t kMaxGridDim = 100000, kMaxGridHeads = 10000000;

// Dense layer x head values of a report-like `heads` array.
struct HeadGrid {
  int64_t layers = 0, heads = 0;
  std::vector<double> values;
  std::vector<std::string> markers;
};
HeadGrid head_grid(const json& heads, int64_t L, int64_t H, const std::function<double(const json&)>& value,
                   const std::function<std::string(const json&)>& marker) {
  if (L < 0 || H < 0 || (H > 0 && L > kMaxGridHeads / H))
    throw Error(ErrorCode::kFormat, "a head grid of " + std::to_string(L) + " layers x " + std::to_string(H) +
                                        " heads is beyond any model (at most " + std::to_string(kMaxGridHeads) + " heads)");
  HeadGrid g{L, H, std::vector<double>(static_cast<size_t>(L * H), kNaN), std::vector<std::string>(static_cast<size_t>(L * H))};
  for (const json& h : heads) {
    const int64_t l = dint(h, "layer", -1), k = dint(h, "head", -1);
    if (l < 0 || k < 0 || l >= L || k >= H) continue;
    g.values[l * H + k] = value(h);
    g.markers[l * H + k] = marker(h);
  }
  return g;
}

int64_t dim(const json& j, const char* key, const json& heads, const char* field) {
  int64_t d = 0;
  if (j.is_object() && j.contains(key) && j[key].is_number_integer()) {
    d = j[key].get<int64_t>();
  } else {
    int64_t m = -1;
    for (const json& h : heads) m = std::max(m, dint(h, field, -1));
    d = m == INT64_MAX ? m : m + 1;
  }
  if (d < 0 || d > kMaxGridDim)
    throw Error(ErrorCode::kFormat, std::string("'") + key + "' (or the largest '" + field + "' + 1) is " + std::to_string(d) +
                                        "; expected 0 to " + std::to_string(kMaxGridDim));
  return d;
}

// Graphviz's SVG without its prolog, its ids (graph0, node1, edge1, ...) prefixed so that two graphs
// on one page do not share ids.
std::string graph_svg_for_page(const std::string& s, const std::string& prefix) {
  const size_t p = s.find("<svg");
  std::string out = p == std::string::npos ? s : s.substr(p);
  const std::string from = " id=\"", to = " id=\"" + prefix + "-";
  for (size_t i = out.find(from); i != std::string::npos; i = out.find(from, i + to.size())) out.replace(i, from.size(), to);
  return out;
}

}  // namespace

HtmlSection report_section(const json& r, const std::string& path, const std::string& id, int64_t max_graph_edges) {
  HtmlSection s;
  s.id = id;
  s.kind = "report";
  s.title = "Attribute report: " + fs::path(path).filename().string();
  const json& model = child(r, "model");
  const json& method = child(r, "method");
  const json& heads = child(r, "heads");
  const int64_t L = dim(model, "n_layers", heads, "layer"), H = dim(model, "n_heads", heads, "head");
  s.intro = xml_escape(str(model, "path") + " (" + str(model, "architecture") + ", " + std::to_string(L) + " layers x " +
                       std::to_string(H) + " heads), " + str(method, "name") + " on " + str(method, "metric") + ", " +
                       str(child(r, "dataset"), "examples") + " pairs");

  // The circuit graph.
  const ReportEdges edges = report_edges(r, path);
  int64_t in_circuit = 0;
  for (int64_t e = 0; e < static_cast<int64_t>(edges.in_graph.size()); ++e) in_circuit += edges.in_graph[e] != 0;
  if (in_circuit > 0) {
    ReportEdges drawn = edges;
    std::string note;
    if (in_circuit > max_graph_edges) {
      std::vector<std::pair<double, int64_t>> order;
      for (int64_t e = 0; e < static_cast<int64_t>(edges.in_graph.size()); ++e)
        if (edges.in_graph[e]) order.emplace_back(-std::abs(edges.scores[e]), e);
      std::sort(order.begin(), order.end());
      std::fill(drawn.in_graph.begin(), drawn.in_graph.end(), 0);
      for (int64_t i = 0; i < max_graph_edges; ++i) drawn.in_graph[order[i].second] = 1;
      note = "; the " + std::to_string(max_graph_edges) + " with the largest |score| of the circuit's " +
             std::to_string(in_circuit) + " edges";
    }
    s.figures.push_back({id + "-graph",
                         "Circuit graph (" + std::to_string(std::min(in_circuit, max_graph_edges)) + " edges" + note +
                             "), input at the bottom, a row per layer's heads (labelled) with its MLP above. Edge colour: "
                             "sign (red positive, blue negative, as in the E maps); width: |score|; style: the input "
                             "entered (q solid, k dashed, v dotted). Nodes: input grey, heads blue, MLPs orange, "
                             "logits green.",
                         graph_svg_for_page(fig::render_dot(fig::circuit_dot(drawn), "svg"), id + "-graph")});
  }
  // Head importance with the circuit's heads marked.
  if (!heads.empty()) {
    fig::Heatmap hm;
    hm.id = id + "-importance";
    hm.title = "Head importance";
    hm.value_label = "importance (share of |score|)";
    const HeadGrid g = head_grid(
        heads, L, H, [](const json& h) { return dnum(h, "importance", 0.0); },
        [](const json& h) { return dbool(h, "in_circuit") ? "\u2022" : ""; });
    hm.rows = L;
    hm.cols = H;
    hm.values = g.values;
    hm.markers = g.markers;
    hm.marker_legend = "\u2022 head in the circuit";
    s.figures.push_back({hm.id,
                         "Importance of each head: the sum of |score| over the circuit's edges leaving it, normalized "
                         "to 1 over heads (without a circuit, over all edges). Dots mark the circuit's heads.",
                         fig::heatmap_svg(hm)});
  }
  // Faithfulness against circuit size.
  const json& f = child(r, "faithfulness");
  if (f.contains("sizes") && child(f, "sizes").is_array() && !child(f, "sizes").empty()) {
    fig::Chart c;
    c.id = id + "-faithfulness";
    c.title = "Faithfulness against circuit size";
    c.x_label = "circuit size (top-n edges before pruning, log scale)";
    c.y_label = "normalized faithfulness";
    c.log_x = true;
    fig::Series y{"(circuit - corrupted) / (clean - corrupted)", {}, ""};
    for (const json& p : child(f, "sizes")) {
      c.x.push_back(std::max(1.0, dnum(p, "top_n", 1.0)));
      y.y.push_back(dnum(p, "normalized"));
    }
    c.lines.push_back(y);
    s.figures.push_back({c.id, "Normalized faithfulness of the top-n circuit (then pruned) for each size: 1 = the "
                               "clean model's metric, 0 = the corrupted one's.",
                         fig::chart_svg(c)});
  }

  // Tables: top edges, baselines and faithfulness, provenance.
  std::vector<std::pair<double, std::string>> top;
  const json all_edges = child(r, "edges");  // items() of a temporary would dangle
  for (const auto& [name, e] : all_edges.items())
    top.emplace_back(-std::abs(dnum(e, "score", 0.0)), name);
  std::sort(top.begin(), top.end());
  std::ostringstream t;
  t << "<table class=\"sortable\"><caption>Top edges by |score| (click a header to sort)</caption>\n"
       "<thead><tr><th>#</th><th>edge</th><th>score</th><th>in circuit</th></tr></thead><tbody>\n";
  const json& ej = all_edges;
  for (size_t i = 0; i < std::min<size_t>(20, top.size()); ++i) {
    const json& e = ej[top[i].second];
    t << "<tr><td>" << i + 1 << "</td><td>" << xml_escape(top[i].second) << "</td><td>" << num(child(e, "score")) << "</td><td>"
      << (dbool(e, "in_graph") ? "yes" : "no") << "</td></tr>\n";
  }
  t << "</tbody></table>\n";
  const json& b = child(r, "baselines");
  std::vector<std::pair<std::string, std::string>> fr = {{"metric", xml_escape(str(method, "metric"))},
                                                         {"clean", num(child(b, "clean"))},
                                                         {"corrupted", num(child(b, "corrupted"))}};
  if (!f.empty()) {
    fr.emplace_back("intervention", xml_escape(str(f, "intervention")));
    if (f.contains("circuit")) fr.emplace_back("circuit", num(child(f, "circuit")));
    if (f.contains("normalized")) fr.emplace_back("faithfulness (normalized)", num(child(f, "normalized")));
  }
  if (r.contains("circuit")) fr.emplace_back("circuit selection", xml_escape(child(r, "circuit").dump()));
  fr.emplace_back("edges in the circuit", std::to_string(in_circuit));
  t << kv_table("Baselines and faithfulness", fr);
  const json& d = child(r, "dataset");
  t << kv_table("Provenance", {{"model", xml_escape(str(model, "path"))},
                               {"architecture", xml_escape(str(model, "architecture"))},
                               {"model fingerprint", "<code>" + xml_escape(str(model, "fingerprint")) + "</code>"},
                               {"dataset", xml_escape(str(d, "path"))},
                               {"dataset sha256", "<code>" + xml_escape(str(d, "sha256")) + "</code>"},
                               {"pairs (skipped)", xml_escape(str(d, "examples") + " (" + str(d, "skipped") + ")")},
                               {"method", "<code>" + xml_escape(method.dump()) + "</code>"},
                               {"tool", xml_escape(str(r, "tool"))},
                               {"schema_version", xml_escape(str(r, "schema_version"))},
                               {"file", xml_escape(path)}});
  s.tables = t.str();
  return s;
}

HtmlSection compare_section(const json& c, const std::string& path, const std::string& id) {
  HtmlSection s;
  s.id = id;
  s.kind = "compare";
  s.title = "Comparison: " + fs::path(path).filename().string();
  const json& heads = child(c, "heads");
  const int64_t L = dim(c, "n_layers", heads, "layer"), H = dim(c, "n_heads", heads, "head");
  std::string counted;
  for (const char* k : {"emergent", "retained", "lost"})
    counted += std::string(counted.empty() ? "" : ", ") + k + " " + std::to_string(child(c, k).size());
  s.intro = xml_escape("base " + dstr(child(c, "base"), "path") + " against post " + dstr(child(c, "post"), "path") +
                       ": " + counted + " of " + std::to_string(L * H) + " heads");
  auto marker = [](const json& h) {
    const std::string ch = dstr(h, "change");
    return ch == "emergent" ? "+" : ch == "retained" ? "=" : ch == "lost" ? "-" : "";
  };
  double vmax = 0.0;  // one scale for both, so that their colours compare
  for (const json& h : heads) vmax = std::max({vmax, dnum(h, "importance_base", 0.0), dnum(h, "importance_post", 0.0)});
  for (const char* which : {"base", "post"}) {
    fig::Heatmap hm;
    hm.vmin = 0.0;
    hm.vmax = vmax > 0.0 ? vmax : 1.0;
    hm.id = id + "-importance-" + which;
    hm.title = std::string("Head importance, ") + which;
    hm.value_label = "importance";
    const std::string key = std::string("importance_") + which;
    const std::string in_key = std::string("in_") + which;
    const HeadGrid g = head_grid(
        heads, L, H, [&](const json& h) { return dnum(h, key.c_str(), 0.0); },
        [&](const json& h) { return dbool(h, in_key.c_str()) ? "\u2022" : ""; });
    hm.rows = L;
    hm.cols = H;
    hm.values = g.values;
    hm.markers = g.markers;
    hm.marker_legend = std::string("\u2022 head in the ") + which + " circuit";
    s.figures.push_back({hm.id, std::string("Importance of each head in the ") + which + " report.", fig::heatmap_svg(hm)});
  }
  fig::Heatmap e;
  e.id = id + "-effect";
  e.title = "Importance effect E";
  e.value_label = "E (-1 .. 1)";
  e.diverging = true;
  e.vmin = -1.0;
  e.vmax = 1.0;
  const HeadGrid g = head_grid(
      heads, L, H,
      [](const json& h) {
        return dnum(h, "importance_base", 0.0) == 0.0 && dnum(h, "importance_post", 0.0) == 0.0 ? kNaN
                                                                                               : dnum(h, "effect", 0.0);
      },
      marker);
  e.rows = L;
  e.cols = H;
  e.values = g.values;
  e.markers = g.markers;
  e.marker_legend = "+ emergent \u00b7 = retained \u00b7 - lost \u00b7 grey: importance 0 in both";
  s.figures.push_back({e.id,
                       "E = (I_post - I_base) / (I_post + I_base + 1e-6): red where the post-trained model leans on a "
                       "head more, blue where less. Markers: the head's change in circuit membership.",
                       fig::heatmap_svg(e)});
  std::ostringstream t;
  for (const char* list : {"emergent", "retained", "lost"}) {
    t << "<table class=\"sortable\"><caption>" << list << " heads (" << child(c, list).size()
      << ")</caption><thead><tr><th>head</th><th>importance base</th><th>importance post</th><th>E</th></tr></thead><tbody>\n";
    for (const json& h : child(c, list))
      t << "<tr><td>a" << dnum(h, "layer", 0) << ".h" << dnum(h, "head", 0) << "</td><td>" << num(child(h, "importance_base"))
        << "</td><td>" << num(child(h, "importance_post")) << "</td><td>" << num(child(h, "effect")) << "</td></tr>\n";
    t << "</tbody></table>\n";
  }
  t << kv_table("Provenance", {{"base report", xml_escape(str(child(c, "base"), "path"))},
                               {"base fingerprint", "<code>" + xml_escape(str(child(c, "base"), "fingerprint")) + "</code>"},
                               {"post report", xml_escape(str(child(c, "post"), "path"))},
                               {"post fingerprint", "<code>" + xml_escape(str(child(c, "post"), "fingerprint")) + "</code>"},
                               {"tool", xml_escape(str(c, "tool"))},
                               {"file", xml_escape(path)}});
  s.tables = t.str();
  return s;
}

HtmlSection sweep_section(const std::string& dir, const std::string& id) {
  const std::string path = (fs::path(dir) / "summary.json").string();
  const json sm = read_json_file(path);
  HtmlSection s;
  s.id = id;
  s.kind = "sweep";
  s.title = "Sweep: " + fs::path(dir).filename().string();
  const json& steps = child(sm, "steps");
  const json& heads = child(sm, "heads");
  const int64_t L = dint(sm, "n_layers", 0), H = dint(sm, "n_heads", 0);
  const std::string key = dstr(child(sm, "log"), "key");
  s.intro = xml_escape(std::to_string(steps.size()) + (steps.size() == 1 ? " checkpoint" : " checkpoints") +
                       " against the base checkpoint '" + dstr(child(sm, "base"), "name") + "' (" +
                       str(child(sm, "base"), "circuit_heads") + " circuit heads)" +
                       (key.empty() ? "" : "; training log key: " + key));

  fig::Heatmap fq;
  fq.id = id + "-frequency";
  fq.title = "Activation frequency";
  fq.value_label = "share of checkpoints";
  fq.vmin = 0.0;
  fq.vmax = 1.0;
  fq.decimals = 2;
  const HeadGrid gf = head_grid(
      heads, L, H, [](const json& h) { return dnum(h, "frequency", 0.0); },
      [](const json& h) { return dbool(h, "in_base") ? "b" : ""; });
  fq.rows = L;
  fq.cols = H;
  fq.values = gf.values;
  fq.markers = gf.markers;
  fq.marker_legend = "b: in the base circuit";
  s.figures.push_back({fq.id, "Share of the sweep's checkpoints whose circuit holds each head.", fig::heatmap_svg(fq)});

  fig::Heatmap fe;
  fe.id = id + "-first-emergence";
  fe.title = "First emergence";
  fe.value_label = "training step";
  fe.decimals = 0;
  const HeadGrid ge = head_grid(
      heads, L, H,
      [](const json& h) {
        return child(h, "first_emergence_step").is_number() ? child(h, "first_emergence_step").get<double>() : kNaN;
      },
      [](const json&) { return std::string(); });
  fe.rows = L;
  fe.cols = H;
  fe.values = ge.values;
  s.figures.push_back({fe.id,
                       "The first step at which each head is in the circuit while not in the base circuit (grey: "
                       "never).",
                       fig::heatmap_svg(fe)});

  if (!steps.empty()) {
    fig::Heatmap ee;
    ee.id = id + "-effect-last";
    ee.title = "Importance effect E at step " + str(steps.back(), "step");
    ee.value_label = "E (-1 .. 1)";
    ee.diverging = true;
    ee.vmin = -1.0;
    ee.vmax = 1.0;
    const size_t last = steps.size() - 1;
    const HeadGrid gl = head_grid(
        heads, L, H,
        [&](const json& h) {
          // As in the compare section: no value (grey) where both importances are 0.
          const json& e = child(h, "E");
          const json& imp = child(h, "importance");
          const double post = imp.size() > last && imp[last].is_number() ? imp[last].get<double>() : 0.0;
          if (dnum(h, "importance_base", 0.0) == 0.0 && post == 0.0) return kNaN;
          return e.size() > last && e[last].is_number() ? e[last].get<double>() : kNaN;
        },
        [&](const json& h) {
          const json& ic = child(h, "in_circuit");
          const bool in = ic.size() > last && ic[last].is_boolean() && ic[last].get<bool>();
          const bool base = dbool(h, "in_base");
          return in && !base ? "+" : in && base ? "=" : !in && base ? "-" : "";
        });
    ee.rows = L;
    ee.cols = H;
    ee.values = gl.values;
    ee.markers = gl.markers;
    ee.marker_legend = "+ emergent \u00b7 = retained \u00b7 - lost \u00b7 grey: importance 0 in both";
    s.figures.push_back({ee.id, "E of the last checkpoint against the base, with its circuit changes.", fig::heatmap_svg(ee)});

    // Cohorts: stacked areas of heads still in the circuit, by first-emergence step.
    fig::Chart c;
    c.id = id + "-cohorts";
    c.title = "Cohorts of emergent heads";
    c.x_label = "training step";
    c.y_label = "emergent heads in the circuit";
    for (const json& st : steps) c.x.push_back(dnum(st, "step", 0.0));
    for (const json& co : child(sm, "cohorts")) {
      fig::Series se{"first at step " + str(co, "step") + " (" + std::to_string(child(co, "heads").size()) + ")",
                     std::vector<double>(c.x.size(), 0.0), ""};
      for (const json& a : child(co, "alive"))
        for (size_t i = 0; i < c.x.size(); ++i)
          if (c.x[i] == dnum(a, "step", -1.0)) se.y[i] = dnum(a, "count", 0.0);
      c.stacked.push_back(se);
    }
    if (!key.empty()) {
      fig::Series rw{key, {}, "#000000"};
      for (const json& st : steps) rw.y.push_back(child(st, "reward").is_number() ? child(st, "reward").get<double>() : kNaN);
      c.line2 = rw;
      c.y2_label = key;
    }
    s.figures.push_back({c.id,
                         "Heads grouped by the step at which they first emerge; each band counts the cohort's heads "
                         "still in the circuit at later steps" +
                             std::string(key.empty() ? "." : "; dashed: the training log's " + key + " (right axis)."),
                         fig::chart_svg(c)});
    const json& nr = child(sm, "new_heads_vs_reward");
    if (!key.empty() && dnum(nr, "n", 0) > 0) {
      fig::Chart sc;
      sc.id = id + "-emergent-vs-reward";
      sc.title = "Emergent heads against " + key;
      sc.scatter = true;
      sc.x_label = key;
      sc.y_label = "emergent heads";
      std::vector<std::pair<double, double>> pts;
      for (const json& p : child(nr, "points"))
        if (child(p, "reward").is_number()) pts.emplace_back(child(p, "reward").get<double>(), dnum(p, "emergent", 0.0));
      std::sort(pts.begin(), pts.end());
      fig::Series se{"checkpoints", {}, fig::palette(0)};
      for (const auto& [x, y] : pts) {
        sc.x.push_back(x);
        se.y.push_back(y);
      }
      sc.lines.push_back(se);
      sc.note = "Pearson " + num(child(nr, "pearson"), 3) + ", Spearman " + num(child(nr, "spearman"), 3) + ", n = " + str(nr, "n");
      s.figures.push_back({sc.id, "Each checkpoint's count of emergent heads against its " + key + ".", fig::chart_svg(sc)});
    }
  }
  std::ostringstream t;
  t << "<table class=\"sortable\"><caption>Steps</caption><thead><tr><th>step</th><th>checkpoint</th><th>"
    << xml_escape(key.empty() ? "reward" : key)
    << "</th><th>circuit heads</th><th>emergent</th><th>new</th><th>lost</th></tr></thead><tbody>\n";
  for (const json& st : steps)
    t << "<tr><td>" << str(st, "step") << "</td><td>" << xml_escape(str(st, "name")) << "</td><td>" << num(child(st, "reward"))
      << "</td><td>" << str(st, "circuit_heads") << "</td><td>" << str(st, "emergent") << "</td><td>" << str(st, "new")
      << "</td><td>" << str(st, "lost") << "</td></tr>\n";
  t << "</tbody></table>\n";
  t << kv_table("Provenance", {{"summary", xml_escape(path)},
                               {"base", xml_escape(str(child(sm, "base"), "path"))},
                               {"training log", xml_escape(child(sm, "log").is_null() ? "none" : str(child(sm, "log"), "path"))},
                               {"tool", xml_escape(str(sm, "tool"))}});
  s.tables = t.str();
  return s;
}

HtmlSection section_for_input(const std::string& path, const std::string& id) {
  if (fs::is_directory(path)) {
    if (!fs::exists(fs::path(path) / "summary.json"))
      throw Error(ErrorCode::kFormat, path + ": a folder is read as a sweep, but it has no summary.json (run `sweep "
                                             "merge " + path + "`)");
    return sweep_section(path, id);
  }
  const json j = read_json_file(path);
  if (j.is_object() && j.contains("emergent") && j.contains("heads")) return compare_section(j, path, id);
  if (j.is_object() && j.contains("edges")) return report_section(j, path, id);
  throw Error(ErrorCode::kFormat, path + ": neither an attribute report (edges), a compare JSON (emergent, heads) nor "
                                         "a sweep folder (summary.json)");
}

std::string html_page(const std::vector<HtmlSection>& sections, const std::string& title) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << xml_escape(title)
    << "</title>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>\n"
       "body{font-family:Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}\n"
       "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:36px}\n"
       "figure{margin:16px 0;overflow-x:auto}figcaption{font-size:13px;color:#444;max-width:900px}\n"
       "figure svg{max-width:none}\n"  /* figures keep their size; a narrow window scrolls them */
       "table{border-collapse:collapse;margin:12px 0;font-size:13px;display:block;overflow-x:auto;max-width:100%}"
       "caption{text-align:left;font-weight:bold;"
       "padding:4px 0}\n"
       "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
       "th{background:#f4f4f4}table.sortable th{cursor:pointer}\n"
       "code{font-size:12px;word-break:break-all}.intro{color:#444}footer{margin-top:40px;font-size:12px;color:#777}\n"
       "</style>\n</head>\n<body>\n<h1>" << xml_escape(title) << "</h1>\n<nav><ul>\n";
  for (const HtmlSection& s : sections)
    o << "<li><a href=\"#" << xml_escape(s.id) << "\">" << xml_escape(s.title) << "</a></li>\n";
  o << "</ul></nav>\n";
  for (const HtmlSection& s : sections) {
    o << "<section class=\"" << xml_escape(s.kind) << "\" id=\"" << xml_escape(s.id) << "\">\n<h2>" << xml_escape(s.title)
      << "</h2>\n<p class=\"intro\">" << s.intro << "</p>\n";
    for (const HtmlFigure& f : s.figures)
      o << "<figure class=\"" << (f.id.size() > 6 && f.id.substr(f.id.size() - 6) == "-graph" ? "graph" : "plot")
        << "\" id=\"fig-" << xml_escape(f.id) << "\">\n" << f.svg << "<figcaption>" << xml_escape(f.caption)
        << "</figcaption>\n</figure>\n";
    o << s.tables << "</section>\n";
  }
  o << "<footer>Written by " << xml_escape(tool_name())
    << ". One file: inline SVG and CSS, no external resources.</footer>\n"
       "<script>\n"
       "// Sortable tables: click a header to sort by that column (numbers numerically).\n"
       "document.querySelectorAll('table.sortable th').forEach(function (th) {\n"
       "  th.addEventListener('click', function () {\n"
       "    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;\n"
       "    var asc = th.dataset.asc !== 'true'; th.dataset.asc = asc;\n"
       "    var rows = Array.prototype.slice.call(body.rows);\n"
       "    rows.sort(function (a, b) {\n"
       "      var x = a.cells[col].textContent, y = b.cells[col].textContent, nx = parseFloat(x), ny = parseFloat(y);\n"
       "      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);\n"
       "      return asc ? c : -c;\n"
       "    });\n"
       "    rows.forEach(function (r) { body.appendChild(r); });\n"
       "  });\n"
       "});\n"
       "document.body.dataset.ready = 'true';\n"
       "</script>\n</body>\n</html>\n";
  return o.str();
}

}  // namespace circuitscope
