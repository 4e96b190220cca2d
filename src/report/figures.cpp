// SVG figures: heatmaps and charts, written as text.
#include "circuitscope/figures.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace circuitscope::fig {

namespace {

struct Rgb {
  double r, g, b;
};

// Viridis at 10 evenly spaced points (the published colour map's values), interpolated linearly.
constexpr Rgb kViridis[] = {{68, 1, 84},    {72, 40, 120},  {62, 73, 137},  {49, 104, 142}, {38, 130, 142},
                            {31, 158, 137}, {53, 183, 121}, {110, 206, 88}, {181, 222, 43}, {253, 231, 37}};
// ColorBrewer RdBu (9 classes), blue for negative.
constexpr Rgb kRdBu[] = {{33, 102, 172}, {67, 147, 195}, {146, 197, 222}, {209, 229, 240}, {247, 247, 247},
                         {253, 219, 199}, {244, 165, 130}, {214, 96, 77},  {178, 24, 43}};

template <size_t N>
std::string interpolate(const Rgb (&stops)[N], double t) {
  if (!std::isfinite(t)) t = 0.0;
  t = std::clamp(t, 0.0, 1.0) * static_cast<double>(N - 1);
  const size_t i = std::min(static_cast<size_t>(t), N - 2);
  const double f = t - static_cast<double>(i);
  auto mix = [&](double a, double b) { return static_cast<int>(std::lround(a + (b - a) * f)); };
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", mix(stops[i].r, stops[i + 1].r), mix(stops[i].g, stops[i + 1].g),
                mix(stops[i].b, stops[i + 1].b));
  return buf;
}

// Black or white text, whichever reads better on `hex`.
const char* ink_on(const std::string& hex) {
  const int r = std::stoi(hex.substr(1, 2), nullptr, 16), g = std::stoi(hex.substr(3, 2), nullptr, 16),
            b = std::stoi(hex.substr(5, 2), nullptr, 16);
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000000" : "#ffffff";
}

