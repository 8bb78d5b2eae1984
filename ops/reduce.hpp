#pragma once
// Differentiable reductions over all axes or chosen axes (negative axes count from the end).
#include <string_view>
#include <vector>

#include "tapegrad/autograd/broadcast.hpp"  // sum_to
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// Axes to reduce over; negative ones count from the end.
using Axes = std::vector<int>;

/// Sum of all elements → 0-d tensor.
Tensor sum(const Tensor& x);
/// Sum over `axes`; keepdims leaves them as size 1.
Tensor sum(const Tensor& x, const Axes& axes, bool keepdims = false);
/// Mean of all elements → 0-d tensor (float tensors only).
Tensor mean(const Tensor& x);
/// Mean over `axes` (none when empty); keepdims leaves them as size 1.
Tensor mean(const Tensor& x, const Axes& axes, bool keepdims = false);
/// Max over all elements; the gradient is split evenly between tied maxima.
Tensor max(const Tensor& x);
/// Max over `axes`, tied maxima sharing the gradient evenly; keepdims leaves them as size 1.
Tensor max(const Tensor& x, const Axes& axes, bool keepdims = false);
/// Min over all elements; the gradient is split evenly between tied minima.
Tensor min(const Tensor& x);
/// Min over `axes`, tied minima sharing the gradient evenly; keepdims leaves them as size 1.
Tensor min(const Tensor& x, const Axes& axes, bool keepdims = false);
/// Index of the largest element along `axis` (first on ties), int64; not differentiable.
Tensor argmax(const Tensor& x, int axis, bool keepdims = false);
/// Index of the largest element of the flattened tensor, int64 0-d.
Tensor argmax(const Tensor& x);

/// Normalizes a possibly negative axis for a tensor of rank `ndim`; throws naming `op`.
std::size_t normalize_axis(int axis, std::size_t ndim, std::string_view op);

}  // namespace tg
