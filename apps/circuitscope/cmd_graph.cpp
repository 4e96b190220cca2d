// circuitscope graph report.json --out circuit.dot [--svg]
// Graphviz DOT (or SVG through Graphviz's `dot`) of a report's circuit.
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
#include "circuitscope/graph.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct GraphOptions {
  std::string report;
  std::string out;
  bool svg = false;
};

// Edge colours by the input they enter; node fills by kind.
const char* edge_colour(DownstreamKind k) {
  switch (k) {
    case DownstreamKind::kQ: return "#1f77b4";       // blue
    case DownstreamKind::kK: return "#2ca02c";       // green
    case DownstreamKind::kV: return "#9467bd";       // purple
    case DownstreamKind::kMlp: return "#ff7f0e";     // orange
    case DownstreamKind::kLogits: return "#444444";  // dark grey
  }
  return "#000000";
}

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v;
  return s.str();
}

std::string find_on_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    const std::string p = (dir.empty() ? "." : dir) + "/" + prog;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string circuit_dot(const Graph& g, const ReportEdges& r) {
  const auto& sp = g.spec();
  const int64_t G = sp.n_heads / sp.n_kv_heads;
  double max_abs = 0.0;
  for (int64_t e = 0; e < g.n_edges(); ++e)
    if (r.in_graph[e]) max_abs = std::max(max_abs, std::abs(r.scores[e]));
  // Node of a downstream input: the head (q, and k/v per query head), the kv input (per kv head),
  // the MLP, or logits.
  auto down_node = [&](const DownstreamNode& d) {
    if (d.kind == DownstreamKind::kLogits) return std::string("logits");
    if (d.kind == DownstreamKind::kMlp) return "m" + std::to_string(d.layer);
    if (d.kind != DownstreamKind::kQ && sp.kv_edges == KvEdges::kPerKvHead)
      return "a" + std::to_string(d.layer) + ".kv" + std::to_string(d.head);
    return "a" + std::to_string(d.layer) + ".h" + std::to_string(d.head);
  };
  std::set<std::string> nodes;
  std::ostringstream edges;
  for (int64_t e = 0; e < g.n_edges(); ++e) {
    if (!r.in_graph[e]) continue;
    auto [u, d] = g.edge_nodes(e);
    const DownstreamNode& dn = g.downstream()[d];
    const std::string from = g.upstream()[u].name, to = down_node(dn);
    nodes.insert(from);
    nodes.insert(to);
    const double s = r.scores[e];
    const double width = max_abs > 0 ? 1.0 + 4.0 * std::abs(s) / max_abs : 1.0;
    edges << "  \"" << from << "\" -> \"" << to << "\" [color=\"" << edge_colour(dn.kind) << "\", style="
          << (s >= 0 ? "solid" : "dashed") << ", penwidth=" << fmt(width) << ", tooltip=\"" << g.edge_name(e) << " "
          << fmt(s) << "\"];\n";
  }
  std::ostringstream out;
  out << "// circuit: " << nodes.size() << " nodes; edge colour = input (q blue, k green, v purple, mlp orange, "
         "logits grey); solid = positive score, dashed = negative; pen width ~ |score|\n";
  out << "digraph circuit {\n  rankdir=BT;\n  node [style=filled, fontname=\"Helvetica\"];\n";
  for (const std::string& n : nodes) {
    const char* fill = n == "input" ? "#dddddd" : n == "logits" ? "#b2df8a" : n[0] == 'm' ? "#fdd0a2" : "#c6dbef";
    const char* shape = n.find(".h") != std::string::npos ? "ellipse" : "box";
    out << "  \"" << n << "\" [fillcolor=\"" << fill << "\", shape=" << shape << "];\n";
  }
  out << edges.str();
  // A shared kv input feeds the heads of its group that are in the circuit.
  if (sp.kv_edges == KvEdges::kPerKvHead)
    for (const std::string& n : nodes) {
      const size_t p = n.find(".kv");
      if (p == std::string::npos) continue;
      const std::string layer = n.substr(0, p);
      const int64_t kv = std::stoll(n.substr(p + 3));
      for (int64_t h = kv * G; h < (kv + 1) * G; ++h) {
        const std::string head = layer + ".h" + std::to_string(h);
        if (nodes.count(head)) out << "  \"" << n << "\" -> \"" << head << "\" [color=\"#999999\", style=dotted];\n";
      }
    }
  out << "}\n";
  return out.str();
}

int run_graph(const GraphOptions& o) {
  const bool svg = o.svg || (o.out.size() > 4 && o.out.substr(o.out.size() - 4) == ".svg");
  std::string dot_prog;
  if (svg) {
    dot_prog = find_on_path("dot");
    if (dot_prog.empty())
      throw Error(ErrorCode::kUnsupported,
                  "SVG output needs Graphviz's `dot` on PATH (Debian: apt-get install graphviz); it was not found. "
                  "Write DOT instead (--out circuit.dot) and render it elsewhere.");
  }
  const nlohmann::json j = read_json_file(o.report);
  const ReportEdges r = report_edges(j, o.report);
  if (count_edges(r.in_graph) == 0)
    throw Error(ErrorCode::kInput, o.report + ": no edge has in_graph = true; select a circuit first (attribute or "
                                              "evaluate with --top-n, --threshold, --greedy or --selection)");
  const Graph g(r.spec);
  const std::string dot = circuit_dot(g, r);
  if (!svg) {
    write_file_atomically(o.out, dot);
    spdlog::info("wrote {} ({} edges)", o.out, count_edges(r.in_graph));
    return 0;
  }
  const std::string tmp = o.out + ".tmp" + std::to_string(::getpid()) + ".dot";
  write_file_atomically(tmp, dot);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(dot_prog.c_str(), "dot", "-Tsvg", tmp.c_str(), "-o", o.out.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  if (pid > 0) ::waitpid(pid, &status, 0);
  std::remove(tmp.c_str());
  if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(ErrorCode::kIo, "`" + dot_prog + " -Tsvg` failed writing '" + o.out + "'");
  spdlog::info("wrote {} ({} edges)", o.out, count_edges(r.in_graph));
  return 0;
}

CommandRegistrar reg_cmd_graph({"graph", "Graphviz DOT (or SVG) of a report's circuit",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<GraphOptions>();
                        sub->add_option("report", o->report, "report with a circuit (.json)")->required();
                        sub->add_option("--out", o->out, "output .dot (or .svg)")->required();
                        sub->add_flag("--svg", o->svg, "render SVG with Graphviz's dot (also implied by --out *.svg)");
                        sub->footer(
                            "Draws the edges with in_graph = true and their nodes, input at the bottom. Edge colour: "
                            "the input it enters (q blue, k green, v purple, MLP orange, logits grey); solid = "
                            "positive score, dashed = negative; pen width 1 + 4 |score| / max |score|. Nodes: input "
                            "grey, heads blue ellipses, MLPs orange, logits green; per-kv-head graphs draw each "
                            "shared k/v input a{l}.kv{g} as its own box with dotted links to its group's heads.");
                        return [o] { return run_graph(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
