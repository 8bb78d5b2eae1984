#pragma once
// Loss objects over the losses in ops/loss.hpp (PyTorch's names): callables of
// (input, target) that also convert to nn::LossFn for Model::compile.
#include <string>

#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/ops/loss.hpp"

namespace tg::nn {

/// Base of the loss objects: loss(input, target) → scalar (or per element with Reduction::none).
class Loss {
 public:
  virtual ~Loss() = default;
  /// The loss of input against target.
  virtual Tensor forward(const Tensor& input, const Tensor& target) const = 0;
  /// forward(input, target).
  Tensor operator()(const Tensor& input, const Tensor& target) const { return forward(input, target); }
  /// "CrossEntropyLoss", ...
  virtual std::string name() const = 0;
  /// One line with the options, e.g. "CrossEntropyLoss(reduction=mean, label_smoothing=0.1)".
  std::string repr() const;

 protected:
  /// The options shown inside repr()'s parentheses, e.g. "reduction=mean".
  virtual std::string extra_repr() const = 0;
};

/// logits [N, C], target int64 [N] or probabilities [N, C] → scalar (see tg::cross_entropy).
class CrossEntropyLoss : public Loss {
 public:
  /// Throws unless label_smoothing is in [0, 1].
  explicit CrossEntropyLoss(CrossEntropyOptions options = {});
  /// tg::cross_entropy(input, target, options).
  Tensor forward(const Tensor& input, const Tensor& target) const override;
  /// "CrossEntropyLoss".
  std::string name() const override { return "CrossEntropyLoss"; }

 protected:
  std::string extra_repr() const override;

 private:
  CrossEntropyOptions options_;
};

/// log_probs [N, C], int64 target [N] → scalar (see tg::nll_loss).
class NLLLoss : public Loss {
 public:
  /// With the given reduction (mean by default).
  explicit NLLLoss(LossOptions options = {}) : options_(options) {}
  /// tg::nll_loss(input, target, options).
  Tensor forward(const Tensor& input, const Tensor& target) const override;
  /// "NLLLoss".
  std::string name() const override { return "NLLLoss"; }

 protected:
  std::string extra_repr() const override;

 private:
  LossOptions options_;
};

/// input and target of one shape → mean squared error (see tg::mse_loss).
class MSELoss : public Loss {
 public:
  /// With the given reduction (mean by default).
  explicit MSELoss(LossOptions options = {}) : options_(options) {}
  /// tg::mse_loss(input, target, options).
  Tensor forward(const Tensor& input, const Tensor& target) const override;
  /// "MSELoss".
  std::string name() const override { return "MSELoss"; }

 protected:
  std::string extra_repr() const override;

 private:
  LossOptions options_;
};

/// logits and target in [0, 1] of one shape → binary cross-entropy (see
/// tg::binary_cross_entropy_with_logits).
class BCEWithLogitsLoss : public Loss {
 public:
  /// With the given reduction (mean by default).
  explicit BCEWithLogitsLoss(LossOptions options = {}) : options_(options) {}
  /// tg::binary_cross_entropy_with_logits(input, target, options).
  Tensor forward(const Tensor& input, const Tensor& target) const override;
  /// "BCEWithLogitsLoss".
  std::string name() const override { return "BCEWithLogitsLoss"; }

 protected:
  std::string extra_repr() const override;

 private:
  LossOptions options_;
};

/// "mean", "sum" or "none".
std::string reduction_name(Reduction r);

}  // namespace tg::nn
