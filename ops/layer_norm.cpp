// layer_norm and group_norm. layer_norm views x as [rows, M] (M: the normalized trailing block);
// a row's statistics and its backward are one SIMD pass each (kernels/layer_norm.hpp). When
// the backward itself is recorded (create_graph), it is rebuilt from differentiable ops on the
// saved x instead. group_norm is layer_norm over each group, then the per-channel affine.
#include "tapegrad/kernels/layer_norm.hpp"

#include <cmath>
#include <numeric>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/norm.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

struct RowView {
  std::size_t rows = 0, m = 0;  // x as [rows, m]
};

// The plain backward, only the gradients asked for: dx from the row kernel, and with xhat =
// (x-mean)*rstd, dw = Σrows g*xhat and db = Σrows g.
struct Wanted {
  bool x, weight, bias;
};
template <class T>
TensorList layer_norm_backward_rows(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                    const Tensor& rstd, const RowView& v, const Shape& normalized_shape,
                                    Wanted wanted) {
  const T* pg = g.data<T>();
  const T* px = x.data<T>();
  const T* pw = weight.defined() ? weight.data<T>() : nullptr;
  const T* pm = mean.data<T>();
  const T* pr = rstd.data<T>();
  Tensor dx;
  if (wanted.x) {
    xt::xarray<T> a = xt::xarray<T>::from_shape(x.shape());
    kernels::layer_norm_backward(pg, px, pw, pm, pr, v.rows, v.m, a.data());
    dx = Tensor(std::move(a));
  }
  // The parameter gradients sum over rows: one column pass (rows in order, so the result does not
  // depend on the thread count).
  Tensor dw, db;
  if (wanted.weight) {
    xt::xarray<T> a = xt::zeros<T>(normalized_shape);
    for (std::size_t r = 0; r < v.rows; ++r)
      for (std::size_t j = 0; j < v.m; ++j) a.data()[j] += pg[r * v.m + j] * (px[r * v.m + j] - pm[r]) * pr[r];
    dw = Tensor(std::move(a));
  }
  if (wanted.bias) {
    xt::xarray<T> a = xt::zeros<T>(normalized_shape);
    for (std::size_t r = 0; r < v.rows; ++r)
      for (std::size_t j = 0; j < v.m; ++j) a.data()[j] += pg[r * v.m + j];
    db = Tensor(std::move(a));
  }
  return {dx, dw, db};
}

