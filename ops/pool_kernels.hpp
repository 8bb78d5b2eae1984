#pragma once
// Max-pooling pieces that ops fusing a pooling (ops/conv.cpp's conv2d_relu_max_pool2d) share
// with max_pool2d itself. Internal: not part of the public headers.
#include <cstddef>
#include <cstdint>

#include "autograd/tensor.hpp"

namespace tg::detail {

/// One plane in [.., width] (row-major, 2*out_h rows read) → values and flat argmax indices
/// (row * width + column) [out_h, out_w] of its 2x2 windows at stride 2, with max_pool2d's tie
/// and NaN rules.
template <class T>
void max_pool_2x2_plane(const T* in, std::size_t width, std::size_t out_h, std::size_t out_w, T* values,
                        std::int64_t* indices);

/// The gradient of max pooling: g [N,C,H',W'] scattered to the int64 argmax `indices` (flat
/// within each plane) of an input of input_shape [N,C,H,W]. Differentiable (its backward is the
/// matching gather).
Tensor max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& input_shape);

}  // namespace tg::detail
