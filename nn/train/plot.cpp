#include "tapegrad/nn/train/plot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/error.hpp"

namespace tg::nn {
namespace {

// matplotlib's default colour cycle, so the figure looks like the tutorial's.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool valid() const { return lo <= hi; }
};

// A step of 1, 2 or 5 times a power of ten giving about `count` intervals over `span`.
double nice_step(double span, int count) {
  const double raw = span / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / power;
  const double nice = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
  return nice * power;
}

// Widens a degenerate range and pads it by 5% so lines do not touch the frame.
Range padded(Range r) {
  if (!r.valid()) return {0.0, 1.0};
  if (r.hi - r.lo < 1e-12) {
    const double d = std::max(std::abs(r.lo) * 0.1, 0.5);
    return {r.lo - d, r.hi + d};
  }
  const double pad = (r.hi - r.lo) * 0.05;
  return {r.lo - pad, r.hi + pad};
}

std::vector<double> ticks(const Range& r, double step) {
  std::vector<double> out;
  for (double t = std::ceil(r.lo / step - 1e-9) * step; t <= r.hi + step * 1e-9; t += step)
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return out;
}

std::string tick_label(double v, double step) {
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return fmt::format("{:.{}f}", v, decimals);
}

}  // namespace

std::string panels_svg(const std::vector<Panel>& panels, const PlotOptions& options) {
  TG_CHECK(!panels.empty(), "panels_svg: no panels to draw");
  TG_CHECK(options.width >= 200 && options.height >= 100 * static_cast<int>(panels.size()),
           "panels_svg: {}x{} pixels is too small for {} panels", options.width, options.height, panels.size());
  const double W = options.width, H = options.height;
  const double left = 90, right = 30, top_gap = 45, bottom = 70, gap = 20;
  const double panel_h =
      (H - bottom - gap * static_cast<double>(panels.size() - 1)) / static_cast<double>(panels.size());
  const double plot_w = W - left - right;

  // The x range is shared by all panels (matplotlib's sharex=True).
  Range xr;
  for (const auto& p : panels)
    for (const auto& s : p.series)
      for (double x : s.x) xr.add(x);
  if (!xr.valid()) xr = {0.0, 1.0};
  if (xr.hi - xr.lo < 1e-12) xr = {xr.lo - 0.5, xr.hi + 0.5};
  const double xpad = (xr.hi - xr.lo) * 0.05;
  const Range xview{xr.lo - xpad, xr.hi + xpad};
  double xstep = nice_step(xview.hi - xview.lo, 6);
  if (options.integer_x) xstep = std::max(1.0, std::round(xstep));

  std::string svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      options.width, options.height);

  std::size_t color_index = 0;
  for (std::size_t pi = 0; pi < panels.size(); ++pi) {
    const Panel& panel = panels[pi];
    const double y0 = static_cast<double>(pi) * (panel_h + gap) + top_gap;  // plot area top
    const double ph = panel_h - top_gap;
    Range yr;
    for (const auto& s : panel.series)
      for (double y : s.y) yr.add(y);
    const Range yview = padded(yr);
    const double ystep = nice_step(yview.hi - yview.lo, 5);
    auto px = [&](double x) { return left + (x - xview.lo) / (xview.hi - xview.lo) * plot_w; };
    auto py = [&](double y) { return y0 + ph - (y - yview.lo) / (yview.hi - yview.lo) * ph; };

    svg += fmt::format(
        "<g class=\"panel\">\n<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"18\" "
        "text-anchor=\"middle\">{}</text>\n",
        left + plot_w / 2, y0 - 14, escape(panel.title));
    // Grid lines and tick labels.
    for (double t : ticks(yview, ystep)) {
      svg += fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#e0e0e0\"/>\n"
          "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{3:.1f}\" y2=\"{1:.1f}\" stroke=\"black\"/>\n"
          "<text x=\"{4:.1f}\" y=\"{5:.1f}\" font-size=\"12\" text-anchor=\"end\">{6}</text>\n",
          left, py(t), left + plot_w, left - 5, left - 8, py(t) + 4, tick_label(t, ystep));
    }
    for (double t : ticks(xview, xstep)) {
      svg += fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#e0e0e0\"/>\n"
          "<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{0:.1f}\" y2=\"{3:.1f}\" stroke=\"black\"/>\n"
          "<text x=\"{0:.1f}\" y=\"{4:.1f}\" font-size=\"12\" text-anchor=\"middle\">{5}</text>\n",
          px(t), y0, y0 + ph, y0 + ph + 5, y0 + ph + 18, tick_label(t, xstep));
    }
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"none\" stroke=\"black\"/>\n",
        left, y0, plot_w, ph);
    if (!panel.y_label.empty()) {
      svg += fmt::format(
          "<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" font-size=\"14\" "
          "text-anchor=\"middle\">{}</text>\n",
          left - 60, y0 + ph / 2, escape(panel.y_label));
    }
    // Lines, with a dot at each point so a single epoch still shows.
    std::vector<std::pair<std::string, std::string>> legend;
    for (const auto& s : panel.series) {
      TG_CHECK(s.x.size() == s.y.size(), "panels_svg: series '{}' has {} x values but {} y values", s.label, s.x.size(),
               s.y.size());
      const std::string color = s.color.empty() ? kPalette[color_index++ % std::size(kPalette)] : s.color;
      legend.emplace_back(s.label, color);
      std::string points;
      auto flush = [&] {
        if (!points.empty())
          svg +=
              fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", color, points);
        points.clear();
      };
      for (std::size_t i = 0; i < s.x.size(); ++i) {
        if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
          flush();
          continue;
        }
        points += fmt::format("{}{:.1f},{:.1f}", points.empty() ? "" : " ", px(s.x[i]), py(s.y[i]));
        svg +=
            fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(s.x[i]), py(s.y[i]), color);
      }
      flush();
    }
    // Legend box.
    if (!legend.empty()) {
      std::size_t longest = 0;
      for (const auto& [label, c] : legend) longest = std::max(longest, label.size());
      const double lw = 50 + 7.5 * static_cast<double>(longest), lh = 8 + 20 * static_cast<double>(legend.size());
      // The corner the lines cross least (matplotlib's loc='best', on sampled line points).
      double lx = 0, ly = 0;
      std::size_t best_hits = std::numeric_limits<std::size_t>::max();
      for (int corner = 0; corner < 4; ++corner) {
        const double cx = corner % 2 == 0 ? left + plot_w - lw - 10 : left + 10;
        const double cy = corner < 2 ? y0 + 10 : y0 + ph - lh - 10;
        std::size_t hits = 0;
        for (const auto& s : panel.series) {
          for (std::size_t i = 0; i + 1 < s.x.size(); ++i) {
            for (int k = 0; k <= 20; ++k) {
              const double t = k / 20.0;
              const double qx = px(s.x[i] + t * (s.x[i + 1] - s.x[i]));
              const double qy = py(s.y[i] + t * (s.y[i + 1] - s.y[i]));
              hits += qx >= cx && qx <= cx + lw && qy >= cy && qy <= cy + lh;
            }
          }
          for (std::size_t i = 0; i < s.x.size(); ++i) {
            const double qx = px(s.x[i]), qy = py(s.y[i]);
            hits += qx >= cx - 5 && qx <= cx + lw + 5 && qy >= cy - 5 && qy <= cy + lh + 5;
          }
        }
        if (hits < best_hits) {
          best_hits = hits;
          lx = cx;
          ly = cy;
        }
      }
      svg += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"white\" "
          "fill-opacity=\"0.8\" stroke=\"#cccccc\" rx=\"3\"/>\n",
          lx, ly, lw, lh);
      for (std::size_t i = 0; i < legend.size(); ++i) {
        const double ry = ly + 16 + 20 * static_cast<double>(i);
        svg += fmt::format(
            "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"/>\n"
            "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"13\">{}</text>\n",
            lx + 8, ry - 4, lx + 34, ry - 4, legend[i].second, lx + 40, ry, escape(legend[i].first));
      }
    }
    svg += "</g>\n";
  }
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
                     left + plot_w / 2, H - 20, escape(options.x_label));
  svg += "</svg>\n";
  return svg;
}

