#pragma once
// Resolved sizes of one convolution, shared by conv2d's own kernels (ops/conv.cpp) and the
// oneDNN ones (ops/conv_dnnl.cpp). Internal: not part of the public headers.
#include <cstddef>

#include "autograd/tensor.hpp"

namespace tg::detail {

struct ConvGeometry {
  std::size_t n, c_in, h, w;   // input
  std::size_t c_out, kh, kw;   // weight
  std::size_t oh, ow;          // output
  std::size_t sh, sw, dh, dw;  // stride, dilation
  std::size_t pad_top, pad_left, pad_bottom, pad_right;
  std::size_t groups;
  std::size_t cg_in() const { return c_in / groups; }
  std::size_t cg_out() const { return c_out / groups; }
  std::size_t patch() const { return cg_in() * kh * kw; }  // GEMM depth per group
  std::size_t out_plane() const { return oh * ow; }
  bool pointwise() const {  // col == x: 1x1 kernel, stride 1, no padding
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pad_top + pad_left + pad_bottom + pad_right == 0;
  }
  Shape output_shape() const { return {n, c_out, oh, ow}; }
};

}  // namespace tg::detail
