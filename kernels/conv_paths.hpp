#pragma once
// The kernel families behind kernels/conv.hpp, each in its own file; kernels/conv.cpp chooses.
// Shapes as in kernels/conv.hpp.
#include <cstddef>

#include "tapegrad/kernels/conv_geometry.hpp"
#include "tapegrad/kernels/cpu.hpp"

namespace tg::kernels {

/// Direct SIMD kernels for few input taps (kernels/conv_direct.cpp, once per instruction set).
template <class T>
struct DirectConv {
  /// y = conv2d(x, w) + bias (bias may be null), relu'd when asked.
  void (*forward)(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu, T* y);
  /// dw from gy; with relu_out, gy is first masked where relu_out <= 0 (a fused relu's
  /// gradient), and db (when not null) gets the sums of the masked gy over n, h and w.
  void (*backward_weight)(const T* gy, const T* x, const ConvGeometry& g, T* dw, const T* relu_out, T* db);
};
TG_DECLARE_KERNEL_TABLE(DirectConv)

/// The fused conv2d + relu + 2x2 max pooling of kernels/conv.hpp on the direct path
/// (kernels/conv_relu_pool.cpp, once per instruction set).
template <class T>
struct ConvReluPool {
  void (*forward)(const T* x, const T* w, const T* bias, const ConvGeometry& g, T* values, T* codes);
  void (*backward_params)(const T* gp, const T* codes, const T* x, const ConvGeometry& g, T* dw, T* db);
};
TG_DECLARE_KERNEL_TABLE(ConvReluPool)

/// im2col + GEMM over chunks of the batch, for any geometry (kernels/conv_im2col.cpp).
namespace im2col {
template <class T>
void forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu, T* y);
template <class T>
void backward_input(const T* gy, const T* w, const ConvGeometry& g, T* dx);
template <class T>
void backward_weight(const T* gy, const T* x, const ConvGeometry& g, T* dw);
}  // namespace im2col

/// float32 convolutions through oneDNN (kernels/conv_dnnl.cpp). Each returns false, having
/// written nothing, when oneDNN has no implementation for the geometry beyond its slow
/// reference or GEMM-based ones; throws tg::Error when oneDNN fails.
namespace dnnl_conv {
bool forward(const float* x, const float* w, const float* bias, const ConvGeometry& g, bool relu, float* y);
bool backward_data(const float* gy, const float* w, const ConvGeometry& g, float* dx);
bool backward_weights(const float* gy, const float* x, const ConvGeometry& g, float* dw);
}  // namespace dnnl_conv

}  // namespace tg::kernels
