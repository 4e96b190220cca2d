// Figures (include/circuitscope/figures.hpp) and the HTML page (html_report.hpp): the SVG is parsed
// as XML and its cells, colours and labels are checked against values worked out here.
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/figures.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/html_report.hpp"
#include "circuitscope/report.hpp"
#include "test_util.hpp"
#include "xml_lite.hpp"

using namespace circuitscope;
using nlohmann::json;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A hand-made report on a 2-layer, 2-head graph with a five-edge circuit.
json hand_report() {
  Graph g({2, 2, 1, KvEdges::kPerQueryHead});
  json r;
  r["schema_version"] = 2;
  r["tool"] = "circuitscope test";
  r["model"] = {{"path", "/m"}, {"architecture", "Qwen2ForCausalLM"}, {"n_layers", 2}, {"n_heads", 2}, {"n_kv_heads", 1},
                {"fingerprint", "fnv1a64:0123"}};
  r["dataset"] = {{"path", "/d.jsonl"}, {"sha256", "ab12"}, {"examples", 4}, {"skipped", 0}};
  r["method"] = {{"name", "eap-ig-inputs"}, {"metric", "logit-diff"}, {"kv_edges", "per-query-head"}, {"loss", false}};
  r["baselines"] = {{"clean", 2.0}, {"corrupted", -1.0}};
  for (int64_t e = 0; e < g.n_edges(); ++e) r["edges"][g.edge_name(e)] = {{"score", 0.01}, {"in_graph", false}};
  for (const auto& [n, s] : std::map<std::string, double>{{"input->a0.h1<k>", 0.5}, {"a0.h1->m1", -2.0},
                                                           {"m1->logits", 1.0}, {"a0.h1->a1.h0<v>", 0.25},
                                                           {"a1.h0->logits", 0.5}})
    r["edges"][n] = {{"score", s}, {"in_graph", true}};
  r["heads"] = json::array({{{"layer", 0}, {"head", 0}, {"importance", 0.0}, {"in_circuit", false}},
                            {{"layer", 0}, {"head", 1}, {"importance", 0.8}, {"in_circuit", true}},
                            {{"layer", 1}, {"head", 0}, {"importance", 0.2}, {"in_circuit", true}},
                            {{"layer", 1}, {"head", 1}, {"importance", 0.0}, {"in_circuit", false}}});
  r["faithfulness"] = {{"intervention", "patch"}, {"clean", 2.0}, {"corrupted", -1.0}, {"circuit", 1.4},
                       {"normalized", 0.8},
                       {"sizes", json::array({{{"top_n", 1}, {"edges", 1}, {"circuit", 0.0}, {"normalized", 0.33}},
                                              {{"top_n", 10}, {"edges", 5}, {"circuit", 1.4}, {"normalized", 0.8}}})}};
  return r;
}
}  // namespace

