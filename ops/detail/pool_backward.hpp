#pragma once
// Internal to ops/: max pooling's gradient, for ops that fuse a max pooling (conv2d_relu_max_pool2d).
#include "tapegrad/autograd/tensor.hpp"

namespace tg::detail {

/// The gradient of max pooling with 2x2 windows at stride 2: g [N,C,H',W'] scattered to the int64
/// argmax `indices` (flat within each plane) of an input of input_shape [N,C,H,W].
/// Differentiable (its backward is the matching gather).
Tensor max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& input_shape);

}  // namespace tg::detail
