// Activations: a scalar forward per element; the plain backward is one fused pass g * f'(x)
// (grad_map), and under create_graph the same f'(x) is built from differentiable ops. The scalar
// formulas are PyTorch 1.13's CPU ones, so NaN and the infinities come out as there.
#include "tapegrad/ops/activation.hpp"

#include <cmath>
#include <numbers>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/detail/map.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/special.hpp"

namespace tg {

using detail::unary_float;

namespace {

constexpr double kSqrt1_2 = std::numbers::sqrt2 / 2;                          // 1/√2
constexpr double kInvSqrt2Pi = std::numbers::inv_sqrtpi * kSqrt1_2;           // 1/√(2π): the normal pdf at 0
constexpr double kTanhBeta = std::numbers::sqrt2 * std::numbers::inv_sqrtpi;  // √(2/π)
constexpr double kTanhKappa = 0.044715;

// g * dfdx(x) elementwise (g and x of one shape and dtype): the plain backward in one pass.
template <class F>
Tensor grad_map(const Tensor& g, const Tensor& x, std::string_view op, F dfdx) {
  TG_CHECK(g.dtype() == x.dtype() && g.shape() == x.shape(),
           "backward of {}: gradient {} {} does not match input {} {}", op, g.dtype(), shape_str(g.shape()), x.dtype(),
           shape_str(x.shape()));
  return dispatch_float(g.dtype(), op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(g.shape());
    const T* pg = g.data<T>();
    const T* px = x.data<T>();
    T* pr = r.data();
    for (std::size_t i = 0, n = r.size(); i < n; ++i) pr[i] = pg[i] * dfdx(px[i]);
    return Tensor(std::move(r));
  });
}

Tensor constant(double v, const Tensor& like) { return scalar_tensor(v, like.dtype()); }

// q, with no derivative where `at` holds: at a kink, PyTorch's first derivative takes one side
// and its second derivative the other.
Tensor flat_where(const Tensor& at, const Tensor& q) { return where(at, q.detach(), q); }

}  // namespace

// d softplus(x) = g * z/(z+1) with z = exp(beta*x); g where beta*x > threshold
Tensor softplus(const Tensor& x, double beta, double threshold) {
  // PyTorch rounds beta and threshold to the tensor's dtype, and accepts any beta (0 gives inf).
  Tensor out = unary_float(x, "softplus", [=](auto v) {
    using T = decltype(v);
    const T b = static_cast<T>(beta), bx = v * b;
    return bx > static_cast<T>(threshold) ? v : std::log1p(std::exp(bx)) / b;
  });
  return record({.name = "softplus", .inputs = {x}, .saved = {x}}, out,
                [beta, threshold](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& s = ctx.saved(0);
                  if (!ctx.create_graph())
                    return {grad_map(g, s, "softplus", [=](auto v) {
                      using T = decltype(v);
                      const T bx = v * static_cast<T>(beta), z = std::exp(bx);
                      return bx > static_cast<T>(threshold) ? T(1) : z / (z + T(1));
                    })};
                  // sigmoid(bx) = z/(z+1), without the z = inf that would turn where's zero
                  // gradient into NaN above the threshold.
                  const Tensor bx = mul(s, beta), t = constant(threshold, s);
                  return {mul(g, where(gt(bx, t), constant(1.0, s), flat_where(eq(bx, t), sigmoid(bx))))};
                });
}

