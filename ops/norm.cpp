// batch_norm: fused per-channel kernels over x viewed as [N, C, S]. The training backward is one
// fused pass for a plain backward, and differentiable ops recomputing the statistics from the
// saved x when the backward itself is recorded (create_graph).
#include "tapegrad/ops/norm.hpp"

#include <cmath>
#include <numeric>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

struct ChannelView {
  std::size_t n = 0, c = 0, s = 1;             // x as [n, c, s]
  std::size_t count() const { return n * s; }  // elements per channel
};

void check_channel_vector(const Tensor& t, const Tensor& x, std::size_t c, std::string_view name) {
  if (!t.defined()) return;
  TG_CHECK(t.shape() == Shape{c}, "batch_norm: {} has shape {}, expected [{}] (the channels of x {})", name,
           shape_str(t.shape()), c, shape_str(x.shape()));
  TG_CHECK(t.dtype() == x.dtype(), "batch_norm: {} is {} but x is {}", name, t.dtype(), x.dtype());
}

// Axes reduced per channel, and the [1,C,1,...] shape a channel vector broadcasts from.
Axes channel_axes(std::size_t ndim) {
  Axes a = {0};
  for (std::size_t i = 2; i < ndim; ++i) a.push_back(static_cast<int>(i));
  return a;
}
std::vector<std::int64_t> channel_shape(std::size_t ndim, std::size_t c) {
  std::vector<std::int64_t> s(ndim, 1);
  s[1] = static_cast<std::int64_t>(c);
  return s;
}

// Per-channel mean and biased variance (two passes, for accuracy).
template <class T>
void channel_stats(const T* x, const ChannelView& v, T* mean, T* var) {
  for (std::size_t c = 0; c < v.c; ++c) {
    double acc = 0;
    for (std::size_t n = 0; n < v.n; ++n) {
      const T* p = x + (n * v.c + c) * v.s;
      for (std::size_t k = 0; k < v.s; ++k) acc += p[k];
    }
    const double m = acc / static_cast<double>(v.count());
    double sq = 0;
    for (std::size_t n = 0; n < v.n; ++n) {
      const T* p = x + (n * v.c + c) * v.s;
      for (std::size_t k = 0; k < v.s; ++k) sq += (p[k] - m) * (p[k] - m);
    }
    mean[c] = static_cast<T>(m);
    var[c] = static_cast<T>(sq / static_cast<double>(v.count()));
  }
}

// y = (x - shift[c]) * scale[c] + offset[c]
template <class T>
void channel_affine(const T* x, const ChannelView& v, const T* shift, const T* scale, const T* offset, T* y) {
  for (std::size_t n = 0; n < v.n; ++n)
    for (std::size_t c = 0; c < v.c; ++c) {
      const T* p = x + (n * v.c + c) * v.s;
      T* q = y + (n * v.c + c) * v.s;
      const T sh = shift[c], sc = scale[c], of = offset[c];
      for (std::size_t k = 0; k < v.s; ++k) q[k] = (p[k] - sh) * sc + of;
    }
}

// Fused training backward: xhat = (x-mean)*invstd;
// dx = w*invstd/M * (M g - Σg - xhat Σ(g xhat)), dw = Σ g xhat, db = Σ g.
TensorList train_backward_fused(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                const Tensor& invstd, const ChannelView& v) {
  return dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* pg = g.data<T>();
    const T* px = x.data<T>();
    const T* pm = mean.data<T>();
    const T* pi = invstd.data<T>();
    xt::xarray<T> dx = xt::xarray<T>::from_shape(x.shape());
    xt::xarray<T> dw = xt::xarray<T>::from_shape({v.c});
    xt::xarray<T> db = xt::xarray<T>::from_shape({v.c});
    const T M = static_cast<T>(v.count());
    for (std::size_t c = 0; c < v.c; ++c) {
      T sum_g = 0, sum_gx = 0;
      for (std::size_t n = 0; n < v.n; ++n) {
        const std::size_t o = (n * v.c + c) * v.s;
        for (std::size_t k = 0; k < v.s; ++k) {
          sum_g += pg[o + k];
          sum_gx += pg[o + k] * (px[o + k] - pm[c]) * pi[c];
        }
      }
      dw.data()[c] = sum_gx;
      db.data()[c] = sum_g;
      const T w = weight.defined() ? weight.data<T>()[c] : T(1);
      const T k1 = w * pi[c] / M;
      for (std::size_t n = 0; n < v.n; ++n) {
        const std::size_t o = (n * v.c + c) * v.s;
        for (std::size_t k = 0; k < v.s; ++k) {
          const T xhat = (px[o + k] - pm[c]) * pi[c];
          dx.data()[o + k] = k1 * (M * pg[o + k] - sum_g - xhat * sum_gx);
        }
      }
    }
    return TensorList{Tensor(std::move(dx)), Tensor(std::move(dw)), Tensor(std::move(db))};
  });
}

