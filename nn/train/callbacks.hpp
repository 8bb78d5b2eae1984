#pragma once
// Keras-style callbacks: hooks fit() calls around epochs and batches. Write your own by deriving
// from Callback and overriding the hooks you need; model() gives the Model being trained.
#include <cstdint>
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
class ReduceLROnPlateau;
}  // namespace tg::optim

namespace tg::nn {

class Model;

/// Base of all callbacks. Epochs are 0-based (as Keras); epoch logs hold "loss", the metrics
/// and, with validation, "val_loss" and "val_<metric>"; batch logs hold the running averages.
class Callback {
 public:
  virtual ~Callback() = default;
  /// At the start of fit, before the first epoch (empty logs).
  virtual void on_train_begin(const Logs& /*logs*/) {}
  /// At the end of fit, with the last epoch's logs.
  virtual void on_train_end(const Logs& /*logs*/) {}
  /// Before epoch `epoch` runs (empty logs).
  virtual void on_epoch_begin(int /*epoch*/, const Logs& /*logs*/) {}
  /// After epoch `epoch`, with its logs, validation included.
  virtual void on_epoch_end(int /*epoch*/, const Logs& /*logs*/) {}
  /// Before batch `batch` (0-based within the epoch; empty logs).
  virtual void on_batch_begin(int /*batch*/, const Logs& /*logs*/) {}
  /// After batch `batch`'s step; or, with a NaN or infinite "loss", instead of its step.
  virtual void on_batch_end(int /*batch*/, const Logs& /*logs*/) {}

  /// Called by fit() before on_train_begin.
  void set_model(Model& model) { model_ = &model; }
  /// The model being trained; throws outside fit().
  Model& model() const;

 private:
  Model* model_ = nullptr;
};

/// The callbacks of a fit, called in order.
using CallbackList = std::vector<std::shared_ptr<Callback>>;

/// Whether a monitored metric should fall (a loss) or rise (accuracy); auto: rise for names
/// containing "acc", fall otherwise (as Keras).
enum class MonitorMode { auto_, min, max };

/// Options of EarlyStopping (Keras's names and defaults).
struct EarlyStoppingOptions {
  /// The logged value watched: "val_loss", "val_accuracy", "loss", ...
  std::string monitor = "val_loss";
  double min_delta = 0.0;  ///< smaller changes do not count as an improvement
  int patience = 0;        ///< epochs without improvement before stopping
  /// Whether `monitor` should fall or rise (auto_: from its name).
  MonitorMode mode = MonitorMode::auto_;
  std::optional<double> baseline = std::nullopt;  ///< stop unless the metric beats this
  bool restore_best_weights = false;              ///< on stop, put back the weights of the best epoch
  int start_from_epoch = 0;                       ///< epochs of warm-up during which nothing is counted
  /// 1: print when stopping and when restoring the best weights.
  int verbose = 0;
};

/// Stops training when `monitor` has not improved by `min_delta` for `patience` epochs.
class EarlyStopping : public Callback {
 public:
  /// Throws when patience is negative.
  explicit EarlyStopping(EarlyStoppingOptions options = {});
  /// Resets the count, the best value and the stored weights.
  void on_train_begin(const Logs& logs) override;
  /// Counts the epoch as an improvement or not; may stop the training and restore the best weights.
  void on_epoch_end(int epoch, const Logs& logs) override;
  /// Prints the epoch training stopped at (verbose).
  void on_train_end(const Logs& logs) override;
  /// The epoch training stopped at (0 if it ran to the end).
  int stopped_epoch() const { return stopped_epoch_; }
  /// The best epoch seen (-1 before any).
  int best_epoch() const { return best_epoch_; }
  /// The best value of `monitor` seen (±infinity before any).
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
  /// The logged value that save_best_only compares.
  std::string monitor = "val_loss";
  bool save_best_only = false;  ///< save only when `monitor` improved
  /// Whether `monitor` should fall or rise (auto_: from its name).
  MonitorMode mode = MonitorMode::auto_;
  /// 1: print a line at each save (or skipped save).
  int verbose = 0;
};

/// Saves the model (safetensors, written atomically) after epochs. `path` is formatted with fmt
/// from the epoch (1-based, as in Keras) and every logged value: "ckpt-{epoch:02d}-{val_loss:.3f}"
/// works; a literal brace is written "{{" or "}}", and a path that does not format throws.
class ModelCheckpoint : public Callback {
 public:
  /// Throws when `path` is empty.
  explicit ModelCheckpoint(std::string path, ModelCheckpointOptions options = {});
  /// Resets the best value.
  void on_train_begin(const Logs& logs) override;
  /// Saves the model to the path made for this epoch (with save_best_only: when `monitor` improved).
  void on_epoch_end(int epoch, const Logs& logs) override;
  /// The best value of `monitor` seen so far.
  double best() const { return best_; }