std::string num(double v, int decimals) {
  char buf[48];
  if (!std::isfinite(v)) return "n/a";
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Compact tick labels: 3 significant digits, no trailing zeros.
std::string tick(double v) {
  char buf[48];
  if (std::abs(v) >= 1e7 || (std::abs(v) < 1e-3 && v != 0)) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.7g", v);  // training steps such as 87500 in full
  return buf;
}

std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// About `n` round ticks; lo and hi are widened to the ticks at or beyond the data, so that the
// axis covers every value.
std::vector<double> nice_ticks(double& lo, double& hi, int n) {
  if (!(hi > lo)) hi = lo + 1.0;
  const double raw = (hi - lo) / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  lo = std::floor(lo / step + 1e-9) * step;
  hi = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> out;
  for (double v = lo; v <= hi + step * 1e-9; v += step) out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

}  // namespace

std::string sequential_colour(double t) { return interpolate(kViridis, t); }
std::string diverging_colour(double t) { return interpolate(kRdBu, (std::clamp(t, -1.0, 1.0) + 1.0) / 2.0); }

std::string palette(size_t i) {
  // Okabe-Ito without black (black draws the reward line) and with the faint yellow last.
  static const char* kOkabeIto[] = {"#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442"};
  return kOkabeIto[i % 7];
}

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string heatmap_svg(const Heatmap& h) {
  const int64_t R = h.rows, C = h.cols;
  // Cells shrink with the grid so that 36 x 32 heads (Qwen3-8B) fits a page as well as 4 x 8 does.
  const double cell = std::clamp(560.0 / static_cast<double>(std::max<int64_t>(C, 1)), 10.0, 30.0);
  const double left = 58, top = 62, bar_w = 14, gap = 24;
  const double grid_w = cell * static_cast<double>(C), grid_h = cell * static_cast<double>(R);
  const double bar_h = std::max(grid_h, 120.0);
  // Room for the colour bar's ticks and caption, and for a title or legend wider than the grid.
  const double width = std::max({left + grid_w + gap + bar_w + 60 + 6.5 * static_cast<double>(h.value_label.size()) / 2,
                                  left + 8.0 * static_cast<double>(h.title.size()),
                                  left + 6.5 * static_cast<double>(h.marker_legend.size())}),
               height = top + std::max(grid_h, bar_h) + 58;

  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : h.values)
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (!std::isfinite(lo)) lo = hi = 0.0;
  if (h.diverging) {
    const double m = std::max({std::abs(lo), std::abs(hi), 1e-12});
    lo = -m;
    hi = m;
  }
  if (h.vmin) lo = *h.vmin;
  if (h.vmax) hi = *h.vmax;
  if (!(hi > lo)) hi = lo + 1.0;  // constant data: one colour, a readable bar
  const double span = hi > lo ? hi - lo : 1.0;
  auto colour_of = [&](double v) {
    if (h.diverging) return diverging_colour((v - (lo + hi) / 2.0) / (span / 2.0));
    return sequential_colour((v - lo) / span);
  };

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"heatmap\" id=\"" << xml_escape(h.id) << "\" width=\""
    << px(width) << "\" height=\"" << px(height) << "\" viewBox=\"0 0 " << px(width) << " " << px(height)
    << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n";
  o << "<title>" << xml_escape(h.title) << "</title>\n";
  o << "<text x=\"" << px(left) << "\" y=\"18\" font-size=\"14\" font-weight=\"bold\">" << xml_escape(h.title)
    << "</text>\n";
  // Axis labels.
  o << "<text x=\"" << px(left + grid_w / 2) << "\" y=\"" << px(top - 22) << "\" text-anchor=\"middle\">"
    << xml_escape(h.col_label) << "</text>\n";
  o << "<text x=\"14\" y=\"" << px(top + grid_h / 2) << "\" text-anchor=\"middle\" transform=\"rotate(-90 14 "
    << px(top + grid_h / 2) << ")\">" << xml_escape(h.row_label) << "</text>\n";
  const int64_t col_every = cell >= 16 ? 1 : cell >= 12 ? 2 : 4;
  const int64_t row_every = cell >= 12 ? 1 : 2;
  for (int64_t c = 0; c < C; c += col_every)
    o << "<text class=\"col-label\" x=\"" << px(left + (static_cast<double>(c) + 0.5) * cell) << "\" y=\""
      << px(top - 6) << "\" text-anchor=\"middle\" font-size=\"" << (cell >= 14 ? 10 : 8) << "\">" << c << "</text>\n";
  for (int64_t r = 0; r < R; r += row_every)
    o << "<text class=\"row-label\" x=\"" << px(left - 6) << "\" y=\"" << px(top + (static_cast<double>(r) + 0.5) * cell + 3.5)
      << "\" text-anchor=\"end\" font-size=\"" << (cell >= 14 ? 10 : 8) << "\">" << r << "</text>\n";
  // Cells.
  o << "<g class=\"cells\">\n";
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const size_t i = static_cast<size_t>(r * C + c);
      const double v = i < h.values.size() ? h.values[i] : std::numeric_limits<double>::quiet_NaN();
      const bool has = std::isfinite(v);
      const std::string fill = has ? colour_of(v) : std::string("#d9d9d9");
      const std::string marker = i < h.markers.size() ? h.markers[i] : "";
      const double x = left + static_cast<double>(c) * cell, y = top + static_cast<double>(r) * cell;
      o << "<rect class=\"cell\" data-row=\"" << r << "\" data-col=\"" << c << "\" data-value=\""
        << (has ? num(v, 6) : "") << "\" x=\"" << px(x) << "\" y=\"" << px(y) << "\" width=\"" << px(cell)
        << "\" height=\"" << px(cell) << "\" fill=\"" << fill << "\" stroke=\"#ffffff\" stroke-width=\"0.5\"><title>"
        << xml_escape(h.row_label + " " + std::to_string(r) + ", " + h.col_label + " " + std::to_string(c) + ": " +
                      (has ? num(v, h.decimals) : "no value") + (marker.empty() ? "" : " (" + marker + ")"))
        << "</title></rect>\n";
      if (!marker.empty())
        o << "<text class=\"marker\" x=\"" << px(x + cell / 2) << "\" y=\"" << px(y + cell / 2 + cell * 0.18)
          << "\" text-anchor=\"middle\" font-size=\"" << px(std::max(8.0, cell * 0.6)) << "\" font-weight=\"bold\" fill=\""
          << ink_on(fill) << "\" pointer-events=\"none\">" << xml_escape(marker) << "</text>\n";
    }
  o << "</g>\n";
  // Colour bar: 40 bands from hi (top) to lo, ticks at lo, middle and hi.
  const double bx = left + grid_w + gap;
  o << "<g class=\"colour-bar\">\n";
  constexpr int kBands = 40;
  for (int k = 0; k < kBands; ++k) {
    const double v = hi - (static_cast<double>(k) + 0.5) / kBands * (hi - lo);
    o << "<rect x=\"" << px(bx) << "\" y=\"" << px(top + bar_h * k / kBands) << "\" width=\"" << px(bar_w)
      << "\" height=\"" << px(bar_h / kBands + 0.5) << "\" fill=\"" << colour_of(v) << "\"/>\n";
  }
  o << "<rect x=\"" << px(bx) << "\" y=\"" << px(top) << "\" width=\"" << px(bar_w) << "\" height=\"" << px(bar_h)
    << "\" fill=\"none\" stroke=\"#555555\" stroke-width=\"0.5\"/>\n";
  for (int k = 0; k <= 2; ++k) {
    const double v = hi - (hi - lo) * k / 2.0;
    const double y = top + bar_h * k / 2.0;
    o << "<line x1=\"" << px(bx + bar_w) << "\" y1=\"" << px(y) << "\" x2=\"" << px(bx + bar_w + 4) << "\" y2=\"" << px(y)
      << "\" stroke=\"#555555\"/><text class=\"bar-tick\" x=\"" << px(bx + bar_w + 6) << "\" y=\"" << px(y + 3.5) << "\">"
      << num(v, h.decimals) << "</text>\n";
  }
  o << "<text class=\"bar-label\" x=\"" << px(bx) << "\" y=\"" << px(top + bar_h + 16) << "\">"
    << xml_escape(h.value_label) << "</text>\n";
  o << "</g>\n";
  if (!h.marker_legend.empty())
    o << "<text class=\"legend\" x=\"" << px(left) << "\" y=\"" << px(top + std::max(grid_h, bar_h) + 36) << "\">"
      << xml_escape(h.marker_legend) << "</text>\n";
  o << "</svg>\n";
  return o.str();
}

