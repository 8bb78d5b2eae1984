#include "tapegrad/nn/train/progress.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ostream>

#include "tapegrad/autograd/check.hpp"

namespace tg::nn {

namespace {
// Seconds on the steady clock (a double in the header, so that it needs no <chrono>).
double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

ProgressBar::ProgressBar(std::size_t target, std::ostream& os, ProgressOptions options)
    : target_(target), os_(os), options_(options), start_(seconds_now()), last_draw_(start_) {}

void ProgressBar::update(std::size_t current, const Logs& logs) {
  current_ = current;
  if (!options_.live) return;
  const double now = seconds_now();
  const bool due = now - last_draw_ >= options_.min_interval;
  if (!due && current != 1 && current < target_) return;
  last_draw_ = now;
  std::string text =
      live_line(current, logs, options_.columns > 0 ? static_cast<std::size_t>(options_.columns) : terminal_columns());
  // Pad over the remains of a longer previous line.
  const std::size_t width = text.size();
  if (width < last_width_) text.append(last_width_ - width, ' ');
  last_width_ = width;
  os_ << '\r' << text << std::flush;
}

void ProgressBar::finish(const Logs& logs) {
  std::string text = line(target_, logs, true);
  if (options_.live) {
    const std::size_t width = text.size();
    if (width < last_width_) text.append(last_width_ - width, ' ');
    os_ << '\r';
  }
  os_ << text << '\n' << std::flush;
  last_width_ = 0;
}

std::string ProgressBar::line(std::size_t current, const Logs& logs, bool final) const {
  return draw(current, logs, final, options_.width);
}

std::string ProgressBar::live_line(std::size_t current, const Logs& logs, std::size_t columns) const {
  const std::size_t room = std::max<std::size_t>(columns, 2) - 1;  // the last column would wrap on some terminals
  std::string text = draw(current, logs, false, options_.width);
  if (text.size() > room) {
    const auto excess = static_cast<int>(std::min<std::size_t>(text.size() - room, 1000));
    text = draw(current, logs, false, std::max(std::min(options_.width, 10), options_.width - excess));
  }
  if (text.size() > room) text.resize(room);
  return text;
}

std::string ProgressBar::draw(std::size_t current, const Logs& logs, bool final, int width) const {
  const double elapsed = seconds_now() - start_;
  const std::string target_str = std::to_string(target_);
  if (final && !options_.bar) {
    const double per_step = current ? elapsed / static_cast<double>(current) : 0.0;
    return fmt::format("{}/{} - {:.0f}s{} - {:.0f}s/epoch - {}", current, target_str, elapsed, format_logs(logs),
                       elapsed, format_time_per_step(per_step));
  }
  std::string out = fmt::format("{:>{}}/{} [", current, target_str.size(), target_str);
  const int filled =
      target_
          ? static_cast<int>(static_cast<double>(width) * static_cast<double>(current) / static_cast<double>(target_))
          : width;
  if (filled > 0) {
    out.append(static_cast<std::size_t>(filled - 1), '=');
    out += current < target_ ? '>' : '=';
  }
  if (filled < width) out.append(static_cast<std::size_t>(width - filled), '.');
  out += ']';
  const double per_step = current ? elapsed / static_cast<double>(current) : 0.0;
  if (final) {
    out += fmt::format(" - {:.0f}s {}", elapsed, format_time_per_step(per_step));
  } else {
    const double eta = per_step * static_cast<double>(target_ > current ? target_ - current : 0);
    out += " - ETA: " + format_eta(eta);
  }
  out += format_logs(logs);
  return out;
}

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

std::size_t terminal_columns() {
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    char* end = nullptr;
    const long n = std::strtol(columns, &end, 10);
    if (end != columns && *end == '\0' && n > 0) return static_cast<std::size_t>(n);
  }
  return 80;
}

std::string format_time_per_step(double seconds) {
  if (seconds >= 1) return fmt::format("{:.0f}s/step", seconds);
  if (seconds >= 1e-3) return fmt::format("{:.0f}ms/step", seconds * 1e3);
  return fmt::format("{:.0f}us/step", seconds * 1e6);
}

std::string format_eta(double seconds) {
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60);
  if (s >= 60) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string format_logs(const Logs& logs) {
  std::string out;
  for (const auto& [name, value] : logs) {
    if (std::abs(value) > 1e-3 || value == 0.0 || !std::isfinite(value))
      out += fmt::format(" - {}: {:.4f}", name, value);
    else
      out += fmt::format(" - {}: {:.4e}", name, value);
  }
  return out;
}

}  // namespace tg::nn