 private:
  std::string path_;
  ModelCheckpointOptions options_;
  bool maximize_ = false;
  double best_ = 0;
};

/// Writes epoch logs as CSV with Keras's CSVLogger columns, epoch then the names sorted
/// ("epoch,accuracy,loss,val_accuracy,val_loss"), rewriting the whole
/// file atomically after every epoch so it is complete even if training is interrupted.
class CSVLogger : public Callback {
 public:
  /// append: keep the rows of an existing file (columns must match).
  explicit CSVLogger(std::string path, bool append = false);
  /// Starts the rows, keeping those of an existing file with append.
  void on_train_begin(const Logs& logs) override;
  /// Adds the epoch's row and rewrites the file; throws when its columns differ from the header's.
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  std::string path_;
  bool append_;
  std::string header_;
  std::string rows_;
};

/// Stops the training when a batch's loss is NaN or infinite, as Keras's TerminateOnNaN (fit
/// then returns the history so far instead of throwing). The batch's step is not taken, so the
/// weights are those before it.
class TerminateOnNaN : public Callback {
 public:
  /// Stops the training when logs' "loss" is NaN or infinite.
  void on_batch_end(int batch, const Logs& logs) override;
};

/// Sets the optimizer's learning rate at the start of every epoch, as Keras's
/// LearningRateScheduler: lr = schedule(epoch, current lr); or steps a tg::optim scheduler at
/// the end of every epoch.
class LearningRateScheduler : public Callback {
 public:
  /// Sets lr = schedule(epoch, lr) at the start of every epoch; verbose 1 prints it.
  explicit LearningRateScheduler(std::function<double(int epoch, double lr)> schedule, int verbose = 0);
  /// Steps `scheduler` (built on the model's optimizer) after every epoch.
  explicit LearningRateScheduler(std::shared_ptr<optim::LRScheduler> scheduler);
  /// Applies the schedule function, if given.
  void on_epoch_begin(int epoch, const Logs& logs) override;
  /// Steps the scheduler, if given.
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  std::function<double(int, double)> schedule_;
  std::shared_ptr<optim::LRScheduler> scheduler_;
  int verbose_ = 0;
};

/// Options of the ReduceLROnPlateau callback (Keras's names and defaults).
struct PlateauOptions {
  /// The logged value watched: "val_loss", "loss", "val_accuracy", ...
  std::string monitor = "val_loss";
  double factor = 0.1;  ///< new lr = lr · factor (in (0, 1))
  int patience = 10;    ///< epochs without improvement tolerated before reducing
  /// Whether `monitor` should fall or rise (auto_: from its name).
  MonitorMode mode = MonitorMode::auto_;
  double min_delta = 1e-4;  ///< an improvement beats the best by more than this (absolute)
  int cooldown = 0;         ///< epochs to wait after a reduction before counting again
  double min_lr = 0.0;      ///< lower bound of the learning rate
  int verbose = 0;          ///< 1: print each reduction
};

/// Reduces the learning rate by `factor` when `monitor` has not improved for `patience` epochs,
/// as Keras's ReduceLROnPlateau callback: tg::optim::ReduceLROnPlateau on the model's optimizer,
/// stepped with the epoch's logged value.
class ReduceLROnPlateau : public Callback {
 public:
  /// Throws for a factor outside (0, 1) or a negative patience or cooldown.
  explicit ReduceLROnPlateau(PlateauOptions options = {});
  /// Starts watching with the model's optimizer (fresh at every fit).
  void on_train_begin(const Logs& logs) override;
  /// Reports the epoch's `monitor`; may reduce the learning rate.
  void on_epoch_end(int epoch, const Logs& logs) override;

 private:
  PlateauOptions options_;
  std::shared_ptr<optim::ReduceLROnPlateau> scheduler_;
};

/// A callback made of lambdas, as Keras's LambdaCallback; unset hooks do nothing.
struct LambdaCallback : public Callback {
  /// Called by on_train_begin and on_train_end.
  std::function<void(const Logs&)> train_begin, train_end;
  /// Called by the epoch and batch hooks, with the epoch or batch number.
  std::function<void(int, const Logs&)> epoch_begin, epoch_end, batch_begin, batch_end;
  /// Calls train_begin if set.
  void on_train_begin(const Logs& logs) override {
    if (train_begin) train_begin(logs);
  }
  /// Calls train_end if set.
  void on_train_end(const Logs& logs) override {
    if (train_end) train_end(logs);
  }
  /// Calls epoch_begin if set.
  void on_epoch_begin(int epoch, const Logs& logs) override {
    if (epoch_begin) epoch_begin(epoch, logs);
  }
  /// Calls epoch_end if set.
  void on_epoch_end(int epoch, const Logs& logs) override {
    if (epoch_end) epoch_end(epoch, logs);
  }
  /// Calls batch_begin if set.
  void on_batch_begin(int batch, const Logs& logs) override {
    if (batch_begin) batch_begin(batch, logs);
  }
  /// Calls batch_end if set.
  void on_batch_end(int batch, const Logs& logs) override {
    if (batch_end) batch_end(batch, logs);
  }
};

}  // namespace tg::nn
