#pragma once
// Differentiable masking: masked_fill, and the triangles tril/triu of the last two axes.
// Masks are int64 tensors (nonzero is true), as the comparisons (eq, gt, ...) give them:
// tapegrad has no bool dtype.
#include <cstdint>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// x with `value` wherever mask is nonzero: x [...] and mask (int64) broadcast together → the
/// broadcast shape, x's dtype (an int64 x takes value truncated, as PyTorch). The gradient is g
/// where mask is 0 and 0 where it is set; twice differentiable.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
/// The lower triangle of the last two axes: x [..., M, N] → same shape, elements (i, j) with
/// j - i > diagonal set to 0 (diagonal 0 is the main diagonal, > 0 above it). Any dtype; the
/// gradient is tril(g); twice differentiable.
Tensor tril(const Tensor& x, std::int64_t diagonal = 0);
/// The upper triangle of the last two axes: x [..., M, N] → same shape, elements (i, j) with
/// j - i < diagonal set to 0. Any dtype; the gradient is triu(g); twice differentiable.
Tensor triu(const Tensor& x, std::int64_t diagonal = 0);

}  // namespace tg
