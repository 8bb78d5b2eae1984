#pragma once
// Plain scalar versions of the tuned kernels, in double, written for clarity only: the tests hold
// every kernel at every instruction set to them (tests/test_kernels.cpp). Shapes as in
// kernels/conv.hpp and kernels/pool.hpp.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tapegrad/kernels/conv_geometry.hpp"
#include "tapegrad/kernels/pool.hpp"

namespace tg::kernels::reference {

/// y = conv2d(x, w) + bias (bias may be empty), relu'd when asked: the defining sum, per output.
std::vector<double> conv2d(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& bias,
                           const ConvGeometry& g, bool relu);

/// dx = Σ over outputs of gy · w at the input each tap reads (the adjoint of conv2d in x).
std::vector<double> conv2d_backward_input(const std::vector<double>& gy, const std::vector<double>& w,
                                          const ConvGeometry& g);

/// dw = Σ over outputs of gy · x at the input each tap reads (the adjoint of conv2d in w).
std::vector<double> conv2d_backward_weight(const std::vector<double>& gy, const std::vector<double>& x,
                                           const ConvGeometry& g);

/// Max pooling: values and flat argmax per plane (the first maximum in scan order; NaN wins).
void max_pool2d(const std::vector<double>& x, const PoolGeometry& g, std::vector<double>& values,
                std::vector<std::int64_t>& indices);

/// Average pooling (divisor: the whole window with count_include_pad, else its unpadded part).
std::vector<double> avg_pool2d(const std::vector<double>& x, const PoolGeometry& g, bool count_include_pad);

}  // namespace tg::kernels::reference