std::string history_svg(const History& history, const PlotOptions& options) {
  std::vector<double> x;
  for (int e : history.epoch()) x.push_back(e + 1);
  auto line = [&](const char* key, std::string label, const char* color) {
    return LineSeries{std::move(label), x, history.at(key), color};
  };
  std::vector<Panel> panels;
  Panel loss{"Loss", "loss", {}};
  if (history.contains("loss")) loss.series.push_back(line("loss", "Train loss", kPalette[0]));
  if (history.contains("val_loss")) loss.series.push_back(line("val_loss", "Validation loss", kPalette[1]));
  if (!loss.series.empty()) panels.push_back(std::move(loss));
  Panel acc{"Accuracy", "accuracy", {}};
  // Keras names the metric as the user did: "accuracy" or "acc".
  const char* acc_key = history.contains("accuracy") ? "accuracy" : "acc";
  const std::string val_acc_key = std::string("val_") + acc_key;
  if (history.contains(acc_key)) acc.series.push_back(line(acc_key, "Train acc", kPalette[0]));
  if (history.contains(val_acc_key)) acc.series.push_back(line(val_acc_key.c_str(), "Validation acc", kPalette[1]));
  if (!acc.series.empty()) panels.push_back(std::move(acc));
  TG_CHECK(!panels.empty(), "history_svg: the history has neither loss nor accuracy (keys: [{}])",
           fmt::join(history.keys(), ", "));
  return panels_svg(panels, options);
}

void save_history_plot(const History& history, const std::string& path, const PlotOptions& options) {
  write_file_atomic(path, history_svg(history, options));
}

}  // namespace tg::nn
