// Figures as standalone SVG text (no external resources): layer x head heatmaps with colour bars,
// line / stacked-area / scatter charts with a second axis, and the circuit graph laid out by
// Graphviz's library (cgraph + gvc, in-process). Colour scales are perceptually ordered and safe for
// the common colour-vision deficiencies: a viridis-like sequential scale and a blue-white-red
// diverging scale (ColorBrewer RdBu).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace circuitscope {
struct ReportEdges;
}

namespace circuitscope::fig {

std::string sequential_colour(double t);  // t in [0, 1] (clamped) -> "#rrggbb"
std::string diverging_colour(double t);   // t in [-1, 1] (clamped); 0 is white
std::string xml_escape(const std::string& s);

struct Heatmap {
  std::string id;           // unique in the page (prefixes element ids)
  std::string title;
  std::string value_label;  // the colour bar's caption, with units
  int64_t rows = 0, cols = 0;
  std::vector<double> values;        // row-major, rows x cols; NaN: no value (a grey cell)
  bool diverging = false;            // symmetric range centred at 0
  std::optional<double> vmin, vmax;  // default: the data's range (diverging: +-max |v|)
  std::vector<std::string> markers;  // per cell ("" none), e.g. "+" "=" "-"; drawn over the colour
  std::string marker_legend;         // e.g. "+ emergent   = retained   - lost"
  std::string row_label = "layer", col_label = "head";
  int decimals = 3;                  // tooltip and colour bar precision
};
// <svg class="heatmap" id=ID>: one <rect class="cell" data-row data-col data-value> per cell, each
// with a <title> tooltip; row and column labels; a colour bar with min, middle and max ticks.
std::string heatmap_svg(const Heatmap& h);

struct Series {
  std::string name;
  std::vector<double> y;  // NaN: no point
  std::string colour;     // "" : from the palette
};
struct Chart {
  std::string id, title, x_label, y_label, y2_label;
  std::vector<double> x;         // increasing
  std::vector<Series> stacked;   // stacked areas on the left axis, bottom first
  std::vector<Series> lines;     // lines with points on the left axis
  std::optional<Series> line2;   // a dashed line on the right axis
  bool scatter = false;          // lines drawn as points only
  bool log_x = false;
  std::string note;              // one line under the title (e.g. a correlation)
};
// <svg class="chart" id=ID> with axes, ticks, labels and a legend.
std::string chart_svg(const Chart& c);

// The categorical palette (colour-blind safe, Okabe-Ito), cycled.
std::string palette(size_t i);

// Graphviz DOT of a report's circuit (edges with in_graph): nodes grouped by layer (heads of a
// layer on one rank, its MLP above them) and coloured by kind (input, head, MLP, logits); edge
// width ~ |score|, colour by sign (red positive, blue negative: RdBu, as the E heatmaps), style by the
// input entered (q solid, k dashed, v dotted), tooltip: the edge and its score.
std::string circuit_dot(const ReportEdges& edges);
// Lays `dot` out with Graphviz's dot layout and renders it in-process: format svg, png or pdf.
// Error(kUnsupported) for another format; Error(kInput) when Graphviz rejects the graph.
std::string render_dot(const std::string& dot, const std::string& format);

}  // namespace circuitscope::fig
