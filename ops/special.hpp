#pragma once
// Differentiable special functions, elementwise on float tensors.
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// sin(x), x's shape; twice differentiable (and more).
Tensor sin(const Tensor& x);
/// cos(x), x's shape; twice differentiable (and more).
Tensor cos(const Tensor& x);
/// The error function 2/√π ∫₀ˣ exp(-t²) dt, x's shape; twice differentiable (and more).
Tensor erf(const Tensor& x);

}  // namespace tg
