// One self-contained HTML page (inline SVG and CSS, a few lines of inline JavaScript for sortable
// tables; nothing fetched) for attribute reports, compare JSON and sweep folders.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace circuitscope {

struct HtmlFigure {
  std::string id;       // unique in the page; also the file name under --svg-dir
  std::string caption;  // what is drawn, with units
  std::string svg;      // a complete <svg> element
};

struct HtmlSection {
  std::string id, title;
  std::string kind;  // "report", "compare" or "sweep"
  std::string intro;                 // one paragraph (HTML-escaped text)
  std::vector<HtmlFigure> figures;
  std::string tables;                // HTML
};

// Figures and tables of one input. An attribute report: the circuit graph (at most `max_graph_edges`
// edges, the largest |score|), the head importance heatmap with circuit markers, the faithfulness
// curve when it has sizes, and tables (top edges, baselines and faithfulness, provenance). A compare
// JSON: base and post importance, E (diverging, with emergent/retained/lost markers), the lists. A
// sweep folder (summary.json and reports/): activation frequency and first-emergence heatmaps, E of
// the last step, the cohort stacked areas with the reward, emergent heads against the reward, and
// the steps table. `id` prefixes the figure ids.
HtmlSection report_section(const nlohmann::json& report, const std::string& path, const std::string& id,
                           int64_t max_graph_edges = 400);
HtmlSection compare_section(const nlohmann::json& comparison, const std::string& path, const std::string& id);
HtmlSection sweep_section(const std::string& dir, const std::string& id);
// Reads `path` and picks the kind: a folder with summary.json is a sweep, JSON with "emergent" a
// comparison, JSON with "edges" an attribute report; Error(kFormat) naming the path otherwise.
HtmlSection section_for_input(const std::string& path, const std::string& id);

// The page: a title, a table of contents, each section's figures and tables, and a footer naming
// the tool. Valid HTML5; every figure's SVG is well-formed XML.
std::string html_page(const std::vector<HtmlSection>& sections, const std::string& title);

}  // namespace circuitscope
