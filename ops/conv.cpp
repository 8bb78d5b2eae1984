// conv2d and its two gradient ops, each a conv kernel (kernels/conv.hpp picks the kernel family
// for the geometry) with its backward below it. The three differentiate into each other
// (conv ↔ backward_input ↔ backward_weight), which makes conv2d twice differentiable;
// conv2d_relu is conv2d with the activation fused in, and conv2d_relu_max_pool2d that followed by
// a 2x2 max pooling.
#include "tapegrad/ops/conv.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/kernels/conv.hpp"
#include "tapegrad/kernels/elementwise.hpp"
#include "tapegrad/ops/detail/map.hpp"
#include "tapegrad/ops/detail/pool_backward.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

using Index = std::int64_t;
using kernels::ConvGeometry;

// Padding of one axis: (before, after).
std::pair<std::size_t, std::size_t> axis_padding(const Padding& p, Index explicit_size, Index in, Index k, Index stride,
                                                 Index dilation) {
  switch (p.kind) {
    case Padding::Kind::valid:
      return {0, 0};
    case Padding::Kind::same: {
      const Index out = (in + stride - 1) / stride;
      const Index total = std::max<Index>((out - 1) * stride + (k - 1) * dilation + 1 - in, 0);
      return {static_cast<std::size_t>(total / 2), static_cast<std::size_t>(total - total / 2)};
    }
    case Padding::Kind::explicit_size:
      break;
  }
  return {static_cast<std::size_t>(explicit_size), static_cast<std::size_t>(explicit_size)};
}

ConvGeometry plan_conv(const Shape& xs, const Shape& ws, const Conv2dArgs& o, std::string_view op) {
  TG_CHECK(xs.size() == 4, "{}: expected input x of rank 4 [N,C_in,H,W], got shape {}", op, shape_str(xs));
  TG_CHECK(ws.size() == 4, "{}: expected weight of rank 4 [C_out,C_in/groups,kH,kW], got shape {}", op, shape_str(ws));
  TG_CHECK(o.stride.h > 0 && o.stride.w > 0, "{}: stride must be positive, got [{}, {}] (x {}, weight {})", op,
           o.stride.h, o.stride.w, shape_str(xs), shape_str(ws));
  TG_CHECK(o.dilation.h > 0 && o.dilation.w > 0, "{}: dilation must be positive, got [{}, {}]", op, o.dilation.h,
           o.dilation.w);
  TG_CHECK(o.padding.size.h >= 0 && o.padding.size.w >= 0, "{}: padding must be non-negative, got [{}, {}]", op,
           o.padding.size.h, o.padding.size.w);
  TG_CHECK(o.groups > 0, "{}: groups must be positive, got {}", op, o.groups);
  const auto groups = static_cast<std::size_t>(o.groups);
  TG_CHECK(xs[1] % groups == 0 && ws[0] % groups == 0,
           "{}: groups {} must divide both C_in ({}, x {}) and C_out ({}, weight {})", op, groups, xs[1], shape_str(xs),
           ws[0], shape_str(ws));
  TG_CHECK(ws[1] * groups == xs[1],
           "{}: x {} has {} channels but weight {} with groups {} expects C_in = weight.shape[1] * groups = {}", op,
           shape_str(xs), xs[1], shape_str(ws), groups, ws[1] * groups);
  TG_CHECK(ws[2] > 0 && ws[3] > 0 && ws[0] > 0, "{}: weight {} has an empty dimension", op, shape_str(ws));
  ConvGeometry g{};
  g.n = xs[0], g.c_in = xs[1], g.h = xs[2], g.w = xs[3];
  g.c_out = ws[0], g.kh = ws[2], g.kw = ws[3];
  g.sh = static_cast<std::size_t>(o.stride.h), g.sw = static_cast<std::size_t>(o.stride.w);
  g.dh = static_cast<std::size_t>(o.dilation.h), g.dw = static_cast<std::size_t>(o.dilation.w);
  g.groups = groups;
  std::tie(g.pad_top, g.pad_bottom) = axis_padding(o.padding, o.padding.size.h, static_cast<Index>(g.h),
                                                   static_cast<Index>(g.kh), o.stride.h, o.dilation.h);
  std::tie(g.pad_left, g.pad_right) = axis_padding(o.padding, o.padding.size.w, static_cast<Index>(g.w),
                                                   static_cast<Index>(g.kw), o.stride.w, o.dilation.w);
  const std::size_t span_h = g.dh * (g.kh - 1) + 1, span_w = g.dw * (g.kw - 1) + 1;
  const std::size_t padded_h = g.h + g.pad_top + g.pad_bottom, padded_w = g.w + g.pad_left + g.pad_right;
  TG_CHECK(span_h <= padded_h && span_w <= padded_w,
           "{}: the kernel spans {}x{} (weight {}, dilation [{}, {}]) but the padded input is only {}x{} (x {}, "
           "padding [{}+{}, {}+{}]); expected a kernel no larger than the padded input",
           op, span_h, span_w, shape_str(ws), g.dh, g.dw, padded_h, padded_w, shape_str(xs), g.pad_top, g.pad_bottom,
           g.pad_left, g.pad_right);
  g.oh = (padded_h - span_h) / g.sh + 1;
  g.ow = (padded_w - span_w) / g.sw + 1;
  return g;
}