void check_affine(const Tensor& t, const Tensor& x, const Shape& normalized_shape, std::string_view name) {
  if (!t.defined()) return;
  TG_CHECK(t.shape() == normalized_shape, "layer_norm: {} has shape {}, expected normalized_shape {}", name,
           shape_str(t.shape()), shape_str(normalized_shape));
  TG_CHECK(t.dtype() == x.dtype(), "layer_norm: {} is {} but x is {}", name, t.dtype(), x.dtype());
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const Shape xs = x.shape();
  const std::size_t k = normalized_shape.size();
  TG_CHECK(k >= 1 && xs.size() >= k && std::equal(normalized_shape.begin(), normalized_shape.end(), xs.end() - k),
           "layer_norm: normalized_shape {} must be the last axes of x, got x {}", shape_str(normalized_shape),
           shape_str(xs));
  TG_CHECK(is_floating(x.dtype()), "layer_norm: expected a float x, got {} {}", x.dtype(), shape_str(xs));
  TG_CHECK(eps >= 0, "layer_norm: eps must not be negative, got {}", eps);
  check_affine(weight, x, normalized_shape, "weight");
  check_affine(bias, x, normalized_shape, "bias");
  RowView v;
  v.m = std::accumulate(normalized_shape.begin(), normalized_shape.end(), std::size_t{1}, std::multiplies<>());
  v.rows = std::accumulate(xs.begin(), xs.end() - static_cast<std::ptrdiff_t>(k), std::size_t{1}, std::multiplies<>());

  Tensor out, mean_t, rstd_t;
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    xt::xarray<T> y = xt::xarray<T>::from_shape(xs);
    xt::xarray<T> m = xt::xarray<T>::from_shape({v.rows});
    xt::xarray<T> r = xt::xarray<T>::from_shape({v.rows});
    if (v.m > 0)
      kernels::layer_norm_forward(x.data<T>(), weight.defined() ? weight.data<T>() : nullptr,
                                  bias.defined() ? bias.data<T>() : nullptr, v.rows, v.m, eps, y.data(), m.data(),
                                  r.data());
    out = Tensor(std::move(y));
    mean_t = Tensor(std::move(m));
    rstd_t = Tensor(std::move(r));
  });

  // The normalized axes (last k) and the leading ones the affine gradients sum over.
  Axes norm_axes, lead_axes;
  for (std::size_t i = 0; i < xs.size(); ++i)
    (i + k >= xs.size() ? norm_axes : lead_axes).push_back(static_cast<int>(i));
  TensorList saved = {x, mean_t, rstd_t};
  if (weight.defined()) saved.push_back(weight);
  // d ln(x) = rstd·(g·w - mean(g·w) - xhat·mean(g·w·xhat)), Σ g·xhat, Σ g
  return record(
      {.name = "layer_norm", .inputs = {x, weight, bias}, .saved = saved}, out,
      [v, normalized_shape, norm_axes, lead_axes, eps, has_weight = weight.defined(), has_bias = bias.defined()](
          const BackwardContext& ctx, const Tensor& g) -> TensorList {
        const Tensor& sx = ctx.saved(0);
        const Tensor w = has_weight ? ctx.saved(3) : Tensor();
        TensorList r;
        if (!ctx.create_graph()) {
          r = dispatch_float(sx.dtype(), "layer_norm", [&](auto tag) {
            return layer_norm_backward_rows<decltype(tag)>(g, sx, w, ctx.saved(1), ctx.saved(2), v, normalized_shape,
                                                           {ctx.needs_grad(0), ctx.needs_grad(1), ctx.needs_grad(2)});
          });
        } else {
          const Tensor xc = sub(sx, mean(sx, norm_axes, true));
          const Tensor rstd = pow(add(mean(mul(xc, xc), norm_axes, true), eps), -0.5);
          const Tensor xhat = mul(xc, rstd);
          const Tensor dxhat = w.defined() ? mul(g, w) : g;
          const Tensor dx = mul(
              rstd, sub(sub(dxhat, mean(dxhat, norm_axes, true)), mul(xhat, mean(mul(dxhat, xhat), norm_axes, true))));
          r = {dx, w.defined() ? sum(mul(g, xhat), lead_axes) : Tensor(), has_bias ? sum(g, lead_axes) : Tensor()};
        }
        for (std::size_t i = 0; i < 3; ++i)
          if (!ctx.needs_grad(i)) r[i] = Tensor();
        return r;
      });
}

Tensor group_norm(const Tensor& x, std::size_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  const Shape xs = x.shape();
  TG_CHECK(xs.size() >= 2, "group_norm: expected x of rank >= 2 [N, C, ...], got shape {}", shape_str(xs));
  const std::size_t c = xs[1];
  TG_CHECK(num_groups > 0 && c % num_groups == 0,
           "group_norm: the {} channels of x {} do not split into {} groups (C must be a multiple of num_groups)", c,
           shape_str(xs), num_groups);
  for (const auto& [t, name] : {std::pair{weight, "weight"}, std::pair{bias, "bias"}}) {
    if (!t.defined()) continue;
    TG_CHECK(t.shape() == Shape{c}, "group_norm: {} has shape {}, expected [{}] (the channels of x {})", name,
             shape_str(t.shape()), c, shape_str(xs));
    TG_CHECK(t.dtype() == x.dtype(), "group_norm: {} is {} but x is {}", name, t.dtype(), x.dtype());
  }
  const std::size_t group_size =
      std::accumulate(xs.begin() + 1, xs.end(), std::size_t{1}, std::multiplies<>()) / num_groups;
  const auto n = static_cast<std::int64_t>(xs[0]), g = static_cast<std::int64_t>(num_groups);
  Tensor y = layer_norm(reshape(x, {n, g, static_cast<std::int64_t>(group_size)}), {group_size}, {}, {}, eps);
  y = reshape(y, std::vector<std::int64_t>(xs.begin(), xs.end()));
  // The per-channel affine broadcasts from [C, 1, ...].
  std::vector<std::int64_t> channel_shape(xs.size() - 1, 1);
  channel_shape[0] = static_cast<std::int64_t>(c);
  if (weight.defined()) y = mul(y, reshape(weight, channel_shape));
  if (bias.defined()) y = add(y, reshape(bias, channel_shape));
  return y;
}

}  // namespace tg
