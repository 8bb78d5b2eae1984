#pragma once
// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's).
#include "tapegrad/optim/optimizer.hpp"

namespace tg::optim {

/// Options of SGD (PyTorch's names and defaults).
struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  bool nesterov = false;      ///< needs momentum > 0 and dampening 0
};

/// g ← grad + wd·p; with momentum: buf ← g on the first step, else momentum·buf + (1-dampening)·g,
/// and g ← g + momentum·buf (Nesterov) or buf; then p ← p - lr·g.
class SGD : public Optimizer {
 public:
  SGD(TensorList params, SGDOptions options = {});
  SGD(std::vector<ParamGroupOptions> groups, SGDOptions options = {});
  const SGDOptions& options() const { return options_; }

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> buffer_names() const override;

 private:
  SGDOptions options_;
};

}  // namespace tg::optim
