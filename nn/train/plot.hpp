#pragma once
// Standalone SVG line charts: the tutorial's training curves (loss and accuracy, train against
// validation, by epoch) without matplotlib.
#include <string>
#include <vector>

#include "tapegrad/nn/train/history.hpp"

namespace tg::nn {

/// One line of a panel; NaN values leave a gap.
struct LineSeries {
  /// Legend text.
  std::string label;
  /// X coordinates, one per point.
  std::vector<double> x;
  /// Y coordinates, parallel to x (NaN: a gap).
  std::vector<double> y;
  std::string color = "";  ///< CSS colour; empty picks the next of matplotlib's palette
};

/// One chart: a title, a y-axis label and its lines.
struct Panel {
  /// Shown above the chart.
  std::string title;
  /// Label of the y axis (none when empty).
  std::string y_label = "";
  /// The lines, drawn in order.
  std::vector<LineSeries> series;
};

/// Options of the SVG writers.
struct PlotOptions {
  int width = 1200;  ///< pixels (the tutorial's figsize 12x8 at 100 dpi)
  /// Pixels of the whole figure.
  int height = 800;
  /// Label under the x axis, shared by the panels.
  std::string x_label = "Epochs";
  bool integer_x = true;  ///< x ticks on whole numbers only (epochs)
};

/// Panels stacked top to bottom sharing the x label, as one SVG document.
std::string panels_svg(const std::vector<Panel>& panels, const PlotOptions& options = {});

/// The tutorial's figure for `history`: panel "Loss" (loss, val_loss) over panel "Accuracy"
/// (accuracy, val_accuracy), x = epoch number from 1; panels or lines whose metric is absent
/// are left out.
std::string history_svg(const History& history, const PlotOptions& options = {});

/// Writes history_svg to `path` atomically.
void save_history_plot(const History& history, const std::string& path, const PlotOptions& options = {});

}  // namespace tg::nn