TEST_CASE("figures: colour scales end at viridis' and RdBu's published colours", "[figures]") {
  REQUIRE(fig::sequential_colour(0.0) == "#440154");
  REQUIRE(fig::sequential_colour(1.0) == "#fde725");
  REQUIRE(fig::sequential_colour(2.0) == "#fde725");  // clamped
  REQUIRE(fig::sequential_colour(0.5) == "#23908c");  // halfway between stops 4 (38,130,142) and 5 (31,158,137)
  REQUIRE(fig::diverging_colour(-1.0) == "#2166ac");
  REQUIRE(fig::diverging_colour(0.0) == "#f7f7f7");
  REQUIRE(fig::diverging_colour(1.0) == "#b2182b");
  REQUIRE(fig::xml_escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;");
}

TEST_CASE("figures: a heatmap of known values has its cells, colours, tooltips, labels and colour bar", "[figures]") {
  fig::Heatmap h;
  h.id = "hm";
  h.title = "Importance <test>";
  h.value_label = "importance (share)";
  h.rows = 2;
  h.cols = 3;
  h.values = {0.0, 0.5, 1.0, kNaN, 0.25, 0.75};
  h.markers = {"", "", "+", "", "-", ""};
  h.marker_legend = "+ emergent - lost";
  const auto svg = cs_test::parse_xml(fig::heatmap_svg(h));
  REQUIRE(svg->name == "svg");
  REQUIRE(svg->attr("id") == "hm");
  std::vector<const cs_test::XmlNode*> cells;
  for (const auto* r : svg->all("rect"))
    if (r->attr("class") == "cell") cells.push_back(r);
  REQUIRE(cells.size() == 6);
  // Cell (r, c) in row-major order; colours on the data's range [0, 1].
  REQUIRE(cells[0]->attr("data-row") == "0");
  REQUIRE(cells[0]->attr("data-col") == "0");
  REQUIRE(cells[0]->attr("fill") == "#440154");
  REQUIRE(cells[2]->attr("fill") == "#fde725");
  REQUIRE(cells[1]->attr("fill") == fig::sequential_colour(0.5));
  REQUIRE(cells[3]->attr("fill") == "#d9d9d9");  // no value
  REQUIRE(cells[3]->attr("data-value").empty());
  REQUIRE(cells[4]->attr("data-value") == "0.250000");
  REQUIRE(cells[5]->attr("data-row") == "1");
  REQUIRE(cells[5]->attr("data-col") == "2");
  REQUIRE(cells[2]->all("title")[0]->text == "layer 0, head 2: 1.000 (+)");
  REQUIRE(cells[3]->all("title")[0]->text == "layer 1, head 0: no value");
  std::vector<std::string> markers, row_labels, col_labels, ticks, texts;
  for (const auto* t : svg->all("text")) {
    texts.push_back(t->text);
    if (t->attr("class") == "marker") markers.push_back(t->text);
    if (t->attr("class") == "row-label") row_labels.push_back(t->text);
    if (t->attr("class") == "col-label") col_labels.push_back(t->text);
    if (t->attr("class") == "bar-tick") ticks.push_back(t->text);
  }
  REQUIRE(markers == std::vector<std::string>{"+", "-"});
  REQUIRE(row_labels == std::vector<std::string>{"0", "1"});
  REQUIRE(col_labels == std::vector<std::string>{"0", "1", "2"});
  REQUIRE(ticks == std::vector<std::string>{"1.000", "0.500", "0.000"});
  REQUIRE(std::find(texts.begin(), texts.end(), "Importance <test>") != texts.end());  // escaped, then decoded
  REQUIRE(std::find(texts.begin(), texts.end(), "importance (share)") != texts.end());
  REQUIRE(std::find(texts.begin(), texts.end(), "layer") != texts.end());

  // Diverging: symmetric about 0 whatever the data's range.
  h.diverging = true;
  h.values = {-2.0, 0.0, 1.0, 2.0, kNaN, -1.0};
  const auto d = cs_test::parse_xml(fig::heatmap_svg(h));
  std::vector<std::string> fills;
  for (const auto* r : d->all("rect"))
    if (r->attr("class") == "cell") fills.push_back(r->attr("fill"));
  REQUIRE(fills[0] == "#2166ac");
  REQUIRE(fills[1] == "#f7f7f7");
  REQUIRE(fills[2] == fig::diverging_colour(0.5));
  REQUIRE(fills[3] == "#b2182b");
  REQUIRE(fills[5] == fig::diverging_colour(-0.5));

  // 36 x 32 heads (Qwen3-8B): every cell drawn, no smaller than 10 px, labels thinned.
  h.rows = 36;
  h.cols = 32;
  h.values.assign(36 * 32, 0.5);
  h.markers.clear();
  const auto big = cs_test::parse_xml(fig::heatmap_svg(h));
  int64_t n = 0;
  for (const auto* r : big->all("rect"))
    if (r->attr("class") == "cell") {
      ++n;
      REQUIRE(std::stod(r->attr("width")) >= 10.0);
    }
  REQUIRE(n == 36 * 32);
}

TEST_CASE("figures: charts draw stacked areas, lines, a right axis and a legend", "[figures]") {
  fig::Chart c;
  c.id = "ch";
  c.title = "Cohorts";
  c.x_label = "training step";
  c.y_label = "heads";
  c.y2_label = "reward";
  c.x = {100, 200, 300};
  c.stacked = {{"first at 100", {2, 2, 1}, ""}, {"first at 200", {0, 3, 3}, ""}};
  c.line2 = fig::Series{"reward", {0.1, kNaN, 0.5}, "#000000"};
  const auto svg = cs_test::parse_xml(fig::chart_svg(c));
  REQUIRE(svg->all("polygon").size() == 2);
  REQUIRE(svg->all("polyline").size() == 1);
  REQUIRE(svg->all("polyline")[0]->attr("stroke-dasharray") == "6 3");
  REQUIRE(svg->all("circle").size() == 2);  // the NaN point is left out
  std::vector<std::string> legend, xt;
  for (const auto* g : svg->all("g"))
    if (g->attr("class") == "legend-item") legend.push_back(g->all("text")[0]->text);
  for (const auto* t : svg->all("text"))
    if (t->attr("class") == "x-tick") xt.push_back(t->text);
  REQUIRE(legend == std::vector<std::string>{"first at 100", "first at 200", "reward (right axis, dashed)"});
  REQUIRE(xt == std::vector<std::string>{"100", "200", "300"});
  // The stacked total (5 at step 200) is on the left axis.
  double top_tick = 0;
  for (const auto* t : svg->all("text"))
    if (t->attr("class") == "y-tick") top_tick = std::max(top_tick, std::stod(t->text));
  REQUIRE(top_tick >= 5.0);
}

TEST_CASE("figures: the circuit graph from Graphviz's library, and the HTML page", "[figures]") {
  const json r = hand_report();
  const ReportEdges e = report_edges(r, "hand.json");
  const auto svg = cs_test::parse_xml(fig::render_dot(fig::circuit_dot(e), "svg"));
  std::vector<std::string> titles;
  for (const auto* t : svg->all("title")) titles.push_back(t->text);
  for (const char* n : {"input", "a0.h1", "a1.h0", "m1", "logits", "_layer0", "_layer1"})
    REQUIRE(std::find(titles.begin(), titles.end(), n) != titles.end());
  REQUIRE(fig::render_dot(fig::circuit_dot(e), "png").rfind("\x89PNG", 0) == 0);
  REQUIRE_THROWS_AS(fig::render_dot("digraph {", "svg"), Error);
  REQUIRE_THROWS_AS(fig::render_dot(fig::circuit_dot(e), "gif"), Error);

  const HtmlSection s = report_section(r, "hand.json", "r1");
  std::vector<std::string> ids;
  for (const auto& f : s.figures) ids.push_back(f.id);
  REQUIRE(ids == std::vector<std::string>{"r1-graph", "r1-importance", "r1-faithfulness"});
  const std::string page = html_page({s}, "test <page>");
  REQUIRE(page.rfind("<!DOCTYPE html>", 0) == 0);
  REQUIRE(page.find("<title>test &lt;page&gt;</title>") != std::string::npos);
  // Self-contained: no external scripts, styles or images.
  REQUIRE(page.find("src=") == std::string::npos);
  REQUIRE(page.find("<link") == std::string::npos);
  REQUIRE(page.find("@import") == std::string::npos);
  // Every inline SVG is well-formed XML.
  const std::regex svg_re("<svg[\\s\\S]*?</svg>");
  int64_t n = 0;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), svg_re); it != std::sregex_iterator(); ++it, ++n)
    REQUIRE_NOTHROW(cs_test::parse_xml(it->str()));
  REQUIRE(n == 3);
  // The tables: the top edge, the baselines and the provenance.
  REQUIRE(page.find("<td>a0.h1-&gt;m1</td><td>-2</td><td>yes</td>") != std::string::npos);
  REQUIRE(page.find("fnv1a64:0123") != std::string::npos);
  REQUIRE(page.find("faithfulness (normalized)</th><td>0.8</td>") != std::string::npos);
  // A file that is neither kind is refused, naming it.
  cs_test::TempDir tmp("fig");
  const std::string other = cs_test::write_file(tmp.path, "other.json", "{\"x\": 1}");
  try {
    section_for_input(other, "x");
    FAIL("accepted");
  } catch (const Error& err) {
    REQUIRE(std::string(err.what()).find("other.json: neither") != std::string::npos);
  }
}

