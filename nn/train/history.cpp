#include "tapegrad/nn/train/history.hpp"

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <system_error>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/detail/atomic_file.hpp"
#include "tapegrad/autograd/error.hpp"

namespace tg::nn {

Logs::Logs(std::initializer_list<Entry> entries) {
  for (const auto& [name, value] : entries) set(name, value);
}

void Logs::set(std::string_view name, double value) {
  for (auto& e : entries_) {
    if (e.first == name) {
      e.second = value;
      return;
    }
  }
  entries_.emplace_back(std::string(name), value);
}

std::optional<double> Logs::get(std::string_view name) const {
  for (const auto& e : entries_)
    if (e.first == name) return e.second;
  return std::nullopt;
}

std::vector<std::string> Logs::keys() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.first);
  return out;
}

double Logs::at(std::string_view name) const {
  auto v = get(name);
  TG_CHECK(v.has_value(), "Logs: no metric '{}'; present: [{}]", name, fmt::join(keys(), ", "));
  return *v;
}

void History::append(int epoch, const Logs& logs) {
  for (const auto& [name, value] : logs) {
    std::size_t i = 0;
    while (i < keys_.size() && keys_[i] != name) ++i;
    if (i == keys_.size()) {
      // A metric first seen late (e.g. val_loss only from some epoch on) is NaN before.
      keys_.push_back(name);
      values_.emplace_back(epoch_.size(), std::nan(""));
    }
    values_[i].push_back(value);
  }
  epoch_.push_back(epoch);
  for (auto& series : values_)
    if (series.size() < epoch_.size()) series.push_back(std::nan(""));
}

const std::vector<double>& History::at(std::string_view name) const {
  for (std::size_t i = 0; i < keys_.size(); ++i)
    if (keys_[i] == name) return values_[i];
  detail::fail("History: no metric '{}'; recorded: [{}]", name, fmt::join(keys_, ", "));
}

bool History::contains(std::string_view name) const {
  for (const auto& k : keys_)
    if (k == name) return true;
  return false;
}

std::string History::to_csv() const {
  std::string out = "epoch";
  for (const auto& k : keys_) out += "," + k;
  out += "\n";
  for (std::size_t r = 0; r < epoch_.size(); ++r) {
    out += std::to_string(epoch_[r]);
    // fmt's default is the shortest text that reads back as the same double.
    for (const auto& series : values_) out += fmt::format(",{}", series[r]);
    out += "\n";
  }
  return out;
}

void History::save_csv(const std::string& path) const { write_file_atomic(path, to_csv()); }

void write_file_atomic(const std::string& path, std::string_view content) {
  tg::detail::write_file_atomic(path, content, "write_file_atomic");
}

}  // namespace tg::nn
