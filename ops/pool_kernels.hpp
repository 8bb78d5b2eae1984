#pragma once
// Max-pooling pieces that ops fusing a pooling (ops/conv.cpp's conv2d_relu_max_pool2d) share
// with max_pool2d itself. Internal: not part of the public headers.
#include <cstddef>
#include <cstdint>

#include "autograd/tensor.hpp"

namespace tg::detail {

/// 2x2 windows laid out as pairs: window k is (top[2k], top[2k+1]) over (bottom[2k],
/// bottom[2k+1]). values[k] is its maximum and codes[k] where it is (0 top-left, 1 top-right,
/// 2 bottom-left, 3 bottom-right), with max_pool2d's tie and NaN rules.
template <class T>
void max_pool_2x2_pairs(const T* top, const T* bottom, std::size_t count, T* values, T* codes);

/// The adjoint of max_pool_2x2_pairs: top and bottom (2*count each) get g[k] where codes[k]
/// points and 0 in the window's other three places.
template <class T>
void max_unpool_2x2_pairs(const T* g, const T* codes, std::size_t count, T* top, T* bottom);

/// The gradient of max pooling: g [N,C,H',W'] scattered to the int64 argmax `indices` (flat
/// within each plane) of an input of input_shape [N,C,H,W]. Differentiable (its backward is the
/// matching gather).
Tensor max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& input_shape);

}  // namespace tg::detail
