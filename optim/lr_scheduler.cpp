#include "tapegrad/optim/lr_scheduler.hpp"

#include <cmath>
#include <limits>
#include <numbers>

#include "tapegrad/autograd/check.hpp"

namespace tg::optim {

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (const ParamGroup& g : optimizer.param_groups()) base_lrs_.push_back(g.lr);
}

void LRScheduler::initialize() { apply(); }

void LRScheduler::apply() {
  auto& groups = optimizer_.param_groups();
  TG_CHECK(groups.size() == base_lrs_.size(), "LRScheduler: the optimizer had {} groups, now has {}", base_lrs_.size(),
           groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) groups[g].lr = lr_at(base_lrs_[g], last_epoch_);
}

void LRScheduler::step() {
  ++last_epoch_;
  apply();
}

void LRScheduler::set_last_epoch(std::int64_t epoch) {
  TG_CHECK(epoch >= 0, "LRScheduler::set_last_epoch: epoch must be >= 0, got {}", epoch);
  last_epoch_ = epoch;
  apply();
}

std::vector<double> LRScheduler::get_last_lr() const {
  std::vector<double> out;
  for (const ParamGroup& g : optimizer_.param_groups()) out.push_back(g.lr);
  return out;
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  TG_CHECK(step_size > 0, "StepLR: step_size must be positive, got {}", step_size);
  TG_CHECK(gamma >= 0, "StepLR: gamma must be >= 0, got {}", gamma);
  initialize();
}

double StepLR::lr_at(double base_lr, std::int64_t epoch) const {
  return base_lr * std::pow(gamma_, double(epoch / step_size_));
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma) : LRScheduler(optimizer), gamma_(gamma) {
  TG_CHECK(gamma >= 0, "ExponentialLR: gamma must be >= 0, got {}", gamma);
  initialize();
}

double ExponentialLR::lr_at(double base_lr, std::int64_t epoch) const {
  return base_lr * std::pow(gamma_, double(epoch));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), t_max_(T_max), eta_min_(eta_min) {
  TG_CHECK(T_max > 0, "CosineAnnealingLR: T_max must be positive, got {}", T_max);
  TG_CHECK(eta_min >= 0, "CosineAnnealingLR: eta_min must be >= 0, got {}", eta_min);
  initialize();
}

double CosineAnnealingLR::lr_at(double base_lr, std::int64_t epoch) const {
  return eta_min_ + (base_lr - eta_min_) * (1.0 + std::cos(std::numbers::pi * double(epoch) / double(t_max_))) / 2.0;
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor, std::int64_t total_iters)
    : LRScheduler(optimizer), start_factor_(start_factor), end_factor_(end_factor), total_iters_(total_iters) {
  TG_CHECK(start_factor > 0 && start_factor <= 1, "LinearLR: start_factor must be in (0, 1], got {}", start_factor);
  TG_CHECK(end_factor >= 0 && end_factor <= 1, "LinearLR: end_factor must be in [0, 1], got {}", end_factor);
  TG_CHECK(total_iters > 0, "LinearLR: total_iters must be positive, got {}", total_iters);
  initialize();
}

double LinearLR::lr_at(double base_lr, std::int64_t epoch) const {
  const double progress = double(std::min(epoch, total_iters_)) / double(total_iters_);
  return base_lr * (start_factor_ + (end_factor_ - start_factor_) * progress);
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options)
    : optimizer_(optimizer), options_(options) {
  TG_CHECK(options.factor >= 0 && options.factor < 1, "ReduceLROnPlateau: factor must be in [0, 1), got {}",
           options.factor);
  TG_CHECK(options.patience >= 0, "ReduceLROnPlateau: patience must be >= 0, got {}", options.patience);
  TG_CHECK(options.cooldown >= 0, "ReduceLROnPlateau: cooldown must be >= 0, got {}", options.cooldown);
  TG_CHECK(options.threshold >= 0, "ReduceLROnPlateau: threshold must be >= 0, got {}", options.threshold);
  TG_CHECK(options.min_lr >= 0, "ReduceLROnPlateau: min_lr must be >= 0, got {}", options.min_lr);
  best_ = options.mode == ReduceLROnPlateauOptions::Mode::min ? std::numeric_limits<double>::infinity()
                                                              : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double a, double best) const {
  using O = ReduceLROnPlateauOptions;
  const bool rel = options_.threshold_mode == O::ThresholdMode::rel;
  if (options_.mode == O::Mode::min) return rel ? a < best * (1.0 - options_.threshold) : a < best - options_.threshold;
  return rel ? a > best * (1.0 + options_.threshold) : a > best + options_.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  if (is_better(metric, best_)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs in cooldown are ignored
  }
  if (num_bad_epochs_ > options_.patience) {
    for (ParamGroup& g : optimizer_.param_groups()) {
      const double reduced = std::max(g.lr * options_.factor, options_.min_lr);
      if (g.lr - reduced > options_.eps) g.lr = reduced;
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
}

}  // namespace tg::optim
