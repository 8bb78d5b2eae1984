#pragma once
// Smooth activation functions with PyTorch's semantics, elementwise on float tensors.
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// How gelu computes Φ(x): none is the exact erf form, tanh PyTorch's tanh approximation.
enum class GeluApproximate { none, tanh };

/// log(1 + exp(beta * x)) / beta, or x where beta * x > threshold (as PyTorch), x's shape;
/// twice differentiable.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
/// x * Φ(x) with Φ the standard normal CDF (exact or tanh-approximated), x's shape; twice
/// differentiable.
Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::none);
/// x for x > 0, alpha * (exp(x) - 1) otherwise, x's shape; gradient alpha at 0 (as PyTorch);
/// twice differentiable.
Tensor elu(const Tensor& x, double alpha = 1.0);
/// x * sigmoid(x) (swish), x's shape; twice differentiable.
Tensor silu(const Tensor& x);

}  // namespace tg
