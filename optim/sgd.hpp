#pragma once
// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's).
#include "tapegrad/optim/optimizer.hpp"

namespace tg::optim {

/// Options of SGD (PyTorch's names and defaults).
struct SGDOptions {
  /// Learning rate.
  double lr = 1e-3;
  /// Factor of the momentum buffer; 0: plain SGD.
  double momentum = 0.0;
  /// Part of each new gradient left out of the momentum buffer.
  double dampening = 0.0;
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  bool nesterov = false;      ///< needs momentum > 0 and dampening 0
};

/// g ← grad + wd·p; with momentum: buf ← g on the first step, else momentum·buf + (1-dampening)·g,
/// and g ← g + momentum·buf (Nesterov) or buf; then p ← p - lr·g.
class SGD : public Optimizer {
 public:
  /// Over `params`; throws for an option out of range, or nesterov without momentum or with dampening.
  SGD(TensorList params, SGDOptions options = {});
  /// Over parameter groups, each with its own lr or weight decay where set.
  SGD(std::vector<ParamGroupOptions> groups, SGDOptions options = {});
  /// The options given.
  const SGDOptions& options() const { return options_; }

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> buffer_names() const override;

 private:
  SGDOptions options_;
};

}  // namespace tg::optim