std::string chart_svg(const Chart& c) {
  const size_t n_legend = c.stacked.size() + c.lines.size() + (c.line2 ? 1 : 0);
  const double legend_h = 16.0 * static_cast<double>((n_legend + 2) / 3);  // three entries a row, under the plot
  const double width = 680, left = 64, right = c.line2 ? 70 : 24, top = c.note.empty() ? 40 : 56, bottom = 50 + legend_h,
               height = 300 + top + bottom - 40;
  const double pw = width - left - right, ph = height - top - bottom;
  const double legend_top = top + ph + 44;
  const size_t n = c.x.size();
  auto xv = [&](double x) { return c.log_x ? std::log10(std::max(x, 1e-12)) : x; };
  double x0 = n ? xv(c.x.front()) : 0.0, x1 = n ? xv(c.x.back()) : 1.0;
  if (!(x1 > x0)) {
    x0 -= 0.5;
    x1 += 0.5;
  }
  if (c.scatter) {
    const double pad = 0.06 * (x1 - x0);
    x0 -= pad;
    x1 += pad;
  }
  // Left axis: stacked sums and lines; from 0 when everything is non-negative.
  double ylo = std::numeric_limits<double>::infinity(), yhi = -ylo;
  for (size_t i = 0; i < n; ++i) {
    double sum = 0.0;
    for (const Series& s : c.stacked) sum += i < s.y.size() && std::isfinite(s.y[i]) ? s.y[i] : 0.0;
    if (!c.stacked.empty()) {
      ylo = std::min(ylo, 0.0);
      yhi = std::max(yhi, sum);
    }
    for (const Series& s : c.lines)
      if (i < s.y.size() && std::isfinite(s.y[i])) {
        ylo = std::min(ylo, s.y[i]);
        yhi = std::max(yhi, s.y[i]);
      }
  }
  if (!std::isfinite(ylo)) ylo = 0.0, yhi = 1.0;
  if (ylo > 0 && !c.scatter) ylo = 0.0;
  if (!(yhi > ylo)) yhi = ylo + 1.0;
  if (c.scatter) {  // points off the axes
    const double pad = 0.06 * (yhi - ylo);
    ylo -= pad;
    yhi += pad;
  }
  const std::vector<double> yt = nice_ticks(ylo, yhi, 5);
  auto X = [&](double x) { return left + (xv(x) - x0) / (x1 - x0) * pw; };
  auto Y = [&](double y) { return top + ph - (y - ylo) / (yhi - ylo) * ph; };

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"" << xml_escape(c.id) << "\" width=\"" << px(width)
    << "\" height=\"" << px(height) << "\" viewBox=\"0 0 " << px(width) << " " << px(height)
    << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n";
  o << "<title>" << xml_escape(c.title) << "</title>\n";
  o << "<text x=\"" << px(left) << "\" y=\"18\" font-size=\"14\" font-weight=\"bold\">" << xml_escape(c.title) << "</text>\n";
  if (!c.note.empty()) o << "<text x=\"" << px(left) << "\" y=\"36\" fill=\"#444444\">" << xml_escape(c.note) << "</text>\n";
  // Grid, axes and ticks.
  o << "<g class=\"axes\" stroke=\"#999999\">\n";
  for (double v : yt)
    o << "<line x1=\"" << px(left) << "\" y1=\"" << px(Y(v)) << "\" x2=\"" << px(left + pw) << "\" y2=\"" << px(Y(v))
      << "\" stroke=\"#e6e6e6\"/>\n";
  o << "<line x1=\"" << px(left) << "\" y1=\"" << px(top + ph) << "\" x2=\"" << px(left + pw) << "\" y2=\"" << px(top + ph)
    << "\"/><line x1=\"" << px(left) << "\" y1=\"" << px(top) << "\" x2=\"" << px(left) << "\" y2=\"" << px(top + ph)
    << "\"/>\n</g>\n";
  for (double v : yt)
    o << "<text class=\"y-tick\" x=\"" << px(left - 6) << "\" y=\"" << px(Y(v) + 3.5) << "\" text-anchor=\"end\">" << tick(v)
      << "</text>\n";
  std::vector<double> xt;
  if (c.log_x) {
    // 1-2-5 in each decade; the data's own values when that gives fewer than two ticks.
    for (double d = std::floor(x0); d <= std::ceil(x1); d += 1.0)
      for (double m : {1.0, 2.0, 5.0})
        if (std::log10(m) + d >= x0 - 1e-9 && std::log10(m) + d <= x1 + 1e-9) xt.push_back(m * std::pow(10.0, d));
    if (xt.size() < 2) xt = c.x;
  } else if (n <= 12 && !c.scatter) {
    xt = c.x;
  } else {
    double a = x0, b = x1;
    xt = nice_ticks(a, b, 8);
  }
  for (double v : xt) {
    if (xv(v) < x0 - 1e-9 || xv(v) > x1 + 1e-9) continue;
    o << "<text class=\"x-tick\" x=\"" << px(X(v)) << "\" y=\"" << px(top + ph + 16) << "\" text-anchor=\"middle\">"
      << tick(v) << "</text>\n";
  }
  o << "<text x=\"" << px(left + pw / 2) << "\" y=\"" << px(top + ph + 34) << "\" text-anchor=\"middle\">"
    << xml_escape(c.x_label) << "</text>\n";
  o << "<text x=\"16\" y=\"" << px(top + ph / 2) << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " << px(top + ph / 2)
    << ")\">" << xml_escape(c.y_label) << "</text>\n";

  // Stacked areas, bottom first.
  std::vector<double> base(n, 0.0);
  size_t colour_i = 0;
  std::vector<std::pair<std::string, std::string>> legend;  // (colour, name)
  for (const Series& s : c.stacked) {
    const std::string col = s.colour.empty() ? palette(colour_i++) : s.colour;
    std::vector<double> topv(n);
    for (size_t i = 0; i < n; ++i) topv[i] = base[i] + (i < s.y.size() && std::isfinite(s.y[i]) ? s.y[i] : 0.0);
    if (n == 1) {  // one step: an area has no width, so a bar
      o << "<rect class=\"area\" x=\"" << px(X(c.x[0]) - 15) << "\" y=\"" << px(Y(topv[0])) << "\" width=\"30\" height=\""
        << px(Y(base[0]) - Y(topv[0])) << "\" fill=\"" << col << "\" fill-opacity=\"0.8\"><title>" << xml_escape(s.name)
        << "</title></rect>\n";
    } else {
      o << "<polygon class=\"area\" fill=\"" << col << "\" fill-opacity=\"0.8\" stroke=\"#ffffff\" stroke-width=\"0.5\" points=\"";
      for (size_t i = 0; i < n; ++i) o << px(X(c.x[i])) << "," << px(Y(topv[i])) << " ";
      for (size_t i = n; i-- > 0;) o << px(X(c.x[i])) << "," << px(Y(base[i])) << " ";
      o << "\"><title>" << xml_escape(s.name) << "</title></polygon>\n";
    }
    legend.emplace_back(col, s.name);
    base = topv;
  }
  auto draw_line = [&](const Series& s, const std::function<double(double)>& ymap, const std::string& col, bool dashed) {
    std::string pts;
    for (size_t i = 0; i < n && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) pts += px(X(c.x[i])) + "," + px(ymap(s.y[i])) + " ";
    if (!c.scatter && !pts.empty())
      o << "<polyline class=\"line\" fill=\"none\" stroke=\"" << col << "\" stroke-width=\"2\""
        << (dashed ? " stroke-dasharray=\"6 3\"" : "") << " points=\"" << pts << "\"/>\n";
    for (size_t i = 0; i < n && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i]))
        o << "<circle class=\"point\" cx=\"" << px(X(c.x[i])) << "\" cy=\"" << px(ymap(s.y[i])) << "\" r=\""
          << (c.scatter ? 4.5 : 3) << "\" fill=\"" << col << "\"><title>" << xml_escape(s.name) << ": " << tick(c.x[i])
          << ", " << tick(s.y[i]) << "</title></circle>\n";
  };
  for (const Series& s : c.lines) {
    const std::string col = s.colour.empty() ? palette(colour_i++) : s.colour;
    draw_line(s, Y, col, false);
    legend.emplace_back(col, s.name);
  }
  if (c.line2) {
    double lo2 = std::numeric_limits<double>::infinity(), hi2 = -lo2;
    for (double v : c.line2->y)
      if (std::isfinite(v)) {
        lo2 = std::min(lo2, v);
        hi2 = std::max(hi2, v);
      }
    if (!std::isfinite(lo2)) lo2 = 0.0, hi2 = 1.0;
    if (!(hi2 > lo2)) hi2 = lo2 + 1.0, lo2 -= 1.0;
    const std::vector<double> t2 = nice_ticks(lo2, hi2, 5);
    auto Y2 = [&](double y) { return top + ph - (y - lo2) / (hi2 - lo2) * ph; };
    const std::string col = c.line2->colour.empty() ? "#000000" : c.line2->colour;
    o << "<line x1=\"" << px(left + pw) << "\" y1=\"" << px(top) << "\" x2=\"" << px(left + pw) << "\" y2=\""
      << px(top + ph) << "\" stroke=\"#999999\"/>\n";
    for (double v : t2)
      o << "<text class=\"y2-tick\" x=\"" << px(left + pw + 6) << "\" y=\"" << px(Y2(v) + 3.5) << "\">" << tick(v)
        << "</text>\n";
    o << "<text x=\"" << px(width - 14) << "\" y=\"" << px(top + ph / 2) << "\" text-anchor=\"middle\" transform=\"rotate(90 "
      << px(width - 14) << " " << px(top + ph / 2) << ")\">" << xml_escape(c.y2_label) << "</text>\n";
    draw_line(*c.line2, Y2, col, true);
    legend.emplace_back(col, c.line2->name + " (right axis, dashed)");
  }
  // Legend under the plot, three entries a row.
  for (size_t i = 0; i < legend.size(); ++i) {
    const double lx = left + static_cast<double>(i % 3) * (pw / 3), ly = legend_top + 16.0 * static_cast<double>(i / 3);
    o << "<g class=\"legend-item\"><rect x=\"" << px(lx) << "\" y=\"" << px(ly) << "\" width=\"10\" height=\"10\" fill=\""
      << legend[i].first << "\"/><text x=\"" << px(lx + 14) << "\" y=\"" << px(ly + 9) << "\">" << xml_escape(legend[i].second)
      << "</text></g>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace circuitscope::fig
