#pragma once
// Resolved sizes of one 2-D convolution (checked by the op that plans it), shared by every conv
// kernel family.
#include <cstddef>
#include <vector>

namespace tg::kernels {

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
  std::vector<std::size_t> input_shape() const { return {n, c_in, h, w}; }
  std::vector<std::size_t> weight_shape() const { return {c_out, cg_in(), kh, kw}; }
  std::vector<std::size_t> output_shape() const { return {n, c_out, oh, ow}; }
};

}  // namespace tg::kernels
