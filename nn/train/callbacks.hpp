#pragma once
// Keras-style callbacks: hooks fit() calls around epochs and batches. Write your own by deriving
// from Callback and overriding the hooks you need; model() gives the Model being trained.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/nn/train/history.hpp"

namespace tg::optim {
class LRScheduler;
}

namespace tg::nn {

class Model;

/// Base of all callbacks. Epochs are 0-based (as Keras); epoch logs hold "loss", the metrics
/// and, with validation, "val_loss" and "val_<metric>"; batch logs hold the running averages.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(const Logs& /*logs*/) {}
  virtual void on_train_end(const Logs& /*logs*/) {}
  virtual void on_epoch_begin(int /*epoch*/, const Logs& /*logs*/) {}
  virtual void on_epoch_end(int /*epoch*/, const Logs& /*logs*/) {}
  virtual void on_batch_begin(int /*batch*/, const Logs& /*logs*/) {}
  virtual void on_batch_end(int /*batch*/, const Logs& /*logs*/) {}

  /// Called by fit() before on_train_begin.
  void set_model(Model& model) { model_ = &model; }
  /// The model being trained; throws outside fit().
  Model& model() const;

 private:
  Model* model_ = nullptr;
};

using CallbackList = std::vector<std::shared_ptr<Callback>>;

/// Whether a monitored metric should fall (a loss) or rise (accuracy); auto: rise for names
/// containing "acc", fall otherwise (as Keras).
enum class MonitorMode { auto_, min, max };

/// Options of EarlyStopping (Keras's names and defaults).
struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;  ///< smaller changes do not count as an improvement
  int patience = 0;        ///< epochs without improvement before stopping
  MonitorMode mode = MonitorMode::auto_;
  std::optional<double> baseline = std::nullopt;  ///< stop unless the metric beats this
  bool restore_best_weights = false;              ///< on stop, put back the weights of the best epoch
  int start_from_epoch = 0;                       ///< epochs of warm-up during which nothing is counted
  int verbose = 0;
};

/// Stops training when `monitor` has not improved by `min_delta` for `patience` epochs.
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_end(const Logs& logs) override;
  /// The epoch training stopped at (0 if it ran to the end).
  int stopped_epoch() const { return stopped_epoch_; }
  /// The best epoch seen (-1 before any).
  int best_epoch() const { return best_epoch_; }
  double best() const { return best_; }

 private:
  bool improved(double value) const;
  EarlyStoppingOptions options_;
  bool maximize_ = false;
  double best_ = 0;
  int best_epoch_ = -1;
  int wait_ = 0;
  int stopped_epoch_ = 0;
  std::vector<std::pair<std::string, Tensor>> best_weights_;
};

/// Options of ModelCheckpoint.
struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  bool save_best_only = false;  ///< save only when `monitor` improved
  MonitorMode mode = MonitorMode::auto_;
  int verbose = 0;
};

/// Saves the model (safetensors, written atomically) after epochs. `path` may contain
/// "{epoch}" (1-based, as Keras's {epoch:02d} is) which is replaced by the epoch number.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::filesystem::path path, ModelCheckpointOptions options = {});
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  /// The best value of `monitor` seen so far.
  double best() const { return best_; }

 private:
  std::filesystem::path path_;
  ModelCheckpointOptions options_;
  bool maximize_ = false;
  double best_ = 0;
};

/// Writes epoch logs as CSV ("epoch,loss,accuracy,val_loss,val_accuracy"), rewriting the whole
/// file atomically after every epoch so it is complete even if training is interrupted.
class CSVLogger : public Callback {
 public:
  /// append: keep the rows of an existing file (columns must match).
  explicit CSVLogger(std::filesystem::path path, bool append = false);
  void on_train_begin(const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  std::filesystem::path path_;
  bool append_;
  std::string header_;
  std::string rows_;
};

/// Stops the training when a batch's loss is NaN or infinite, as Keras's TerminateOnNaN (fit
/// then returns the history so far instead of throwing). The batch's step is not taken, so the
/// weights are those before it.
class TerminateOnNaN : public Callback {
 public:
  void on_batch_end(int batch, const Logs& logs) override;
};

/// Sets the optimizer's learning rate at the start of every epoch, as Keras's
/// LearningRateScheduler: lr = schedule(epoch, current lr); or steps a tg::optim scheduler at
/// the end of every epoch.
class LearningRateScheduler : public Callback {
 public:
  explicit LearningRateScheduler(std::function<double(int epoch, double lr)> schedule, int verbose = 0);
  /// Steps `scheduler` (built on the model's optimizer) after every epoch.
  explicit LearningRateScheduler(std::shared_ptr<optim::LRScheduler> scheduler);
  void on_epoch_begin(int epoch, const Logs& logs) override;
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  std::function<double(int, double)> schedule_;
  std::shared_ptr<optim::LRScheduler> scheduler_;
  int verbose_ = 0;
};

/// A callback made of lambdas, as Keras's LambdaCallback; unset hooks do nothing.
struct LambdaCallback : public Callback {
  std::function<void(const Logs&)> train_begin, train_end;
  std::function<void(int, const Logs&)> epoch_begin, epoch_end, batch_begin, batch_end;
  void on_train_begin(const Logs& logs) override {
    if (train_begin) train_begin(logs);
  }
  void on_train_end(const Logs& logs) override {
    if (train_end) train_end(logs);
  }
  void on_epoch_begin(int epoch, const Logs& logs) override {
    if (epoch_begin) epoch_begin(epoch, logs);
  }
  void on_epoch_end(int epoch, const Logs& logs) override {
    if (epoch_end) epoch_end(epoch, logs);
  }
  void on_batch_begin(int batch, const Logs& logs) override {
    if (batch_begin) batch_begin(batch, logs);
  }
  void on_batch_end(int batch, const Logs& logs) override {
    if (batch_end) batch_end(batch, logs);
  }
};

}  // namespace tg::nn
