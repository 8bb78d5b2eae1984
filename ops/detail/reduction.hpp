#pragma once
// Internal to ops/: how a reduction over a set of axes is laid out, shared by ops/reduce.cpp and
// ops/statistics.cpp so that both check axes and spread gradients back the same way.
#include <string_view>

#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tg::detail {

struct Reduction {
  std::vector<std::size_t> axes;  // sorted, unique
  Shape kept_shape;               // input shape with reduced axes set to 1
  Shape out_shape;                // kept_shape, or without those axes
  std::size_t count = 1;          // elements per reduced group
};

/// The layout of reducing x over `axes` (negative ones count from the end); throws naming `op`
/// for an axis out of range or repeated.
Reduction plan(const Tensor& x, const Axes& axes, bool keepdims, std::string_view op);

/// 0, 1, ..., x.ndim() - 1.
Axes all_axes(const Tensor& x);

/// The reduced g (out_shape) spread back over the input's shape (differentiable).
Tensor expand_back(const Tensor& g, const Reduction& r, const Shape& input_shape);

}  // namespace tg::detail
