#include "tapegrad/nn/train/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <ostream>

namespace tg::nn {

ProgressBar::ProgressBar(std::size_t target, std::ostream& os, ProgressOptions options)
    : target_(target), os_(os), options_(options), start_(Clock::now()), last_draw_(start_) {}

void ProgressBar::update(std::size_t current, const Logs& logs) {
  current_ = current;
  if (!options_.live) return;
  const auto now = Clock::now();
  const bool due = std::chrono::duration<double>(now - last_draw_).count() >= options_.min_interval;
  if (!due && current != 1 && current < target_) return;
  last_draw_ = now;
  std::string text = line(current, logs, false);
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
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const std::string target_str = std::to_string(target_);
  std::string out = fmt::format("{:>{}}/{} [", current, target_str.size(), target_str);
  const int width = options_.width;
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
