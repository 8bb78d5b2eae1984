#pragma once
// Keras-style training progress:
//   1500/1500 [==============================] - 4s 3ms/step - loss: 0.1234 - accuracy: 0.9630
// updated in place (carriage return) on a terminal, printed once at the end otherwise; or, as
// Keras's verbose=2, one line an epoch without the bar:
//   1500/1500 - 4s - loss: 0.1234 - accuracy: 0.9630 - 4s/epoch - 3ms/step
#include <cstddef>
#include <iosfwd>
#include <string>

#include "tapegrad/nn/train/history.hpp"

namespace tg::nn {

/// Options of ProgressBar.
struct ProgressOptions {
  bool live = true;  ///< redraw in place with '\r' while running (a terminal)
  bool bar = true;   ///< false: the final line without the bar (Keras's verbose=2)
  int width = 30;    ///< characters between the brackets
  /// Columns a live line may take (0: the terminal's width, see terminal_columns): a longer line
  /// would wrap and leave a line behind each redraw, so the bar narrows, then the line is cut.
  int columns = 0;
  double min_interval = 0.05;  ///< seconds between redraws (the last step always draws)
};

/// A progress bar over `target` steps writing to `os`.
class ProgressBar {
 public:
  /// A bar for `target` steps written to `os` (which must outlive it); its clock starts now.
  ProgressBar(std::size_t target, std::ostream& os, ProgressOptions options = {});
  /// Reports that `current` steps are done, with the running metrics; redraws when live.
  void update(std::size_t current, const Logs& logs);
  /// Draws the final line (steps, elapsed, ms/step, `logs`) and ends it with a newline.
  void finish(const Logs& logs);
  /// The line update/finish would draw now (for tests and custom loggers).
  std::string line(std::size_t current, const Logs& logs, bool final) const;
  /// line(current, logs, false) fitted into `columns` - 1 characters: the bar narrows (down to
  /// 10) first, then the end of the line is cut.
  std::string live_line(std::size_t current, const Logs& logs, std::size_t columns) const;

 private:
  std::size_t target_;
  std::ostream& os_;
  ProgressOptions options_;
  double start_;      // seconds on the steady clock
  double last_draw_;  // the same
  std::size_t last_width_ = 0;
  std::size_t current_ = 0;
  std::string draw(std::size_t current, const Logs& logs, bool final, int width) const;
};

/// True when standard output is a terminal (then progress redraws in place).
bool stdout_is_terminal();
/// The width of the terminal on standard output, else $COLUMNS, else 80.
std::size_t terminal_columns();

/// "3ms/step", "250us/step", "2s/step".
std::string format_time_per_step(double seconds);
/// "45s", "2:05", "1:02:03" (as Keras prints ETA).
std::string format_eta(double seconds);
/// " - loss: 0.1234 - accuracy: 0.9630" (scientific notation below 1e-3, as Keras).
std::string format_logs(const Logs& logs);

}  // namespace tg::nn
