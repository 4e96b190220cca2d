// The circuit graph: DOT from a report's edges, laid out and rendered by Graphviz's library.
#include <gvc.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "circuitscope/error.hpp"
#include "circuitscope/figures.hpp"
#include "circuitscope/graph.hpp"
#include "circuitscope/report.hpp"

namespace circuitscope::fig {

namespace {

std::string fmt4(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v;
  return s.str();
}

const char* input_style(DownstreamKind k) {
  switch (k) {
    case DownstreamKind::kK: return "dashed";
    case DownstreamKind::kV: return "dotted";
    default: return "solid";
  }
}

}  // namespace

std::string circuit_dot(const ReportEdges& r) {
  const Graph g(r.spec);
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
    const double width = max_abs > 0 ? 0.8 + 4.2 * std::abs(s) / max_abs : 1.0;
    edges << "  \"" << from << "\" -> \"" << to << "\" [color=\"" << (s >= 0 ? "#b2182b" : "#2166ac")
          << "\", style=" << input_style(dn.kind) << ", penwidth=" << fmt4(width) << ", tooltip=\"" << g.edge_name(e)
          << " " << fmt4(s) << "\"];\n";
  }
  // Layer of a node name: a{l}.h{h}, a{l}.kv{g}, m{l}; -1 for input and logits.
  auto layer_of = [](const std::string& n) -> int64_t {
    if (n[0] == 'a' || n[0] == 'm') return std::stoll(n.substr(1, n.find('.') == std::string::npos ? std::string::npos : n.find('.') - 1));
    return -1;
  };
  auto index_of = [](const std::string& n) { return std::stoll(n.substr(n.find_last_not_of("0123456789") + 1)); };
  // Per layer three rows, bottom to top: its shared k/v inputs, its heads, its MLP.
  std::map<int64_t, std::vector<std::string>> kv_by_layer, heads_by_layer, mlp_by_layer;
  for (const std::string& n : nodes) {
    if (n[0] == 'm') mlp_by_layer[layer_of(n)].push_back(n);
    else if (n.find(".kv") != std::string::npos) kv_by_layer[layer_of(n)].push_back(n);
    else if (n[0] == 'a') heads_by_layer[layer_of(n)].push_back(n);
  }
  for (auto* m : {&kv_by_layer, &heads_by_layer})
    for (auto& [l, v] : *m)
      std::sort(v.begin(), v.end(), [&](const std::string& a, const std::string& b) { return index_of(a) < index_of(b); });

  std::ostringstream out;
  out << "// circuit: " << nodes.size() << " nodes, a row per layer's heads (labelled) with its MLP above; edge "
         "colour = sign (red positive, blue negative, as RdBu), width ~ |score|, style = the input it enters (q solid, k "
         "dashed, v dotted)\n";
  out << "digraph circuit {\n  rankdir=BT;\n  newrank=true;\n  bgcolor=\"white\";\n  nodesep=0.15;\n"
         "  node [style=filled, fontname=\"Helvetica\", fontsize=11, color=\"#555555\"];\n"
         "  edge [arrowsize=0.6];\n";
  auto node_line = [&](const std::string& n) {
    const bool head = n.find(".h") != std::string::npos;
    const char* fill = n == "input" ? "#d9d9d9" : n == "logits" ? "#a1d99b" : n[0] == 'm' ? "#fdae6b" : "#9ecae1";
    return "\"" + n + "\" [fillcolor=\"" + fill + "\", shape=" + (head ? "ellipse" : "box") + "];";
  };
  // Rows are ordered by a chain of anchors (invisible, or the layer's label) from input to logits,
  // so that layer l + 1 is always drawn above layer l.
  std::vector<std::string> chain{"input"};
  out << "  " << node_line("input") << "\n";
  std::set<int64_t> layers;
  for (const auto* m : {&kv_by_layer, &heads_by_layer, &mlp_by_layer})
    for (const auto& [l, v] : *m) layers.insert(l);
  for (int64_t l : layers) {
    auto row = [&](const std::string& anchor, const std::string& anchor_attrs, const std::vector<std::string>& members) {
      out << "  { rank=same; \"" << anchor << "\" [" << anchor_attrs << "];";
      for (const std::string& n : members) out << " " << node_line(n);
      out << " }\n";
      chain.push_back(anchor);
    };
    const std::string L = std::to_string(l);
    if (kv_by_layer.count(l)) row("_kv" + L, "style=invis, shape=point, width=0, label=\"\"", kv_by_layer[l]);
    row("_layer" + L, "shape=plaintext, style=\"\", fontcolor=\"#777777\", label=\"layer " + L + "\"",
        heads_by_layer.count(l) ? heads_by_layer[l] : std::vector<std::string>{});
    if (mlp_by_layer.count(l)) row("_mlp" + L, "style=invis, shape=point, width=0, label=\"\"", mlp_by_layer[l]);
  }
  out << "  " << node_line("logits") << "\n";
  chain.push_back("logits");
  for (size_t i = 0; i + 1 < chain.size(); ++i)
    out << "  \"" << chain[i] << "\" -> \"" << chain[i + 1] << "\" [style=invis];\n";
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

std::string render_dot(const std::string& dot, const std::string& format) {
  if (format != "svg" && format != "png" && format != "pdf")
    throw Error(ErrorCode::kUnsupported, "graph format '" + format + "': expected dot, svg, png or pdf");
  // One context per call: Graphviz keeps global state, and a figure is rendered rarely.
  std::unique_ptr<GVC_t, int (*)(GVC_t*)> gvc(gvContext(), gvFreeContext);
  if (!gvc) throw Error(ErrorCode::kInternal, "Graphviz: gvContext failed");
  // Keep Graphviz's messages for the exception instead of printing them; restored on return.
  struct ErrLevel {
    agerrlevel_t before = agseterr(AGMAX);
    ~ErrLevel() { agseterr(before); }
  } err_level;
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> g(agmemread(dot.c_str()), agclose);
  if (!g) {
    char* msg = aglasterr();  // malloc'ed by cgraph
    std::string text = msg ? msg : "";
    std::free(msg);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    throw Error(ErrorCode::kInput, "Graphviz could not parse the circuit's DOT" + (text.empty() ? "" : ": " + text));
  }
  if (gvLayout(gvc.get(), g.get(), "dot") != 0)
    throw Error(ErrorCode::kInternal, "Graphviz: the dot layout failed (is libgvplugin_dot_layout installed?)");
  char* data = nullptr;
  unsigned int len = 0;
  const int rc = gvRenderData(gvc.get(), g.get(), format.c_str(), &data, &len);
  std::string out = rc == 0 && data ? std::string(data, len) : std::string();
  if (data) gvFreeRenderData(data);
  gvFreeLayout(gvc.get(), g.get());
  if (rc != 0)
    throw Error(ErrorCode::kUnsupported, "Graphviz cannot render '" + format + "' here (missing render plugin?)");
  return out;
}

}  // namespace circuitscope::fig
