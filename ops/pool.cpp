// Pooling. Max pooling finds value and argmax in one pass; its backward is a scatter to the
// saved argmax, whose own backward is the matching gather (and back), so it is differentiable to
// any order. Average pooling and its backward are each other's adjoints in the same way.
#include "tapegrad/ops/pool.hpp"

#include <algorithm>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/kernels/pool.hpp"
#include "tapegrad/ops/detail/pool_backward.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

using kernels::PoolGeometry;

PoolGeometry plan_pool(const Shape& xs, Size2 kernel, const std::optional<Size2>& stride_opt, Size2 padding,
                       std::string_view op) {
  TG_CHECK(xs.size() == 4, "{}: expected input x of rank 4 [N,C,H,W], got shape {}", op, shape_str(xs));
  const Size2 stride = stride_opt.value_or(kernel);
  TG_CHECK(kernel.h > 0 && kernel.w > 0, "{}: kernel must be positive, got [{}, {}] (x {})", op, kernel.h, kernel.w,
           shape_str(xs));
  TG_CHECK(stride.h > 0 && stride.w > 0, "{}: stride must be positive, got [{}, {}] (x {})", op, stride.h, stride.w,
           shape_str(xs));
  TG_CHECK(padding.h >= 0 && padding.w >= 0 && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w,
           "{}: padding must be between 0 and half the kernel, got padding [{}, {}] for kernel [{}, {}]", op, padding.h,
           padding.w, kernel.h, kernel.w);
  TG_CHECK(xs[2] > 0 && xs[3] > 0, "{}: x {} has empty planes (H or W is 0)", op, shape_str(xs));
  PoolGeometry g{};
  g.n = xs[0], g.c = xs[1], g.h = xs[2], g.w = xs[3];
  g.kh = static_cast<std::size_t>(kernel.h), g.kw = static_cast<std::size_t>(kernel.w);
  g.sh = static_cast<std::size_t>(stride.h), g.sw = static_cast<std::size_t>(stride.w);
  g.ph = static_cast<std::size_t>(padding.h), g.pw = static_cast<std::size_t>(padding.w);
  const std::size_t padded_h = g.h + 2 * g.ph, padded_w = g.w + 2 * g.pw;
  TG_CHECK(g.kh <= padded_h && g.kw <= padded_w,
           "{}: kernel [{}, {}] is larger than the padded input {}x{} (x {}, padding [{}, {}])", op, g.kh, g.kw,
           padded_h, padded_w, shape_str(xs), g.ph, g.pw);
  g.oh = (padded_h - g.kh) / g.sh + 1;
  g.ow = (padded_w - g.kw) / g.sw + 1;
  return g;
}

Tensor max_pool_gather(const Tensor& x, const Tensor& indices, const PoolGeometry& geo);

// out [N,C,H,W] with out[plane][indices] += g: the gradient of max pooling.
// d scatter(g) = gather(gg) at the same indices
Tensor max_pool_scatter(const Tensor& g, const Tensor& indices, const PoolGeometry& geo) {
  Tensor out = dispatch_float(g.dtype(), "max_pool2d_backward", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape({geo.n, geo.c, geo.h, geo.w});
    kernels::max_pool2d_backward(g.data<T>(), indices.data<std::int64_t>(), geo, r.data());
    return Tensor(std::move(r));
  });
  return record({.name = "max_pool2d_backward", .inputs = {g}, .saved = {indices}}, out,
                [geo](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {max_pool_gather(gg, ctx.saved(0), geo)};
                });
}

// out[plane][k] = x[plane][indices[plane][k]].
// d gather(x) = scatter(gg) to the same indices
Tensor max_pool_gather(const Tensor& x, const Tensor& indices, const PoolGeometry& geo) {
  Tensor out = dispatch_float(x.dtype(), "max_pool2d_backward", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape({geo.n, geo.c, geo.oh, geo.ow});
    kernels::max_pool2d_gather(x.data<T>(), indices.data<std::int64_t>(), geo, r.data());
    return Tensor(std::move(r));
  });
  return record({.name = "max_pool2d_backward_backward", .inputs = {x}, .saved = {indices}}, out,
                [geo](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {max_pool_scatter(gg, ctx.saved(0), geo)};
                });
}

void check_float(const Tensor& x, std::string_view op) {
  TG_CHECK(is_floating(x.dtype()), "{}: expected a float32 or float64 tensor, got {} {}", op, x.dtype(),
           shape_str(x.shape()));
}

Tensor avg_pool2d_backward(const Tensor& g, const Shape& input_shape, const AvgPool2dOptions& options);

