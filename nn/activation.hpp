#pragma once
// Activation layers (elementwise, no parameters) and the Activation choice that Linear and
// Conv2d can fuse, as Keras's Dense(..., activation="relu").
#include <string>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/activation.hpp"

namespace tg::nn {

/// An activation applied after a layer's affine part.
enum class Activation { none, relu, sigmoid, tanh, softmax, gelu };

/// act(x); none returns x.
Tensor apply_activation(Activation act, const Tensor& x);
/// "none", "relu", "sigmoid", "tanh", "softmax" (softmax over the last axis), "gelu" (exact).
std::string activation_name(Activation act);

/// x → max(x, 0), any shape.
class ReLU : public Module {
 public:
  /// max(x, 0), x's shape.
  Tensor forward(const Tensor& x) override;
};

/// x → x if x > 0 else negative_slope * x, any shape.
class LeakyReLU : public Module {
 public:
  /// The slope for x <= 0 (PyTorch's default 0.01; Keras's LeakyReLU uses 0.3).
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope_(negative_slope) {}
  /// x if x > 0 else negative_slope * x, x's shape.
  Tensor forward(const Tensor& x) override;
  /// "negative_slope=0.01".
  std::string extra_repr() const override;

 private:
  double negative_slope_;
};

/// x → 1 / (1 + exp(-x)), any shape.
class Sigmoid : public Module {
 public:
  /// 1 / (1 + exp(-x)), x's shape.
  Tensor forward(const Tensor& x) override;
};

/// x → tanh(x), any shape.
class Tanh : public Module {
 public:
  /// tanh(x), x's shape.
  Tensor forward(const Tensor& x) override;
};

/// x → exp(x) / Σ exp(x) along `dim` (default: the last axis, as Keras's Softmax), any shape.
class Softmax : public Module {
 public:
  /// Over axis `dim` (negative counts from the end).
  explicit Softmax(int dim = -1) : dim_(dim) {}
  /// softmax(x, dim), x's shape; throws when x has no axis dim.
  Tensor forward(const Tensor& x) override;
  /// Over the last axis (dim -1, or 1 for the [N, classes] outputs Model's cross-entropy takes),
  /// its logits are its input.
  bool has_logits() const override { return is_exactly<Softmax>() && (dim_ == -1 || dim_ == 1); }
  /// x itself, the logits; throws unless has_logits() and the softmax is over x's last axis.
  Tensor forward_logits(const Tensor& x) override;
  /// "dim=-1".
  std::string extra_repr() const override;

 private:
  int dim_;
};

/// x → log(softmax(x)) along `dim` (default: the last axis), computed stably, any shape.
class LogSoftmax : public Module {
 public:
  /// Over axis `dim` (negative counts from the end).
  explicit LogSoftmax(int dim = -1) : dim_(dim) {}
  /// log_softmax(x, dim), x's shape; throws when x has no axis dim.
  Tensor forward(const Tensor& x) override;
  /// "dim=-1".
  std::string extra_repr() const override;

 private:
  int dim_;
};

/// x → x * Φ(x) (exact, or PyTorch's tanh approximation), any shape.
class GELU : public Module {
 public:
  /// How Φ is computed (PyTorch's approximate='none' or 'tanh').
  explicit GELU(GeluApproximate approximate = GeluApproximate::none) : approximate_(approximate) {}
  /// gelu(x, approximate), x's shape.
  Tensor forward(const Tensor& x) override;
  /// "approximate='none'" or "approximate='tanh'".
  std::string extra_repr() const override;

 private:
  GeluApproximate approximate_;
};

/// x → x if x > 0 else alpha * (exp(x) - 1), any shape.
class ELU : public Module {
 public:
  /// The value approached as x → -inf is -alpha (PyTorch's default 1).
  explicit ELU(double alpha = 1.0) : alpha_(alpha) {}
  /// elu(x, alpha), x's shape.
  Tensor forward(const Tensor& x) override;
  /// "alpha=1.0".
  std::string extra_repr() const override;

 private:
  double alpha_;
};

/// x → x * sigmoid(x) (swish), any shape.
class SiLU : public Module {
 public:
  /// silu(x), x's shape.
  Tensor forward(const Tensor& x) override;
};

/// x → log(1 + exp(beta * x)) / beta, linear where beta * x > threshold, any shape.
class Softplus : public Module {
 public:
  /// PyTorch's defaults: beta 1, threshold 20.
  explicit Softplus(double beta = 1.0, double threshold = 20.0) : beta_(beta), threshold_(threshold) {}
  /// softplus(x, beta, threshold), x's shape.
  Tensor forward(const Tensor& x) override;
  /// "beta=1.0, threshold=20.0".
  std::string extra_repr() const override;

 private:
  double beta_;
  double threshold_;
};

/// x → x, any shape (a placeholder, e.g. to switch a layer off).
class Identity : public Module {
 public:
  /// Returns x.
  Tensor forward(const Tensor& x) override { return x; }
};

}  // namespace tg::nn
