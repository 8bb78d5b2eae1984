#pragma once
// Learning-rate schedulers with PyTorch's semantics: each changes the lr of every parameter
// group of an optimizer; call step() once per epoch (or per batch, as you choose).
#include <cstdint>
#include <vector>

#include "tapegrad/optim/optimizer.hpp"

namespace tg::optim {

/// A schedule lr_g(epoch) = f(base_lr_g, epoch) over the groups' initial learning rates. The
/// constructor applies epoch 0; step() advances one epoch and applies it.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  /// Advances one epoch and sets every group's lr.
  void step();
  /// The current epoch (0 right after construction).
  std::int64_t last_epoch() const { return last_epoch_; }
  /// Jumps to `epoch` (e.g. after loading a checkpoint) and sets the lrs for it.
  void set_last_epoch(std::int64_t epoch);
  /// The learning rates last set, one per group.
  std::vector<double> get_last_lr() const;

 protected:
  /// Schedules `optimizer`'s groups from their current lrs (the base lrs).
  explicit LRScheduler(Optimizer& optimizer);
  /// Must be called at the end of each subclass constructor (applies epoch 0).
  void initialize();
  /// A subclass's schedule: the lr of a group whose base lr is `base_lr`, at `epoch`.
  virtual double lr_at(double base_lr, std::int64_t epoch) const = 0;
  Optimizer& optimizer_;

 private:
  void apply();
  std::vector<double> base_lrs_;
  std::int64_t last_epoch_ = 0;
};

/// lr = base · gamma^floor(epoch / step_size).
class StepLR : public LRScheduler {
 public:
  /// Multiplies the lr by gamma every step_size epochs; throws unless step_size > 0 and gamma >= 0.
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(double base_lr, std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

/// lr = base · gamma^epoch.
class ExponentialLR : public LRScheduler {
 public:
  /// Multiplies the lr by gamma every epoch; throws unless gamma >= 0.
  ExponentialLR(Optimizer& optimizer, double gamma);

 protected:
  double lr_at(double base_lr, std::int64_t epoch) const override;

 private:
  double gamma_;
};

/// lr = eta_min + (base - eta_min)·(1 + cos(π·epoch/T_max))/2 (PyTorch's closed form).
class CosineAnnealingLR : public LRScheduler {
 public:
  /// From base down to eta_min over T_max epochs; throws unless T_max > 0 and eta_min >= 0.
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min = 0.0);

 protected:
  double lr_at(double base_lr, std::int64_t epoch) const override;

 private:
  std::int64_t t_max_;
  double eta_min_;
};

/// Linear warmup (PyTorch's LinearLR): lr = base · (start + (end - start)·min(epoch, total)/total).
class LinearLR : public LRScheduler {
 public:
  /// From base·start_factor to base·end_factor over total_iters epochs; start_factor in (0, 1],
  /// end_factor in [0, 1], total_iters > 0, or it throws.
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3.0, double end_factor = 1.0,
           std::int64_t total_iters = 5);

 protected:
  double lr_at(double base_lr, std::int64_t epoch) const override;

 private:
  double start_factor_;
  double end_factor_;
  std::int64_t total_iters_;
};
/// LinearLR under the name of its usual purpose.
using LinearWarmup = LinearLR;

/// Options of ReduceLROnPlateau (PyTorch's names and defaults).
struct ReduceLROnPlateauOptions {
  /// Whether the metric should fall (min) or rise (max).
  enum class Mode { min, max };
  /// rel: better than best·(1 ∓ threshold); abs: better than best ∓ threshold.
  enum class ThresholdMode { rel, abs };
  Mode mode = Mode::min;       ///< min: the metric should fall (a loss); max: rise (accuracy)
  double factor = 0.1;         ///< new lr = lr · factor
  std::int64_t patience = 10;  ///< epochs without improvement tolerated before reducing
  double threshold = 1e-4;     ///< how much better counts as an improvement
  /// How threshold counts (rel by default).
  ThresholdMode threshold_mode = ThresholdMode::rel;
  std::int64_t cooldown = 0;  ///< epochs to wait after a reduction before counting again
  double min_lr = 0.0;        ///< lower bound of every group's lr
  double eps = 1e-8;          ///< reductions smaller than this are skipped
};

/// Reduces the lr by `factor` when a metric has stopped improving for `patience` epochs.
class ReduceLROnPlateau {
 public:
  /// Watches a metric for `optimizer`'s groups; throws for an option out of range.
  explicit ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  /// Reports the epoch's metric; may reduce the learning rates.
  void step(double metric);
  /// Epochs since the last improvement (0 during a cooldown).
  std::int64_t num_bad_epochs() const { return num_bad_epochs_; }
  /// The best metric seen (±infinity before any).
  double best() const { return best_; }

 private:
  bool is_better(double a, double best) const;
  Optimizer& optimizer_;
  ReduceLROnPlateauOptions options_;
  double best_;
  std::int64_t num_bad_epochs_ = 0;
  std::int64_t cooldown_counter_ = 0;
};

}  // namespace tg::optim