// d avg_pool(x) = avg_pool2d_backward(g)
Tensor avg_pool2d_impl(const Tensor& x, const AvgPool2dOptions& options, std::string_view op) {
  check_float(x, op);
  const PoolGeometry geo = plan_pool(x.shape(), options.kernel, options.stride, options.padding, op);
  Tensor out = dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape({geo.n, geo.c, geo.oh, geo.ow});
    kernels::avg_pool2d(x.data<T>(), geo, options.count_include_pad, r.data());
    return Tensor(std::move(r));
  });
  return record({.name = "avg_pool2d", .inputs = {x}}, out,
                [xs = x.shape(), options](const BackwardContext&, const Tensor& g) -> TensorList {
                  return {avg_pool2d_backward(g, xs, options)};
                });
}

// d avg_pool2d_backward(g) = avg_pool2d(gg): the two are adjoint linear maps.
Tensor avg_pool2d_backward(const Tensor& g, const Shape& input_shape, const AvgPool2dOptions& options) {
  const PoolGeometry geo =
      plan_pool(input_shape, options.kernel, options.stride, options.padding, "avg_pool2d_backward");
  Tensor out = dispatch_float(g.dtype(), "avg_pool2d_backward", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(input_shape);
    kernels::avg_pool2d_backward(g.data<T>(), geo, options.count_include_pad, r.data());
    return Tensor(std::move(r));
  });
  return record({.name = "avg_pool2d_backward", .inputs = {g}}, out,
                [options](const BackwardContext&, const Tensor& gg) -> TensorList {
                  return {avg_pool2d_impl(gg, options, "avg_pool2d")};
                });
}

}  // namespace

// d max_pool2d(x) = g routed to each window's argmax
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, const MaxPool2dOptions& options) {
  check_float(x, "max_pool2d");
  const PoolGeometry geo = plan_pool(x.shape(), options.kernel, options.stride, options.padding, "max_pool2d");
  const Shape out_shape{geo.n, geo.c, geo.oh, geo.ow};
  xt::xarray<std::int64_t> idx = xt::xarray<std::int64_t>::from_shape(out_shape);
  Tensor out = dispatch_float(x.dtype(), "max_pool2d", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(out_shape);
    kernels::max_pool2d(x.data<T>(), geo, r.data(), idx.data());
    return Tensor(std::move(r));
  });
  Tensor indices(std::move(idx));
  Tensor values = record({.name = "max_pool2d", .inputs = {x}, .saved = {indices}}, out,
                         [geo](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                           return {max_pool_scatter(g, ctx.saved(0), geo)};
                         });
  return {values, indices};
}

Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& options) {
  return max_pool2d_with_indices(x, options).first;
}

Tensor avg_pool2d(const Tensor& x, const AvgPool2dOptions& options) {
  return avg_pool2d_impl(x, options, "avg_pool2d");
}

// d global_avg_pool2d(x) = g / (H*W) spread over each plane
Tensor global_avg_pool2d(const Tensor& x) {
  const Shape xs = x.shape();
  TG_CHECK(xs.size() == 4, "global_avg_pool2d: expected input x of rank 4 [N,C,H,W], got shape {}", shape_str(xs));
  TG_CHECK(xs[2] * xs[3] > 0, "global_avg_pool2d: x {} has empty planes", shape_str(xs));
  const std::size_t plane = xs[2] * xs[3];
  Tensor out = dispatch_float(x.dtype(), "global_avg_pool2d", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape({xs[0], xs[1]});
    const T* in = x.data<T>();
    for (std::size_t p = 0; p < xs[0] * xs[1]; ++p) {
      T acc = 0;
      for (std::size_t k = 0; k < plane; ++k) acc += in[p * plane + k];
      r.data()[p] = acc / static_cast<T>(plane);
    }
    return Tensor(std::move(r));
  });
  return record({.name = "global_avg_pool2d", .inputs = {x}}, out,
                [xs, plane](const BackwardContext&, const Tensor& g) -> TensorList {
                  const auto n = static_cast<std::int64_t>(xs[0]), c = static_cast<std::int64_t>(xs[1]);
                  return {broadcast_to(mul(reshape(g, {n, c, 1, 1}), 1.0 / static_cast<double>(plane)), xs)};
                });
}

Tensor detail::max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& input_shape) {
  // The 2x2, stride 2 windows of the fused conv2d_relu_max_pool2d, the one caller.
  const PoolGeometry geo = plan_pool(input_shape, 2, std::nullopt, 0, "max_pool2d_backward");
  TG_CHECK(g.shape() == Shape({geo.n, geo.c, geo.oh, geo.ow}) && indices.shape() == g.shape(),
           "max_pool2d_backward: gradient {} and indices {} do not fit 2x2 windows of {}", shape_str(g.shape()),
           shape_str(indices.shape()), shape_str(input_shape));
  return max_pool_scatter(g, indices, geo);
}

}  // namespace tg
