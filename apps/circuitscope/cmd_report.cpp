// circuitscope report INPUT... --out report.html [--svg-dir DIR] [--title T]
// One self-contained HTML page for attribute reports, compare JSON and sweep folders.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "circuitscope/error.hpp"
#include "circuitscope/html_report.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

namespace fs = std::filesystem;

struct ReportOptions {
  std::vector<std::string> inputs;
  std::string out;
  std::string svg_dir;
  std::string title = "circuitscope report";
};

int run_report(const ReportOptions& o) {
  std::vector<HtmlSection> sections;
  for (size_t i = 0; i < o.inputs.size(); ++i) {
    sections.push_back(section_for_input(o.inputs[i], "s" + std::to_string(i + 1)));
    spdlog::info("{}: {} ({} figures)", o.inputs[i], sections.back().kind, sections.back().figures.size());
  }
  write_file_atomically(o.out, html_page(sections, o.title));
  size_t n = 0;
  if (!o.svg_dir.empty()) {
    fs::create_directories(o.svg_dir);
    for (const HtmlSection& s : sections)
      for (const HtmlFigure& f : s.figures) {
        write_file_atomically((fs::path(o.svg_dir) / (f.id + ".svg")).string(),
                              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + f.svg);
        ++n;
      }
  }
  spdlog::info("wrote {}{}", o.out, o.svg_dir.empty() ? "" : " and " + std::to_string(n) + " SVG file(s) in " + o.svg_dir);
  return 0;
}

CommandRegistrar reg_cmd_report(
    {"report", "One self-contained HTML page (inline SVG) for attribute reports, compare JSON and sweep folders",
     [](CLI::App* sub) {
       auto o = std::make_shared<ReportOptions>();
       sub->add_option("inputs", o->inputs, "attribute report (.json), compare JSON, or sweep folder (summary.json)")
           ->required();
       sub->add_option("--out", o->out, "the page (.html)")->required();
       sub->add_option("--svg-dir", o->svg_dir, "also write each figure as its own SVG file here (for papers)");
       sub->add_option("--title", o->title, "page title")->capture_default_str();
       sub->footer(
           "A section per input: an attribute report gives the circuit graph (Graphviz, in-process), the head "
           "importance heatmap, the faithfulness curve and tables (top edges, baselines, provenance); a compare JSON "
           "the importance and E heatmaps with emergent/retained/lost markers; a sweep folder the activation "
           "frequency and first-emergence heatmaps, E at the last step, the cohort plot with the reward, and emergent "
           "heads against the reward. The page fetches nothing: it opens from any folder.");
       return [o] { return run_report(*o); };
     }});

}  // namespace
}  // namespace circuitscope::app
