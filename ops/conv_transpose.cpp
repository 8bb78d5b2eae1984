// conv1d and conv_transpose2d, built on conv2d's ops: conv1d is conv2d over a height of 1, and a
// transposed convolution is conv2d's input gradient, which is itself differentiable.
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/conv.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv1dArgs& options) {
  TG_CHECK(x.ndim() == 3, "conv1d: expected x [N, C_in, L], got {}", shape_str(x.shape()));
  TG_CHECK(weight.ndim() == 3, "conv1d: expected weight [C_out, C_in/groups, K], got {}", shape_str(weight.shape()));
  const Padding& p = options.padding;
  TG_CHECK(p.kind != Padding::Kind::explicit_size || p.size.h == p.size.w,
           "conv1d: padding is one size (or \"valid\" / \"same\"), got ({}, {})", p.size.h, p.size.w);
  const Conv2dArgs args{.stride = {1, options.stride},
                        .padding = p.kind == Padding::Kind::explicit_size ? Padding(0, p.size.w) : p,
                        .dilation = {1, options.dilation},
                        .groups = options.groups};
  return squeeze(conv2d(unsqueeze(x, 2), unsqueeze(weight, 2), bias, args), 2);
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvTranspose2dArgs& o) {
  TG_CHECK(x.ndim() == 4, "conv_transpose2d: expected x [N, C_in, H, W], got {}", shape_str(x.shape()));
  TG_CHECK(weight.ndim() == 4 && weight.shape(0) == x.shape(1),
           "conv_transpose2d: expected weight [C_in, C_out/groups, kH, kW] with C_in = {} (x {}), got {}", x.shape(1),
           shape_str(x.shape()), shape_str(weight.shape()));
  TG_CHECK(o.groups > 0 && x.shape(1) % static_cast<std::size_t>(o.groups) == 0,
           "conv_transpose2d: groups ({}) must be positive and divide C_in ({})", o.groups, x.shape(1));
  for (const auto& [name, v] : {std::pair{"stride", o.stride}, std::pair{"dilation", o.dilation}})
    TG_CHECK(v.h > 0 && v.w > 0, "conv_transpose2d: {} must be positive, got ({}, {})", name, v.h, v.w);
  TG_CHECK(o.padding.h >= 0 && o.padding.w >= 0, "conv_transpose2d: padding must not be negative, got ({}, {})",
           o.padding.h, o.padding.w);
  TG_CHECK(o.output_padding.h >= 0 && o.output_padding.w >= 0 &&
               o.output_padding.h < std::max(o.stride.h, o.dilation.h) &&
               o.output_padding.w < std::max(o.stride.w, o.dilation.w),
           "conv_transpose2d: output_padding ({}, {}) must be below max(stride, dilation) per axis", o.output_padding.h,
           o.output_padding.w);
  auto out_size = [](std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d, std::int64_t op) {
    return (in - 1) * s - 2 * p + d * (k - 1) + op + 1;
  };
  const auto h = out_size(static_cast<std::int64_t>(x.shape(2)), static_cast<std::int64_t>(weight.shape(2)), o.stride.h,
                          o.padding.h, o.dilation.h, o.output_padding.h);
  const auto w = out_size(static_cast<std::int64_t>(x.shape(3)), static_cast<std::int64_t>(weight.shape(3)), o.stride.w,
                          o.padding.w, o.dilation.w, o.output_padding.w);
  TG_CHECK(h > 0 && w > 0, "conv_transpose2d: the output of x {} with weight {} would be empty ({} x {})",
           shape_str(x.shape()), shape_str(weight.shape()), h, w);
  const std::size_t c_out = weight.shape(1) * static_cast<std::size_t>(o.groups);
  const Shape out_shape = {x.shape(0), c_out, static_cast<std::size_t>(h), static_cast<std::size_t>(w)};
  Tensor y = conv2d_backward_input(
      x, weight, out_shape,
      {.stride = o.stride, .padding = Padding(o.padding.h, o.padding.w), .dilation = o.dilation, .groups = o.groups});
  if (bias.defined()) {
    TG_CHECK(bias.shape() == Shape{c_out}, "conv_transpose2d: expected bias [{}], got {}", c_out,
             shape_str(bias.shape()));
    y = add(y, reshape(bias, {1, static_cast<std::int64_t>(c_out), 1, 1}));
  }
  return y;
}

}  // namespace tg