void check_dtypes(const Tensor& a, const Tensor& b, std::string_view op, std::string_view a_name,
                  std::string_view b_name) {
  TG_CHECK(is_floating(a.dtype()) && a.dtype() == b.dtype(), "{}: {} {} {} and {} {} {} must have the same float dtype",
           op, a_name, a.dtype(), shape_str(a.shape()), b_name, b.dtype(), shape_str(b.shape()));
}

// out[c] = Σ_{n,h,w} g[n,c,h,w]; d = gg broadcast over n, h, w.
Tensor channel_sum(const Tensor& g) {
  const Shape s = g.shape();
  Tensor out = dispatch_float(g.dtype(), "conv2d", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape({s[1]});
    kernels::channel_sum(g.data<T>(), s[0], s[1], s[2] * s[3], r.data());
    return Tensor(std::move(r));
  });
  return record({.name = "conv2d_bias_grad", .inputs = {g}}, out,
                [s](const BackwardContext&, const Tensor& gg) -> TensorList {
                  return {broadcast_to(reshape(gg, {1, static_cast<std::int64_t>(s[1]), 1, 1}), s)};
                });
}

void check_grad_out(const Tensor& grad_out, const ConvGeometry& g, std::string_view op) {
  TG_CHECK(grad_out.shape() == g.output_shape(), "{}: grad_out has shape {}, expected the conv2d output shape {}", op,
           shape_str(grad_out.shape()), shape_str(g.output_shape()));
}

// {dW, db (or undefined)} of relu(conv2d) from the gradient of its output, on the direct path;
// empty when that path does not apply (the caller then takes the general one).
TensorList conv2d_relu_backward_params(const Tensor& grad, const Tensor& out, const Tensor& x, const Shape& ws,
                                       const ConvGeometry& geo, bool bias_grad) {
  if (!kernels::direct_applies(geo) || grad.dtype() != x.dtype()) return {};
  return dispatch_float(x.dtype(), "conv2d_relu_backward", [&](auto t) -> TensorList {
    using T = decltype(t);
    xt::xarray<T> dw = xt::xarray<T>::from_shape(ws);
    xt::xarray<T> db = xt::xarray<T>::from_shape({bias_grad ? geo.c_out : 0});
    kernels::conv2d_relu_backward_params(grad.data<T>(), out.data<T>(), x.data<T>(), geo, dw.data(),
                                         bias_grad ? db.data() : nullptr);
    return {Tensor(std::move(dw)), bias_grad ? Tensor(std::move(db)) : Tensor()};
  });
}

// The geometry of conv op `op` on x, weight and bias (may be undefined), after checking their
// dtypes and the bias's shape.
ConvGeometry plan_checked(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& options,
                          std::string_view op) {
  const ConvGeometry geo = plan_conv(x.shape(), weight.shape(), options, op);
  check_dtypes(x, weight, op, "x", "weight");
  if (bias.defined()) {
    check_dtypes(x, bias, op, "x", "bias");
    TG_CHECK(bias.shape() == Shape{geo.c_out}, "{}: bias has shape {}, expected [{}] (C_out of weight {})", op,
             shape_str(bias.shape()), geo.c_out, shape_str(weight.shape()));
  }
  return geo;
}