namespace {

// The tanh form (the exact one has SIMD kernels): 0.5·x·(1 + tanh(β(x + κx³))) and its slope.
template <class T>
T gelu_tanh_value(T x) {
  const T inner = static_cast<T>(kTanhBeta) * (x + static_cast<T>(kTanhKappa) * x * x * x);
  return T(0.5) * x * (T(1) + std::tanh(inner));
}

template <class T>
T gelu_tanh_slope(T x) {
  const T beta = static_cast<T>(kTanhBeta), kappa = static_cast<T>(kTanhKappa);
  const T t = std::tanh(beta * (x + kappa * x * x * x));
  const T inner_slope = beta * (T(1) + T(3) * kappa * x * x);
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * inner_slope;
}

// gelu'(x) from differentiable ops, the same formulas as gelu_slope.
Tensor gelu_slope(const Tensor& x, GeluApproximate approximate) {
  if (approximate == GeluApproximate::tanh) {
    const Tensor x2 = x * x;
    const Tensor t = tanh((x + x2 * x * kTanhKappa) * kTanhBeta);
    const Tensor inner_slope = (x2 * (3.0 * kTanhKappa) + 1.0) * kTanhBeta;
    return (t + 1.0) * 0.5 + x * 0.5 * (1.0 - t * t) * inner_slope;
  }
  const Tensor cdf = (erf(x * kSqrt1_2) + 1.0) * 0.5;
  const Tensor pdf = exp(x * x * -0.5) * kInvSqrt2Pi;
  return cdf + x * pdf;
}

}  // namespace

// d gelu(x) = g * (Φ(x) + x φ(x)), or the tanh form's derivative
// (The exact form runs the SIMD kernels; the tanh form a scalar map.)
Tensor gelu(const Tensor& x, GeluApproximate approximate) {
  const bool exact = approximate == GeluApproximate::none;
  Tensor out = exact ? detail::unary_kernel(x, "gelu", kernels::UnaryOp::gelu)
                     : unary_float(x, "gelu", [](auto v) { return gelu_tanh_value(v); });
  return record({.name = "gelu", .inputs = {x}, .saved = {x}}, out,
                [approximate, exact](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& s = ctx.saved(0);
                  if (!ctx.create_graph() && exact)
                    return {detail::unary_grad_kernel(g, s, "gelu", kernels::UnaryGrad::gelu)};
                  if (!ctx.create_graph()) return {grad_map(g, s, "gelu", [](auto v) { return gelu_tanh_slope(v); })};
                  return {mul(g, gelu_slope(s, approximate))};
                });
}

// d elu(x) = g for x > 0, g * alpha * exp(x) otherwise
Tensor elu(const Tensor& x, double alpha) {
  // expm1, where PyTorch 1.13 computes exp(x) - 1: the same to rounding, and accurate near 0.
  Tensor out = unary_float(x, "elu", [=](auto v) {
    using T = decltype(v);
    return v > T(0) ? v : static_cast<T>(alpha) * std::expm1(v);
  });
  return record({.name = "elu", .inputs = {x}, .saved = {x}}, out,
                [alpha](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& s = ctx.saved(0);
                  // NaN takes the exp branch, so its gradient is NaN, as PyTorch's vectorized kernel gives.
                  if (!ctx.create_graph())
                    return {grad_map(g, s, "elu", [=](auto v) {
                      using T = decltype(v);
                      return v > T(0) ? T(1) : static_cast<T>(alpha) * std::exp(v);
                    })};
                  // exp of x <= 0 only, so that x = inf gives no inf * 0 in the second derivative.
                  const Tensor zero = constant(0.0, s), positive = gt(s, zero);
                  const Tensor negative = exp(where(positive, zero, s)) * alpha;
                  return {mul(g, where(positive, constant(1.0, s), flat_where(eq(s, zero), negative)))};
                });
}

// d silu(x) = g * s * (1 + x * (1 - s)) with s = sigmoid(x)
Tensor silu(const Tensor& x) {
  Tensor out = unary_float(x, "silu", [](auto v) {
    using T = decltype(v);
    return v / (T(1) + std::exp(-v));
  });
  return record({.name = "silu", .inputs = {x}, .saved = {x}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& s = ctx.saved(0);
                  if (!ctx.create_graph())
                    return {grad_map(g, s, "silu", [](auto v) {
                      using T = decltype(v);
                      const T sig = T(1) / (T(1) + std::exp(-v));
                      return sig * (T(1) + v * (T(1) - sig));
                    })};
                  const Tensor sig = sigmoid(s);
                  return {mul(g, sig * (1.0 + s * (1.0 - sig)))};
                });
}

}  // namespace tg
