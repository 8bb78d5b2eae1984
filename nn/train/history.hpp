#pragma once
// What fit() returns and callbacks see: named metrics per epoch, in the order they appeared.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tg::nn {

/// Named metric values of one batch or epoch ("loss", "accuracy", "val_loss", ...), kept in
/// insertion order so that progress lines and CSV columns read like Keras's.
class Logs {
 public:
  /// A (name, value) pair.
  using Entry = std::pair<std::string, double>;
  Logs() = default;
  /// Entries in order: Logs{{"loss", 0.25}, {"accuracy", 0.9}}.
  Logs(std::initializer_list<Entry> entries);

  /// Sets `name` (replacing its value, or appending it).
  void set(std::string_view name, double value);
  /// The value of `name`, or nullopt.
  std::optional<double> get(std::string_view name) const;
  /// The value of `name`; throws tg::Error naming the keys present.
  double at(std::string_view name) const;
  /// Whether `name` is present.
  bool contains(std::string_view name) const { return get(name).has_value(); }
  /// The names in insertion order.
  std::vector<std::string> keys() const;
  /// Number of entries.
  std::size_t size() const { return entries_.size(); }
  /// Whether there is no entry.
  bool empty() const { return entries_.empty(); }
  /// The (name, value) entries in insertion order, for range-for.
  auto begin() const { return entries_.begin(); }
  /// The end of the entries.
  auto end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
};

/// Per-epoch metrics of a training run, like Keras's History: `epoch` (0-based, as Keras) and
/// one series per metric name.
class History {
 public:
  /// Records epoch `epoch`'s logs; every key gets one value per recorded epoch.
  void append(int epoch, const Logs& logs);
  /// The epochs recorded, 0-based.
  const std::vector<int>& epoch() const { return epoch_; }
  /// The series of `name` (one value per epoch); throws tg::Error naming the keys present.
  const std::vector<double>& at(std::string_view name) const;
  /// at(name).
  const std::vector<double>& operator[](std::string_view name) const { return at(name); }
  /// Whether a series `name` was recorded.
  bool contains(std::string_view name) const;
  /// Metric names in the order they first appeared ("loss", "accuracy", "val_loss", ...).
  const std::vector<std::string>& keys() const { return keys_; }
  /// Number of epochs recorded.
  std::size_t size() const { return epoch_.size(); }
  /// Whether no epoch was recorded.
  bool empty() const { return epoch_.empty(); }
  /// Writes "epoch,loss,accuracy,..." with one row per epoch, atomically (temp file + rename).
  void save_csv(const std::string& path) const;
  /// The CSV text save_csv writes.
  std::string to_csv() const;

 private:
  std::vector<int> epoch_;
  std::vector<std::string> keys_;
  std::vector<std::vector<double>> values_;  // parallel to keys_
};

/// Writes `content` to `path` through a temporary file in the same directory and a rename, so
/// readers never see a half-written file; throws tg::Error naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace tg::nn
