// circuitscope graph report.json --out circuit.{dot,svg,png,pdf} [--format F]
// The circuit of a report as Graphviz DOT, or laid out and rendered by Graphviz's library.
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "circuit_options.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/figures.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct GraphOptions {
  std::string report;
  std::string out;
  std::string format;  // dot | svg | png | pdf; default from the --out extension
  bool svg = false;    // --svg: the older spelling of --format svg
};

int run_graph(const GraphOptions& o) {
  std::string format = o.format;
  if (o.svg) {
    if (!format.empty() && format != "svg") throw Error(ErrorCode::kUsage, "--svg and --format " + format + " disagree");
    format = "svg";
  }
  if (format.empty()) {
    const auto dot = o.out.rfind('.');
    format = dot == std::string::npos ? "dot" : o.out.substr(dot + 1);
    if (format != "svg" && format != "png" && format != "pdf") format = "dot";
  }
  const nlohmann::json j = read_json_file(o.report);
  const ReportEdges r = report_edges(j, o.report);
  if (count_edges(r.in_graph) == 0)
    throw Error(ErrorCode::kInput, o.report + ": no edge has in_graph = true; select a circuit first (attribute or "
                                              "evaluate with --top-n, --threshold, --greedy or --selection)");
  const std::string dot = fig::circuit_dot(r);
  write_file_atomically(o.out, format == "dot" ? dot : fig::render_dot(dot, format));
  spdlog::info("wrote {} ({}, {} edges)", o.out, format, count_edges(r.in_graph));
  return 0;
}

CommandRegistrar reg_cmd_graph({"graph", "The circuit of a report: Graphviz DOT, or SVG/PNG/PDF rendered in-process",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<GraphOptions>();
                        sub->add_option("report", o->report, "report with a circuit (.json)")->required();
                        sub->add_option("--out", o->out, "output file (.dot, .svg, .png or .pdf)")->required();
                        sub->add_option("--format", o->format, "dot | svg | png | pdf (default: from the --out extension, else dot)")
                            ->check(CLI::IsMember({"dot", "svg", "png", "pdf"}));
                        sub->add_flag("--svg", o->svg, "the same as --format svg");
                        sub->footer(
                            "Draws the edges with in_graph = true and their nodes, input at the bottom, grouped by layer "
                            "(a labelled row per layer's heads, its MLP above, layers in order). Edge colour: the score's sign (red "
                            "positive, blue negative); width 0.8 + 4.2 |score| / max |score|; style: the input it "
                            "enters (q solid, k dashed, v dotted). Nodes: input grey, heads blue ellipses, MLPs "
                            "orange, logits green; per-kv-head graphs draw each shared k/v input a{l}.kv{g} as its "
                            "own box with dotted links to its group's heads. SVG, PNG and PDF are laid out and "
                            "rendered by Graphviz's library in-process (no `dot` program needed).");
                        return [o] { return run_graph(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
