#pragma once
// Weight regularizers, Keras's kernel_regularizer / bias_regularizer: a penalty on a weight that
// is added to the training loss (and reported apart from it). Unlike an optimizer's weight decay,
// the penalty is part of the loss, so its gradient passes through the optimizer's scaling.
//   L1(λ): λ·Σ|w|      L2(λ): λ·Σw²  (no ½, as Keras)      L1L2(λ1, λ2): both
#include <string>

#include "tapegrad/autograd/tensor.hpp"

namespace tg::nn {

/// λ1·Σ|w| + λ2·Σw² of a weight. A value type: L1, L2 and L1L2 only choose the factors, so an
/// option `std::optional<Regularizer> kernel_regularizer` accepts any of them.
class Regularizer {
 public:
  /// Throws when a factor is negative or not finite.
  Regularizer(double l1, double l2);
  /// w (any shape, float) → 0-d tensor of w's dtype, differentiable in w.
  Tensor penalty(const Tensor& w) const;
  /// λ1, the factor of Σ|w|.
  double l1() const { return l1_; }
  /// λ2, the factor of Σw².
  double l2() const { return l2_; }
  /// "L1(0.01)", "L2(0.001)" or "L1L2(l1=0.01, l2=0.001)".
  std::string repr() const;

 private:
  double l1_;
  double l2_;
};

/// λ·Σ|w| (Keras's regularizers.l1; default λ 0.01).
struct L1 : Regularizer {
  /// Throws when l1 is negative or not finite.
  explicit L1(double l1 = 0.01) : Regularizer(l1, 0.0) {}
};

/// λ·Σw² (Keras's regularizers.l2; default λ 0.01).
struct L2 : Regularizer {
  /// Throws when l2 is negative or not finite.
  explicit L2(double l2 = 0.01) : Regularizer(0.0, l2) {}
};

/// λ1·Σ|w| + λ2·Σw² (Keras's regularizers.L1L2; default factors 0).
struct L1L2 : Regularizer {
  /// Throws when a factor is negative or not finite.
  explicit L1L2(double l1 = 0.0, double l2 = 0.0) : Regularizer(l1, l2) {}
};

}  // namespace tg::nn
