#include "tapegrad/nn/train/callbacks.hpp"

#include <fmt/args.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/error.hpp"
#include "tapegrad/nn/train/model.hpp"
#include "tapegrad/optim/lr_scheduler.hpp"
#include "tapegrad/optim/optimizer.hpp"

namespace tg::nn {
namespace {

bool maximizes(MonitorMode mode, const std::string& monitor) {
  if (mode == MonitorMode::auto_) return monitor.find("acc") != std::string::npos;
  return mode == MonitorMode::max;
}

double monitored(const Logs& logs, const std::string& monitor, const char* who) {
  auto v = logs.get(monitor);
  TG_CHECK(v.has_value(), "{}: the epoch logs have no '{}' to monitor; present: [{}]{}", who, monitor,
           fmt::join(logs.keys(), ", "),
           monitor.rfind("val_", 0) == 0 ? " (val_ metrics need validation_split or validation_data)" : "");
  return *v;
}

}  // namespace

Model& Callback::model() const {
  TG_CHECK(model_ != nullptr, "Callback::model: the callback is not attached to a model (only inside fit)");
  return *model_;
}

EarlyStopping::EarlyStopping(EarlyStoppingOptions options) : options_(std::move(options)) {
  TG_CHECK(options_.patience >= 0, "EarlyStopping: patience must be >= 0, got {}", options_.patience);
  maximize_ = maximizes(options_.mode, options_.monitor);
}

void EarlyStopping::on_train_begin(const Logs&) {
  wait_ = 0;
  stopped_epoch_ = 0;
  best_epoch_ = -1;
  best_ = maximize_ ? -INFINITY : INFINITY;
  best_weights_.clear();
}

bool EarlyStopping::improved(double value) const {
  // min_delta counts in the direction of improvement, as Keras.
  const double delta = std::abs(options_.min_delta);
  return maximize_ ? value - delta > best_ : value + delta < best_;
}

void EarlyStopping::on_epoch_end(int epoch, const Logs& logs) {
  if (epoch < options_.start_from_epoch) return;
  const double current = monitored(logs, options_.monitor, "EarlyStopping");
  ++wait_;
  if (improved(current)) {
    best_ = current;
    best_epoch_ = epoch;
    if (options_.restore_best_weights) best_weights_ = model().state();
    const bool beats_baseline =
        !options_.baseline || (maximize_ ? current > *options_.baseline : current < *options_.baseline);
    if (beats_baseline) {
      wait_ = 0;
      return;
    }
  }
  if (wait_ >= options_.patience && epoch > 0) {
    stopped_epoch_ = epoch;
    model().request_stop();
    if (options_.restore_best_weights && !best_weights_.empty()) {
      if (options_.verbose > 0)
        fmt::print("Restoring model weights from the end of the best epoch: {}.\n", best_epoch_ + 1);
      model().load_state(best_weights_);
    }
  }
}

void EarlyStopping::on_train_end(const Logs&) {
  if (stopped_epoch_ > 0 && options_.verbose > 0) fmt::print("Epoch {}: early stopping\n", stopped_epoch_ + 1);
}

ModelCheckpoint::ModelCheckpoint(std::string path, ModelCheckpointOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  TG_CHECK(!path_.empty(), "ModelCheckpoint: empty path");
  maximize_ = maximizes(options_.mode, options_.monitor);
}

void ModelCheckpoint::on_train_begin(const Logs&) { best_ = maximize_ ? -INFINITY : INFINITY; }

void ModelCheckpoint::on_epoch_end(int epoch, const Logs& logs) {
  // The path may name the epoch and metrics: "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors".
  fmt::dynamic_format_arg_store<fmt::format_context> args;
  args.push_back(fmt::arg("epoch", epoch + 1));
  for (const auto& [name, value] : logs) args.push_back(fmt::arg(name.c_str(), value));
  std::string path;
  try {
    path = fmt::vformat(path_, args);
  } catch (const fmt::format_error& e) {
    detail::fail("ModelCheckpoint: cannot format the path '{}': {}", path_, e.what());
  }
  // Under distributed training every rank decides alike (the logs are the same) and rank 0 writes.
  const bool chief = model().is_chief();
  if (options_.save_best_only) {
    const double current = monitored(logs, options_.monitor, "ModelCheckpoint");
    const bool better = maximize_ ? current > best_ : current < best_;
    if (!better) {
      if (options_.verbose > 0 && chief)
        fmt::print("Epoch {}: {} did not improve from {:.5f}\n", epoch + 1, options_.monitor, best_);
      return;
    }
    if (options_.verbose > 0 && chief)
      fmt::print("Epoch {}: {} improved from {:.5f} to {:.5f}, saving model to {}\n", epoch + 1, options_.monitor,
                 best_, current, path);
    best_ = current;
  } else if (options_.verbose > 0 && chief) {
    fmt::print("Epoch {}: saving model to {}\n", epoch + 1, path);
  }
  if (chief) model().save(path);
}

CSVLogger::CSVLogger(std::string path, bool append) : path_(std::move(path)), append_(append) {}

void CSVLogger::on_train_begin(const Logs&) {
  header_.clear();
  rows_.clear();
  if (append_ && std::filesystem::exists(path_)) {
    std::ifstream f(path_);
    TG_CHECK(f.good(), "CSVLogger: cannot read '{}' to append to it", path_);
    std::getline(f, header_);
    std::stringstream rest;
    rest << f.rdbuf();
    rows_ = rest.str();
  }
}

void CSVLogger::on_epoch_end(int epoch, const Logs& logs) {
  // Keras's CSVLogger columns: epoch, then the logs' names sorted.
  std::vector<std::pair<std::string, double>> columns(logs.begin(), logs.end());
  std::sort(columns.begin(), columns.end());
  std::string header = "epoch";
  for (const auto& [name, value] : columns) header += "," + name;
  if (header_.empty()) header_ = header;
  TG_CHECK(header == header_, "CSVLogger: '{}' has columns '{}' but this epoch logs '{}'", path_, header_, header);
  std::string row = std::to_string(epoch);
  for (const auto& [name, value] : columns) row += fmt::format(",{}", value);
  rows_ += row + "\n";
  if (model().is_chief()) write_file_atomic(path_, header_ + "\n" + rows_);
}

LearningRateScheduler::LearningRateScheduler(std::function<double(int, double)> schedule, int verbose)
    : schedule_(std::move(schedule)), verbose_(verbose) {
  TG_CHECK(schedule_ != nullptr, "LearningRateScheduler: empty schedule function");
}

LearningRateScheduler::LearningRateScheduler(std::shared_ptr<optim::LRScheduler> scheduler)
    : scheduler_(std::move(scheduler)) {
  TG_CHECK(scheduler_ != nullptr, "LearningRateScheduler: null scheduler");
}

void LearningRateScheduler::on_epoch_begin(int epoch, const Logs&) {
  if (!schedule_) return;
  optim::Optimizer& opt = model().optimizer();
  const double lr = schedule_(epoch, opt.lr());
  TG_CHECK(std::isfinite(lr) && lr >= 0, "LearningRateScheduler: the schedule returned lr {} at epoch {}", lr, epoch);
  opt.set_lr(lr);
  if (verbose_ > 0) fmt::print("\nEpoch {}: LearningRateScheduler setting learning rate to {}.\n", epoch + 1, lr);
}

void LearningRateScheduler::on_epoch_end(int, const Logs&) {
  if (scheduler_) scheduler_->step();
}

ReduceLROnPlateau::ReduceLROnPlateau(PlateauOptions options) : options_(std::move(options)) {
  TG_CHECK(options_.factor > 0 && options_.factor < 1, "ReduceLROnPlateau: factor must be in (0, 1), got {}",
           options_.factor);
  TG_CHECK(options_.patience >= 0 && options_.cooldown >= 0,
           "ReduceLROnPlateau: patience ({}) and cooldown ({}) must be >= 0", options_.patience, options_.cooldown);
}

void ReduceLROnPlateau::on_train_begin(const Logs&) {
  using Options = optim::ReduceLROnPlateauOptions;
  // Keras's min_delta is absolute, in the direction of improvement.
  scheduler_ = std::make_shared<optim::ReduceLROnPlateau>(
      model().optimizer(),
      Options{.mode = maximizes(options_.mode, options_.monitor) ? Options::Mode::max : Options::Mode::min,
              .factor = options_.factor,
              // Keras reduces at the patience-th epoch without improvement, PyTorch after it.
              .patience = std::max(options_.patience - 1, 0),
              .threshold = std::abs(options_.min_delta),
              .threshold_mode = Options::ThresholdMode::abs,
              .cooldown = options_.cooldown,
              .min_lr = options_.min_lr});
}

void ReduceLROnPlateau::on_epoch_end(int epoch, const Logs& logs) {
  const double before = model().optimizer().lr();
  scheduler_->step(monitored(logs, options_.monitor, "ReduceLROnPlateau"));
  const double after = model().optimizer().lr();
  if (after != before && options_.verbose > 0 && model().is_chief())
    fmt::print("\nEpoch {}: ReduceLROnPlateau reducing learning rate to {}.\n", epoch + 1, after);
}

void TerminateOnNaN::on_batch_end(int batch, const Logs& logs) {
  if (!logs.contains("loss") || std::isfinite(logs.at("loss"))) return;
  fmt::print("Batch {}: Invalid loss, terminating training\n", batch);
  model().request_stop();
}

}  // namespace tg::nn
