// softmax / log_softmax: fused forward kernels, and backward either as one fused loop (plain
// backward) or, when the backward itself is being recorded (create_graph), as differentiable ops
// on the saved output.
#include "tapegrad/ops/softmax.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tg {
namespace {

// x viewed as [outer, n, inner] around the reduced axis.
struct AxisView {
  std::size_t outer = 1, n = 1, inner = 1;
  int axis = 0;
};

AxisView view_of(const Tensor& x, int axis, std::string_view op) {
  TG_CHECK(is_floating(x.dtype()), "{}: expected a float32 or float64 tensor, got {} {}", op, x.dtype(),
           shape_str(x.shape()));
  const Shape s = x.shape();
  TG_CHECK(!s.empty(), "{}: expected a tensor of rank >= 1, got a 0-d tensor", op);
  AxisView v;
  const std::size_t a = normalize_axis(axis, s.size(), op);
  v.axis = static_cast<int>(a);
  for (std::size_t i = 0; i < a; ++i) v.outer *= s[i];
  v.n = s[a];
  for (std::size_t i = a + 1; i < s.size(); ++i) v.inner *= s[i];
  return v;
}

// Runs f(in_lane, out_lane, stride) for every lane along the axis.
template <class T, class F>
void for_lanes(const AxisView& v, const T* in, T* out, F f) {
  for (std::size_t o = 0; o < v.outer; ++o)
    for (std::size_t i = 0; i < v.inner; ++i) {
      const std::size_t base = o * v.n * v.inner + i;
      f(in + base, out + base, v.inner);
    }
}

template <class T>
void softmax_lane(const T* x, T* y, std::size_t n, std::size_t stride, bool log) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::size_t k = 0; k < n; ++k) m = std::max(m, x[k * stride]);
  T s = 0;
  if (!log) {
    // Each exp once: written to y, then scaled.
    for (std::size_t k = 0; k < n; ++k) s += (y[k * stride] = std::exp(x[k * stride] - m));
    const T inv = T(1) / s;
    for (std::size_t k = 0; k < n; ++k) y[k * stride] *= inv;
    return;
  }
  for (std::size_t k = 0; k < n; ++k) s += std::exp(x[k * stride] - m);
  // (x - m) - log s, not x - (m + log s): with |x| ~ 1e4 the sum m + log s would round away the
  // digits of log s in float32.
  const T log_s = std::log(s);
  for (std::size_t k = 0; k < n; ++k) y[k * stride] = (x[k * stride] - m) - log_s;
}

Tensor softmax_forward(const Tensor& x, const AxisView& v, bool log) {
  return dispatch_float(x.dtype(), "softmax", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(x.shape());
    for_lanes<T>(v, x.data<T>(), r.data(),
                 [&](const T* in, T* out, std::size_t stride) { softmax_lane(in, out, v.n, stride, log); });
    return Tensor(std::move(r));
  });
}

// Fused backward: log_softmax: dx = g - exp(y) Σg; softmax: dx = y (g - Σ g y).
Tensor softmax_backward_kernel(const Tensor& g, const Tensor& y, const AxisView& v, bool log) {
  return dispatch_float(g.dtype(), "softmax", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(g.shape());
    const T* pg = g.data<T>();
    const T* py = y.data<T>();
    T* pr = r.data();
    for (std::size_t o = 0; o < v.outer; ++o)
      for (std::size_t i = 0; i < v.inner; ++i) {
        const std::size_t base = o * v.n * v.inner + i, st = v.inner;
        T s = 0;
        if (log) {
          for (std::size_t k = 0; k < v.n; ++k) s += pg[base + k * st];
          for (std::size_t k = 0; k < v.n; ++k) pr[base + k * st] = pg[base + k * st] - std::exp(py[base + k * st]) * s;
        } else {
          for (std::size_t k = 0; k < v.n; ++k) s += pg[base + k * st] * py[base + k * st];
          for (std::size_t k = 0; k < v.n; ++k) pr[base + k * st] = py[base + k * st] * (pg[base + k * st] - s);
        }
      }
    return Tensor(std::move(r));
  });
}

}  // namespace

// d softmax(x) = y * (g - Σ g*y)
Tensor softmax(const Tensor& x, int axis) {
  const AxisView v = view_of(x, axis, "softmax");
  return record({.name = "softmax", .inputs = {x}, .save_output = true}, softmax_forward(x, v, false),
                [v](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor y = ctx.output();
                  if (!ctx.create_graph()) return {softmax_backward_kernel(g, y, v, false)};
                  return {mul(y, sub(g, sum(mul(g, y), {v.axis}, true)))};
                });
}

// d log_softmax(x) = g - exp(y) * Σ g
Tensor log_softmax(const Tensor& x, int axis) {
  const AxisView v = view_of(x, axis, "log_softmax");
  return record({.name = "log_softmax", .inputs = {x}, .save_output = true}, softmax_forward(x, v, true),
                [v](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor y = ctx.output();
                  if (!ctx.create_graph()) return {softmax_backward_kernel(g, y, v, true)};
                  return {sub(g, mul(exp(y), sum(g, {v.axis}, true)))};
                });
}

}  // namespace tg
