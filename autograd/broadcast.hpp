#pragma once
// Broadcasting, which the engine undoes for every op (it sums each gradient back to its input's
// shape, autograd/engine.cpp): NumPy's shape rule, broadcast_to and its adjoint sum_to, two ops
// that differentiate into each other.
#include <string_view>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// The shape a and b broadcast to (NumPy's rule: aligned from the last axis, each pair of sizes
/// equal or one of them 1); throws tg::Error naming `op` when they do not.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

/// x [...] broadcast to `shape` (a copy). Differentiable: d = sum_to(g, x.shape).
Tensor broadcast_to(const Tensor& x, const Shape& shape);

/// A gradient of a broadcast shape summed back to `shape` (the adjoint of broadcast_to).
/// Differentiable: d = broadcast_to(g, x.shape).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace tg
