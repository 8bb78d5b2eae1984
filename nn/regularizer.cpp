#include "tapegrad/nn/regularizer.hpp"

#include <cmath>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tg::nn {

Regularizer::Regularizer(double l1, double l2) : l1_(l1), l2_(l2) {
  TG_CHECK(std::isfinite(l1) && l1 >= 0.0, "Regularizer: the L1 factor must be a finite number >= 0, got {}", l1);
  TG_CHECK(std::isfinite(l2) && l2 >= 0.0, "Regularizer: the L2 factor must be a finite number >= 0, got {}", l2);
}

// d penalty = λ1·sign(w) + 2·λ2·w, through abs and mul.
Tensor Regularizer::penalty(const Tensor& w) const {
  TG_CHECK(w.defined() && is_floating(w.dtype()), "Regularizer {}: expected a float weight, got {}", repr(),
           w.defined() ? fmt::format("{} {}", w.dtype(), shape_str(w.shape())) : std::string("an undefined tensor"));
  Tensor total = scalar_tensor(0.0, w.dtype());
  if (l1_ > 0.0) total = total + sum(abs(w)) * l1_;
  if (l2_ > 0.0) total = total + sum(w * w) * l2_;
  return total;
}

std::string Regularizer::repr() const {
  if (l1_ > 0.0 && l2_ == 0.0) return fmt::format("L1({:g})", l1_);
  if (l2_ > 0.0 && l1_ == 0.0) return fmt::format("L2({:g})", l2_);
  return fmt::format("L1L2(l1={:g}, l2={:g})", l1_, l2_);
}

}  // namespace tg::nn