Tensor conv2d_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& options, bool relu) {
  const char* op = relu ? "conv2d_relu" : "conv2d";
  const ConvGeometry geo = plan_checked(x, weight, bias, options, op);
  Tensor out = dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> y = xt::xarray<T>::from_shape(geo.output_shape());
    kernels::conv2d_forward(x.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr, geo, relu,
                            y.data());
    return Tensor(std::move(y));
  });
  return record({.name = op, .inputs = {x, weight, bias}, .saved = {x, weight}, .save_output = relu}, out,
                [xs = x.shape(), ws = weight.shape(), options, relu, geo](const BackwardContext& ctx,
                                                                          const Tensor& grad) -> TensorList {
                  if (relu && !ctx.needs_grad(0) && !ctx.create_graph()) {
                    // The first layer's case (no input gradient): mask, weight and bias gradients in one
                    // pass over the gradient, when the direct kernel applies.
                    TensorList fused =
                        conv2d_relu_backward_params(grad, ctx.output(), ctx.saved(0), ws, geo, ctx.needs_grad(2));
                    if (!fused.empty()) return {Tensor(), fused[0], fused[1]};
                  }
                  const Tensor g = relu ? detail::relu_backward(grad, ctx.output(), ctx.create_graph()) : grad;
                  return {ctx.needs_grad(0) ? conv2d_backward_input(g, ctx.saved(1), xs, options) : Tensor(),
                          ctx.needs_grad(1) ? conv2d_backward_weight(g, ctx.saved(0), ws, options) : Tensor(),
                          ctx.needs_grad(2) ? channel_sum(g) : Tensor()};
                });
}

// d max_pool2d(relu(conv2d(x, w, b))): the pooled gradient, where the pooled value is positive,
// scattered to the argmax, then conv2d's gradients (fused into one pass for a first layer).
// With flatten the result is [N, C_out*H'*W'].
Tensor relu_pool(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& conv,
                 const MaxPool2dOptions& pool, bool flatten) {
  constexpr const char* op = "conv2d_relu_max_pool2d";
  const ConvGeometry geo = plan_checked(x, weight, bias, conv, op);
  const Size2 stride = pool.stride.value_or(pool.kernel);
  const bool fused = kernels::relu_pool_applies(geo) && pool.kernel.h == 2 && pool.kernel.w == 2 && stride.h == 2 &&
                     stride.w == 2 && pool.padding.h == 0 && pool.padding.w == 0;
  if (!fused) {
    const Tensor y = max_pool2d(conv2d_relu(x, weight, bias, conv), pool);
    return flatten ? tg::flatten(y, 1, 3) : y;
  }
  const Shape pooled_shape{geo.n, geo.c_out, geo.oh / 2, geo.ow / 2};
  // The kernels see flat arrays: a flattened result is the same values under another shape.
  const Shape out_shape = flatten ? Shape{geo.n, geo.c_out * (geo.oh / 2) * (geo.ow / 2)} : pooled_shape;
  Tensor window_codes;
  Tensor out = dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> values = xt::xarray<T>::from_shape(out_shape), where = xt::xarray<T>::from_shape(out_shape);
    kernels::conv2d_relu_max_pool2d_forward(x.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr,
                                            geo, values.data(), where.data());
    window_codes = Tensor(std::move(where));
    return Tensor(std::move(values));
  });
  return record(
      {.name = op, .inputs = {x, weight, bias}, .saved = {x, weight, window_codes}, .save_output = true}, out,
      [xs = x.shape(), ws = weight.shape(), conv, geo, flatten](const BackwardContext& ctx,
                                                                const Tensor& grad) -> TensorList {
        const Tensor& values = ctx.output();
        const Tensor& codes = ctx.saved(2);
        if (!ctx.needs_grad(0) && !ctx.create_graph() && grad.dtype() == values.dtype()) {
          return dispatch_float(values.dtype(), op, [&](auto t) -> TensorList {
            using T = decltype(t);
            xt::xarray<T> dw = xt::xarray<T>::from_shape(ws);
            xt::xarray<T> db = xt::xarray<T>::from_shape({ctx.needs_grad(2) ? geo.c_out : 0});
            kernels::conv2d_relu_max_pool2d_backward_params(grad.data<T>(), codes.data<T>(), ctx.saved(0).data<T>(),
                                                            geo, dw.data(), ctx.needs_grad(2) ? db.data() : nullptr);
            return {Tensor(), Tensor(std::move(dw)), ctx.needs_grad(2) ? Tensor(std::move(db)) : Tensor()};
          });
        }
        const Tensor indices = dispatch_float(codes.dtype(), op, [&](auto t) {
          using T = decltype(t);
          xt::xarray<std::int64_t> idx =
              xt::xarray<std::int64_t>::from_shape({geo.n, geo.c_out, geo.oh / 2, geo.ow / 2});
          kernels::relu_pool_indices(codes.data<T>(), geo, idx.data());
          return Tensor(std::move(idx));
        });
        const Tensor masked = detail::relu_backward(grad, values, ctx.create_graph());
        const std::vector<std::int64_t> pooled_dims = {
            static_cast<std::int64_t>(geo.n), static_cast<std::int64_t>(geo.c_out),
            static_cast<std::int64_t>(geo.oh / 2), static_cast<std::int64_t>(geo.ow / 2)};
        const Tensor g =
            detail::max_pool2d_backward(flatten ? reshape(masked, pooled_dims) : masked, indices, geo.output_shape());
        return {ctx.needs_grad(0) ? conv2d_backward_input(g, ctx.saved(1), xs, conv) : Tensor(),
                ctx.needs_grad(1) ? conv2d_backward_weight(g, ctx.saved(0), ws, conv) : Tensor(),
                ctx.needs_grad(2) ? channel_sum(g) : Tensor()};
      });
}

}  // namespace

