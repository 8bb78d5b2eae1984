#pragma once
// RMSprop with PyTorch's options: smoothing alpha, eps, momentum, centered, weight decay.
#include "tapegrad/optim/optimizer.hpp"

namespace tg::optim {

/// Options of RMSprop (PyTorch's names and defaults; Keras's RMSprop uses lr 1e-3, rho 0.9, eps 1e-7).
struct RMSpropOptions {
  /// Learning rate.
  double lr = 1e-2;
  double alpha = 0.99;  ///< smoothing of the squared gradient (Keras's rho)
  /// Added to the root in the denominator.
  double eps = 1e-8;
  /// L2 penalty added to the gradient.
  double weight_decay = 0.0;
  /// μ; 0 updates without a momentum buffer.
  double momentum = 0.0;
  bool centered = false;  ///< divide by the estimated variance instead of the raw second moment
};

/// g ← grad + wd·p; s ← α·s + (1-α)·g²; centered: a ← α·a + (1-α)·g, d = sqrt(s - a²) + eps, else
/// d = sqrt(s) + eps; momentum: b ← μ·b + g/d, p ← p - lr·b; else p ← p - lr·g/d.
/// State: square_avg (, momentum_buffer, grad_avg).
class RMSprop : public Optimizer {
 public:
  /// Over `params`; throws for an option out of range.
  RMSprop(TensorList params, RMSpropOptions options = {});
  /// Over parameter groups, each with its own lr or weight decay where set.
  RMSprop(std::vector<ParamGroupOptions> groups, RMSpropOptions options = {});
  /// The options given.
  const RMSpropOptions& options() const { return options_; }

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> buffer_names() const override;

 private:
  RMSpropOptions options_;
};

}  // namespace tg::optim
