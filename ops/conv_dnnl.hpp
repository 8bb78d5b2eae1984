#pragma once
// float32 convolutions through oneDNN, for the layers where conv2d's own im2col + GEMM path is
// slowest: many input channels (oneDNN's direct AVX-512 kernels read the input in place instead
// of writing a column matrix several times its size). Internal to ops/conv.cpp.
// Each function returns false, having written nothing, when oneDNN has no implementation for
// the geometry; the caller then takes its own path.
#include "ops/conv_geometry.hpp"

namespace tg::detail::dnnl_conv {

/// y [N,C_out,H',W'] = conv(x [N,C_in,H,W], w [C_out,C_in/groups,kH,kW]) + bias (may be null),
/// with relu applied when asked.
bool forward(const float* x, const float* w, const float* bias, const ConvGeometry& g, bool relu, float* y);

/// dx [N,C_in,H,W] = the gradient of conv with respect to its input, from gy [N,C_out,H',W'].
bool backward_data(const float* gy, const float* w, const ConvGeometry& g, float* dx);

/// dw [C_out,C_in/groups,kH,kW] = the gradient of conv with respect to its weight.
bool backward_weights(const float* gy, const float* x, const ConvGeometry& g, float* dw);

}  // namespace tg::detail::dnnl_conv