// The weight, saved last when batch_norm has one.
Tensor saved_weight(const BackwardContext& ctx, bool has_weight) { return has_weight ? ctx.saved(3) : Tensor(); }

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, const BatchNormArgs& options) {
  const Shape xs = x.shape();
  TG_CHECK(xs.size() >= 2, "batch_norm: expected x of rank >= 2 [N,C,...], got shape {}", shape_str(xs));
  TG_CHECK(is_floating(x.dtype()), "batch_norm: expected a float x, got {} {}", x.dtype(), shape_str(xs));
  ChannelView v;
  v.n = xs[0], v.c = xs[1];
  v.s = std::accumulate(xs.begin() + 2, xs.end(), std::size_t{1}, std::multiplies<>());
  check_channel_vector(running_mean, x, v.c, "running_mean");
  check_channel_vector(running_var, x, v.c, "running_var");
  check_channel_vector(weight, x, v.c, "weight");
  check_channel_vector(bias, x, v.c, "bias");
  TG_CHECK(running_mean.defined() == running_var.defined(),
           "batch_norm: give both running_mean and running_var, or neither");
  TG_CHECK(options.eps > 0, "batch_norm: eps must be positive, got {}", options.eps);
  TG_CHECK(options.training || running_mean.defined(),
           "batch_norm: evaluation mode needs running_mean and running_var (x {})", shape_str(xs));
  TG_CHECK(!options.training || v.count() > 1, "batch_norm: training needs more than one value per channel, got x {}",
           shape_str(xs));

  // Per-channel shift (mean), scale (invstd·weight) and offset (bias), then one affine pass.
  Tensor batch_mean, invstd, out;
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    xt::xarray<T> m = xt::xarray<T>::from_shape({v.c});
    xt::xarray<T> var = xt::xarray<T>::from_shape({v.c});
    if (options.training) {
      channel_stats(x.data<T>(), v, m.data(), var.data());
    } else {
      m = running_mean.array<T>();
      var = running_var.array<T>();
    }
    xt::xarray<T> inv = xt::xarray<T>::from_shape({v.c});
    xt::xarray<T> scale = xt::xarray<T>::from_shape({v.c});
    xt::xarray<T> offset = xt::xarray<T>::from_shape({v.c});
    for (std::size_t c = 0; c < v.c; ++c) {
      inv(c) = static_cast<T>(1.0 / std::sqrt(static_cast<double>(var(c)) + options.eps));
      scale(c) = inv(c) * (weight.defined() ? weight.data<T>()[c] : T(1));
      offset(c) = bias.defined() ? bias.data<T>()[c] : T(0);
    }
    xt::xarray<T> y = xt::xarray<T>::from_shape(xs);
    channel_affine(x.data<T>(), v, m.data(), scale.data(), offset.data(), y.data());
    if (options.training && running_mean.defined()) {
      // In place on buffers (they never require grad); the unbiased variance, as PyTorch.
      const T mom = static_cast<T>(options.momentum);
      const T unbias = static_cast<T>(static_cast<double>(v.count()) / static_cast<double>(v.count() - 1));
      Tensor rm_handle = running_mean, rv_handle = running_var;  // handles share the buffers
      auto rm = rm_handle.mutable_array<T>();
      auto rv = rv_handle.mutable_array<T>();
      for (std::size_t c = 0; c < v.c; ++c) {
        rm(c) = (1 - mom) * rm(c) + mom * m(c);
        rv(c) = (1 - mom) * rv(c) + mom * var(c) * unbias;
      }
    }
    batch_mean = Tensor(std::move(m));
    invstd = Tensor(std::move(inv));
    out = Tensor(std::move(y));
  });

  // Saved: x, the statistics used (shift [C], invstd [C]), and the weight when there is one.
  TensorList saved = {x, batch_mean, invstd};
  if (weight.defined()) saved.push_back(weight);
  const auto bshape = channel_shape(xs.size(), v.c);
  const Axes axes = channel_axes(xs.size());
  if (options.training) {
    // d bn(x) = w·invstd·(g - mean(g) - xhat·mean(g·xhat)), Σ g·xhat, Σ g
    return record({.name = "batch_norm", .inputs = {x, weight, bias}, .saved = saved}, out,
                  [v, bshape, axes, eps = options.eps, has_weight = weight.defined()](const BackwardContext& ctx,
                                                                                      const Tensor& g) -> TensorList {
                    const Tensor& sx = ctx.saved(0);
                    const Tensor w = saved_weight(ctx, has_weight);
                    if (!ctx.create_graph()) {
                      TensorList r = train_backward_fused(g, sx, w, ctx.saved(1), ctx.saved(2), v);
                      for (std::size_t i = 0; i < 3; ++i)
                        if (!ctx.needs_grad(i)) r[i] = Tensor();
                      return r;
                    }
                    const Tensor xc = sub(sx, mean(sx, axes, true));
                    const Tensor inv = pow(add(mean(mul(xc, xc), axes, true), eps), -0.5);
                    const Tensor xhat = mul(xc, inv);
                    Tensor scale = w.defined() ? mul(reshape(w, bshape), inv) : inv;
                    const Tensor dx =
                        mul(scale, sub(sub(g, mean(g, axes, true)), mul(xhat, mean(mul(g, xhat), axes, true))));
                    return {ctx.needs_grad(0) ? dx : Tensor(), ctx.needs_grad(1) ? sum(mul(g, xhat), axes) : Tensor(),
                            ctx.needs_grad(2) ? sum(g, axes) : Tensor()};
                  });
  }
  // d bn_eval(x) = g·w·invstd, Σ g·xhat, Σ g with the running statistics as constants
  return record(
      {.name = "batch_norm", .inputs = {x, weight, bias}, .saved = saved}, out,
      [bshape, axes, has_weight = weight.defined()](const BackwardContext& ctx, const Tensor& g) -> TensorList {
        const Tensor w = saved_weight(ctx, has_weight);
        const Tensor inv = reshape(ctx.saved(2), bshape);
        Tensor dx;
        if (ctx.needs_grad(0)) dx = mul(g, w.defined() ? mul(reshape(w, bshape), inv) : inv);
        Tensor dw;
        if (ctx.needs_grad(1)) dw = sum(mul(g, mul(sub(ctx.saved(0), reshape(ctx.saved(1), bshape)), inv)), axes);
        return {dx, dw, ctx.needs_grad(2) ? sum(g, axes) : Tensor()};
      });
}

}  // namespace tg
