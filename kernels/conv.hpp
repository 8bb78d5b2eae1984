#pragma once
// conv2d's kernels, each choosing among the kernel families of kernels/conv_paths.hpp: few input
// taps (a first layer) take the direct SIMD kernels; other float32 convolutions go to oneDNN when
// it has a kernel for them; the rest (and float64) to im2col + GEMM. x [N,C_in,H,W],
// w [C_out,C_in/groups,kH,kW], y [N,C_out,H',W'], for float and double.
#include <cstddef>
#include <cstdint>

#include "tapegrad/kernels/conv_geometry.hpp"

namespace tg::kernels {

/// y = conv2d(x, w) + bias (bias [C_out] may be null), with relu applied when asked.
template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu, T* y);

/// dx [N,C_in,H,W] = the gradient of conv2d with respect to x, from gy [N,C_out,H',W'].
template <class T>
void conv2d_backward_input(const T* gy, const T* w, const ConvGeometry& g, T* dx);

/// dw [C_out,C_in/groups,kH,kW] = the gradient of conv2d with respect to w, from gy.
template <class T>
void conv2d_backward_weight(const T* gy, const T* x, const ConvGeometry& g, T* dw);

/// Whether the direct kernels take g: no groups, unit stride, at most 32 taps per output.
bool direct_applies(const ConvGeometry& g);

/// dw and db [C_out] (db may be null: not wanted) of relu(conv2d(x, w) + b) from the gradient gy
/// of its output relu_out, in one pass over gy; only where direct_applies(g).
template <class T>
void conv2d_relu_backward_params(const T* gy, const T* relu_out, const T* x, const ConvGeometry& g, T* dw, T* db);

/// Whether the fused conv2d + relu + 2x2 max pooling (stride 2) below takes g: direct_applies,
/// with a conv output of at least 2x2.
bool relu_pool_applies(const ConvGeometry& g);

/// values [N,C_out,H'/2,W'/2] = max_pool2d(relu(conv2d(x, w) + bias), 2x2, stride 2), without the
/// conv output ever existing; codes (same shape, in T) say where each window's maximum is: 0-3 in
/// scan order, or relu_pool_zero_window when all four were 0 or less (its gradient is then 0).
template <class T>
void conv2d_relu_max_pool2d_forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, T* values, T* codes);

/// The code of a window whose maximum after relu is 0.
inline constexpr int relu_pool_zero_window = 4;

/// dw and db (db may be null) of the fused op from the gradient gp of its values and the codes.
template <class T>
void conv2d_relu_max_pool2d_backward_params(const T* gp, const T* codes, const T* x, const ConvGeometry& g, T* dw,
                                            T* db);

/// max_pool2d's int64 argmax indices [N,C_out,H'/2,W'/2] (flat in each conv output plane) from
/// the fused op's codes.
template <class T>
void relu_pool_indices(const T* codes, const ConvGeometry& g, std::int64_t* indices);

}  // namespace tg::kernels