Tensor conv2d_relu_max_pool2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& conv,
                              const MaxPool2dOptions& pool) {
  return relu_pool(x, weight, bias, conv, pool, false);
}

Tensor conv2d_relu_max_pool2d_flatten(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& conv,
                                      const MaxPool2dOptions& pool) {
  return relu_pool(x, weight, bias, conv, pool, true);
}

// d conv2d(x, w, b) = conv2d_backward_input(g, w), conv2d_backward_weight(g, x), Σ_{n,h,w} g
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& options) {
  return conv2d_impl(x, weight, bias, options, false);
}

// d relu(conv2d(x, w, b)) = the same with g masked where the output is zero
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& options) {
  return conv2d_impl(x, weight, bias, options, true);
}

// d backward_input(g, w) = conv2d(gg, w), conv2d_backward_weight(g, gg)
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dArgs& options) {
  const ConvGeometry geo = plan_conv(input_shape, weight.shape(), options, "conv2d_backward_input");
  check_dtypes(grad_out, weight, "conv2d_backward_input", "grad_out", "weight");
  check_grad_out(grad_out, geo, "conv2d_backward_input");
  Tensor out = dispatch_float(grad_out.dtype(), "conv2d_backward_input", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> dx = xt::xarray<T>::from_shape(geo.input_shape());
    kernels::conv2d_backward_input(grad_out.data<T>(), weight.data<T>(), geo, dx.data());
    return Tensor(std::move(dx));
  });
  return record({.name = "conv2d_backward_input", .inputs = {grad_out, weight}, .saved = {grad_out, weight}}, out,
                [ws = weight.shape(), options](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {ctx.needs_grad(0) ? conv2d(gg, ctx.saved(1), {}, options) : Tensor(),
                          ctx.needs_grad(1) ? conv2d_backward_weight(ctx.saved(0), gg, ws, options) : Tensor()};
                });
}

// d backward_weight(g, x) = conv2d(x, gg), conv2d_backward_input(g, gg)
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dArgs& options) {
  const ConvGeometry geo = plan_conv(x.shape(), weight_shape, options, "conv2d_backward_weight");
  check_dtypes(grad_out, x, "conv2d_backward_weight", "grad_out", "x");
  check_grad_out(grad_out, geo, "conv2d_backward_weight");
  Tensor out = dispatch_float(grad_out.dtype(), "conv2d_backward_weight", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> dw = xt::xarray<T>::from_shape(geo.weight_shape());
    kernels::conv2d_backward_weight(grad_out.data<T>(), x.data<T>(), geo, dw.data());
    return Tensor(std::move(dw));
  });
  return record({.name = "conv2d_backward_weight", .inputs = {grad_out, x}, .saved = {grad_out, x}}, out,
                [xs = x.shape(), options](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {ctx.needs_grad(0) ? conv2d(ctx.saved(1), gg, {}, options) : Tensor(),
                          ctx.needs_grad(1) ? conv2d_backward_input(ctx.saved(0), gg, xs, options) : Tensor()};
                });
}

}  // namespace tg