TEST_CASE("figures: report, compare --html and graph from the command line", "[figures][cli]") {
  cs_test::TempDir tmp("figcli");
  json base = hand_report(), post = hand_report();
  post["model"]["fingerprint"] = "fnv1a64:4567";
  post["heads"][0]["in_circuit"] = true;  // a0.h0 emerges
  post["heads"][0]["importance"] = 0.3;
  post["heads"][2]["in_circuit"] = false;  // a1.h0 is lost
  const std::string b = cs_test::write_file(tmp.path, "base.json", base.dump());
  const std::string p = cs_test::write_file(tmp.path, "post.json", post.dump());
  const std::string cs = cs_test::binary_path() + " ";
  std::string out;
  REQUIRE(cs_test::run_command(cs + "compare " + b + " " + p + " --out " + tmp.path + "/cmp.json --html " + tmp.path +
                                   "/cmp.html",
                               out) == 0);
  std::ifstream f(tmp.path + "/cmp.html");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string page = ss.str();
  REQUIRE(page.find("id=\"fig-s1-effect\"") != std::string::npos);
  REQUIRE(page.find("<caption>emergent heads (1)</caption>") != std::string::npos);
  REQUIRE(page.find("<td>a0.h0</td>") != std::string::npos);
  // report: a report and the comparison on one page, each figure also as its own SVG file.
  REQUIRE(cs_test::run_command(cs + "report " + p + " " + tmp.path + "/cmp.json --out " + tmp.path +
                                   "/page.html --svg-dir " + tmp.path + "/svg",
                               out) == 0);
  INFO(out);
  for (const char* id : {"s1-graph", "s1-importance", "s1-faithfulness", "s2-importance-base", "s2-importance-post",
                         "s2-effect"}) {
    std::ifstream svg(tmp.path + "/svg/" + id + ".svg");
    REQUIRE(svg.good());
    std::stringstream s;
    s << svg.rdbuf();
    REQUIRE_NOTHROW(cs_test::parse_xml(s.str()));
  }
  REQUIRE(cs_test::run_command(cs + "report " + tmp.path + " --out " + tmp.path + "/x.html", out) ==
          static_cast<int>(ErrorCode::kFormat));
  REQUIRE(out.find("has no summary.json") != std::string::npos);
}
