#pragma once
// Adam and AdamW, with PyTorch's or Keras's formula and the AMSGrad variant.
#include <optional>
#include <utility>

#include "tapegrad/optim/optimizer.hpp"

namespace tg::optim {

/// Options of Adam (PyTorch's names; defaults of the chosen formula).
struct AdamOptions {
  /// Where eps and the bias correction go:
  ///  - pytorch: p ← p - lr/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps), eps default 1e-8;
  ///  - keras:   lr_t = lr·sqrt(1-b2^t)/(1-b1^t), p ← p - lr_t · m / (sqrt(v) + eps), eps default 1e-7.
  enum class Formula { pytorch, keras };
  /// Learning rate.
  double lr = 1e-3;
  /// (b1, b2): decay rates of the averages of g and g², each in [0, 1).
  std::pair<double, double> betas = {0.9, 0.999};
  std::optional<double> eps = std::nullopt;  ///< default: 1e-8 (pytorch) or 1e-7 (keras)
  double weight_decay = 0.0;                 ///< L2 penalty added to the gradient (Adam) or decoupled (AdamW)
  bool amsgrad = false;                      ///< use the running maximum of v
  /// PyTorch's formula (the default) or Keras's.
  Formula formula = Formula::pytorch;
};

/// Options of AdamW: AdamOptions with PyTorch's AdamW default weight decay 1e-2.
struct AdamWOptions {
  /// The same choice as AdamOptions::Formula.
  using Formula = AdamOptions::Formula;
  /// Learning rate.
  double lr = 1e-3;
  /// (b1, b2): decay rates of the averages of g and g², each in [0, 1).
  std::pair<double, double> betas = {0.9, 0.999};
  /// Default: 1e-8 (pytorch) or 1e-7 (keras).
  std::optional<double> eps = std::nullopt;
  /// Decoupled: p ← p·(1 - lr·wd) before each step.
  double weight_decay = 1e-2;
  /// Use the running maximum of v.
  bool amsgrad = false;
  /// PyTorch's formula (the default) or Keras's.
  Formula formula = Formula::pytorch;
};

/// g ← grad + wd·p; m ← b1·m + (1-b1)·g; v ← b2·v + (1-b2)·g²; (amsgrad: v̂ ← max(v̂, v));
/// p updated by the chosen Formula. State: exp_avg, exp_avg_sq (, max_exp_avg_sq).
class Adam : public Optimizer {
 public:
  /// Over `params`; throws for an option out of range.
  Adam(TensorList params, AdamOptions options = {});
  /// Over parameter groups, each with its own lr or weight decay where set.
  Adam(std::vector<ParamGroupOptions> groups, AdamOptions options = {});
  /// The options given.
  const AdamOptions& options() const { return options_; }
  /// The eps in use: options.eps, or the formula's default.
  double eps() const { return eps_; }

 protected:
  Adam(std::string name, std::vector<ParamGroupOptions> groups, AdamOptions options, bool decoupled);
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> buffer_names() const override;

 private:
  AdamOptions options_;
  double eps_;
  bool decoupled_;  // AdamW: p ← p·(1 - lr·wd) before the Adam step, no L2 term in g
};

/// Adam with decoupled weight decay (Loshchilov & Hutter): p ← p·(1 - lr·wd), then Adam.
class AdamW : public Adam {
 public:
  /// Over `params`; throws for an option out of range.
  AdamW(TensorList params, AdamWOptions options = {});
  /// Over parameter groups, each with its own lr or weight decay where set.
  AdamW(std::vector<ParamGroupOptions> groups, AdamWOptions options = {});
};

}  // namespace tg::optim
