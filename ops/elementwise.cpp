// Elementwise ops: forward kernel, then the recorded backward right below it.
#include "tapegrad/ops/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <xtensor/xbroadcast.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/detail/map.hpp"

namespace tg {

using detail::binary_kernel;
using detail::binary_map;
using detail::IndexType;
using detail::is_nan;
using detail::SameType;
using detail::unary_float;
using detail::unary_grad_kernel;
using detail::unary_kernel;
using kernels::BinaryOp;
using kernels::UnaryGrad;
using kernels::UnaryOp;

namespace {
// A constant (non-recorded) float mask of x's dtype: 1 where pred(x) holds, else `otherwise`.
template <class Pred>
Tensor mask_of(const Tensor& x, Pred pred, double otherwise = 0.0) {
  return unary_float(x.detach(), "mask", [&](auto v) { return pred(v) ? 1.0 : otherwise; });
}
}  // namespace

namespace {
// f(x) on an int64 tensor, kept int64 (relu, abs, clamp with integer bounds, as PyTorch); integer
// tensors never require grad, so nothing is recorded.
template <class F>
Tensor int64_map(const Tensor& x, F f) {
  const ArrayRef<std::int64_t> a = x.array<std::int64_t>();
  xt::xarray<std::int64_t> r = xt::xarray<std::int64_t>::from_shape(a.shape());
  std::transform(a.begin(), a.end(), r.begin(), f);
  return Tensor(std::move(r));
}
}  // namespace

Tensor detail::unary_kernel(const Tensor& x, std::string_view name, UnaryOp op) {
  return dispatch_float(x.dtype(), name, [&](auto t) {
    using T = decltype(t);
    const ArrayRef<T> a = x.array<T>();
    xt::xarray<T> r = xt::xarray<T>::from_shape(a.shape());
    kernels::unary(op, a.data(), r.data(), a.size());
    return Tensor(std::move(r));
  });
}

Tensor detail::unary_grad_kernel(const Tensor& g, const Tensor& s, std::string_view name, UnaryGrad op,
                                 kernels::UnaryGradParams params) {
  TG_CHECK(g.dtype() == s.dtype() && g.shape() == s.shape(),
           "backward of {}: gradient {} {} does not match the saved {} {}", name, g.dtype(), shape_str(g.shape()),
           s.dtype(), shape_str(s.shape()));
  return dispatch_float(g.dtype(), name, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(g.shape());
    kernels::unary_grad(op, params, g.data<T>(), s.data<T>(), r.data(), r.size());
    return Tensor(std::move(r));
  });
}

Tensor detail::binary_kernel(const Tensor& a, const Tensor& b, std::string_view name, BinaryOp op) {
  if (a.dtype() == Dtype::int64 && b.dtype() == Dtype::int64) {
    TG_CHECK(op != BinaryOp::div, "{}: int64 operands are divided in float (div promotes them first)", name);
    // Wrapping on overflow, as PyTorch's int64 (signed overflow is undefined in C++).
    return binary_map<SameType>(a, b, name, [op](std::int64_t u, std::int64_t v) {
      const auto x = static_cast<std::uint64_t>(u), y = static_cast<std::uint64_t>(v);
      return static_cast<std::int64_t>(op == BinaryOp::add ? x + y : op == BinaryOp::sub ? x - y : x * y);
    });
  }
  TG_CHECK(a.dtype() == b.dtype(), "{}: dtypes differ: {} {} and {} {}; convert one with to()", name, a.dtype(),
           shape_str(a.shape()), b.dtype(), shape_str(b.shape()));
  const Shape sa = a.shape(), sb = b.shape();
  const Shape out_shape = sa == sb ? sa : broadcast_shapes(sa, sb, name);
  return dispatch_float(a.dtype(), name, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(out_shape);
    if (r.size() > 0)
      kernels::binary(op, kernels::broadcast_plan(sa, sb, out_shape), a.data<T>(), b.data<T>(), r.data());
    return Tensor(std::move(r));
  });
}

Dtype result_type(const Tensor& a, const Tensor& b) {
  const bool a_is_0d = a.ndim() == 0, b_is_0d = b.ndim() == 0;
  if (a_is_0d == b_is_0d) return promote_types(a.dtype(), b.dtype());
  const Dtype with_axes = a_is_0d ? b.dtype() : a.dtype();
  const Dtype zero_dim = a_is_0d ? a.dtype() : b.dtype();
  return !is_floating(with_axes) && is_floating(zero_dim) ? zero_dim : with_axes;
}

Dtype result_type(const Tensor& a, Scalar b) {
  return b.is_integral() || is_floating(a.dtype()) ? a.dtype() : default_float;
}

Tensor detail::as_floating(const Tensor& x) { return is_floating(x.dtype()) ? x : x.to(default_float); }

namespace {
// Both operands in the dtype the op computes in (differentiable conversions).
struct Promoted {
  Tensor a, b;
};
Promoted promoted(const Tensor& a, const Tensor& b, Dtype d) { return {a.to(d), b.to(d)}; }
Promoted promoted(const Tensor& a, const Tensor& b) { return promoted(a, b, result_type(a, b)); }

// A scalar operand as a 0-d tensor of result_type(a, s): the binary op with `a` then computes in
// that dtype.
Tensor scalar_operand(const Tensor& a, Scalar s) { return scalar_tensor(s.value(), result_type(a, s)); }

// base ** exponent for integers, wrapping on overflow as PyTorch's int64 does.
std::int64_t integer_power(std::int64_t base, std::int64_t exponent) {
  TG_CHECK(exponent >= 0, "pow: integers to negative integer powers are not allowed (exponent {})", exponent);
  auto b = static_cast<std::uint64_t>(base);
  std::uint64_t r = 1;
  for (auto e = static_cast<std::uint64_t>(exponent); e > 0; e >>= 1, b *= b)
    if (e & 1) r *= b;
  return static_cast<std::int64_t>(r);
}
}  // namespace

// d(a+b) = g, g
Tensor add(const Tensor& a_in, const Tensor& b_in) {
  const Promoted ab = promoted(a_in, b_in);
  const Tensor &a = ab.a, &b = ab.b;
  Tensor out = binary_kernel(a, b, "add", BinaryOp::add);
  return record({.name = "add", .inputs = {a, b}}, out, [](const BackwardContext&, const Tensor& g) -> TensorList {
    return {g, g};
  });
}

// d(a-b) = g, -g
Tensor sub(const Tensor& a_in, const Tensor& b_in) {
  const Promoted ab = promoted(a_in, b_in);
  const Tensor &a = ab.a, &b = ab.b;
  Tensor out = binary_kernel(a, b, "sub", BinaryOp::sub);
  return record({.name = "sub", .inputs = {a, b}}, out, [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
    return {g, ctx.needs_grad(1) ? neg(g) : Tensor()};
  });
}

// d(a*b) = g*b, g*a
Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  const Promoted ab = promoted(a_in, b_in);
  const Tensor &a = ab.a, &b = ab.b;
  Tensor out = binary_kernel(a, b, "mul", BinaryOp::mul);
  return record({.name = "mul", .inputs = {a, b}, .saved = {a, b}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  return {ctx.needs_grad(0) ? mul(g, ctx.saved(1)) : Tensor(),
                          ctx.needs_grad(1) ? mul(g, ctx.saved(0)) : Tensor()};
                });
}

// True division: integers are divided as floats. d(a/b) = g/b, -g*a/b²
Tensor div(const Tensor& a_in, const Tensor& b_in) {
  const Dtype d = result_type(a_in, b_in);
  const Promoted ab = promoted(a_in, b_in, is_floating(d) ? d : default_float);
  const Tensor &a = ab.a, &b = ab.b;
  Tensor out = binary_kernel(a, b, "div", BinaryOp::div);
  return record({.name = "div", .inputs = {a, b}, .saved = {a, b}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& sa = ctx.saved(0);
                  const Tensor& sb = ctx.saved(1);
                  return {ctx.needs_grad(0) ? div(g, sb) : Tensor(),
                          ctx.needs_grad(1) ? neg(div(mul(g, sa), mul(sb, sb))) : Tensor()};
                });
}

// d(-x) = -g
Tensor neg(const Tensor& x) {
  Tensor out;
  if (x.dtype() == Dtype::int64) {
    xt::xarray<std::int64_t> r = x.array<std::int64_t>();
    for (std::int64_t& v : r) v = static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(v));  // wraps, as PyTorch
    out = Tensor(std::move(r));
  } else {
    out = unary_kernel(x, "neg", UnaryOp::neg);
  }
  return record({.name = "neg", .inputs = {x}}, out,
                [](const BackwardContext&, const Tensor& g) -> TensorList { return {neg(g)}; });
}

// d(a^b) = g*b*a^(b-1), g*a^b*log(a); as PyTorch, 0 where b == 0 (first) and where a == 0 with
// b >= 0 (second): the limits there, where the formulas give 0 * inf.
Tensor pow(const Tensor& a_in, const Tensor& b_in) {
  const Promoted ab = promoted(a_in, b_in);
  const Tensor &a = ab.a, &b = ab.b;
  Tensor out = binary_map<SameType>(a, b, "pow", [](auto u, auto v) {
    if constexpr (std::is_integral_v<decltype(u)>)
      return integer_power(u, v);
    else
      return std::pow(u, v);
  });
  if (!is_floating(out.dtype())) return out;
  return record({.name = "pow", .inputs = {a, b}, .saved = {a, b}, .save_output = true}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& sa = ctx.saved(0);
                  const Tensor& sb = ctx.saved(1);
                  const Tensor zero = zeros_like(g);
                  Tensor da, db;
                  if (ctx.needs_grad(0))
                    da = where(eq(sb, zeros_like(sb)), zero, mul(g, mul(sb, pow(sa, sub(sb, ones_like(sb))))));
                  if (ctx.needs_grad(1)) {
                    const Tensor zero_base = mul(eq(sa, zeros_like(sa)), ge(sb, zeros_like(sb)));
                    db = where(zero_base, zero, mul(g, mul(ctx.output(), log(sa))));
                  }
                  return {da, db};
                });
}

// d(x^e) = g*e*x^(e-1)
Tensor pow(const Tensor& x_in, Scalar exponent_in) {
  if (result_type(x_in, exponent_in) == Dtype::int64)
    return pow(x_in, scalar_tensor(static_cast<double>(exponent_in.integer()), Dtype::int64));
  const Tensor x = x_in.to(result_type(x_in, exponent_in));
  const double exponent = exponent_in.value();
  Tensor out = unary_float(x, "pow", [exponent](auto v) { return std::pow(v, static_cast<decltype(v)>(exponent)); });
  return record({.name = "pow", .inputs = {x}, .saved = {x}}, out,
                [exponent](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  if (exponent == 0.0) return {zeros_like(g)};
                  return {mul(g, mul(pow(ctx.saved(0), exponent - 1.0), exponent))};
                });
}

// d exp(x) = g*exp(x)
Tensor exp(const Tensor& x_in) {
  const Tensor x = detail::as_floating(x_in);
  Tensor out = unary_kernel(x, "exp", UnaryOp::exp);
  return record({.name = "exp", .inputs = {x}, .save_output = true}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  if (!ctx.create_graph()) return {unary_grad_kernel(g, ctx.output(), "exp", UnaryGrad::times_saved)};
                  return {mul(g, ctx.output())};
                });
}

// d log(x) = g/x
Tensor log(const Tensor& x_in) {
  const Tensor x = detail::as_floating(x_in);
  Tensor out = unary_kernel(x, "log", UnaryOp::log);
  return record({.name = "log", .inputs = {x}, .saved = {x}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList { return {div(g, ctx.saved(0))}; });
}

// d sqrt(x) = g/(2 sqrt(x))
Tensor sqrt(const Tensor& x_in) {
  const Tensor x = detail::as_floating(x_in);
  Tensor out = unary_kernel(x, "sqrt", UnaryOp::sqrt);
  return record(
      {.name = "sqrt", .inputs = {x}, .save_output = true}, out,
      [](const BackwardContext& ctx, const Tensor& g) -> TensorList { return {div(g, mul(ctx.output(), 2.0))}; });
}

// d|x| = g*sign(x)
Tensor abs(const Tensor& x) {
  // INT64_MIN stays itself, as in PyTorch (two's complement), without the undefined std::abs.
  if (x.dtype() == int64)
    return int64_map(
        x, [](std::int64_t v) { return v < 0 ? static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(v)) : v; });
  Tensor out = unary_float(x, "abs", [](auto v) { return std::abs(v); });
  return record(
      {.name = "abs", .inputs = {x}, .saved = {x}}, out, [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
        const Tensor sign =
            unary_float(ctx.saved(0).detach(), "abs", [](auto v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); });
        return {mul(g, sign)};
      });
}

Tensor detail::relu_backward(const Tensor& g, const Tensor& out, bool create_graph) {
  if (!create_graph) return unary_grad_kernel(g, out, "relu", UnaryGrad::relu);
  return mul(g, mask_of(out, [](auto v) { return !(v <= 0); }));  // a NaN output passes g, as PyTorch's
}

// d relu(x) = g*[x>0]
Tensor relu(const Tensor& x) {
  if (x.dtype() == int64) return int64_map(x, [](std::int64_t v) { return std::max<std::int64_t>(v, 0); });
  Tensor out = unary_kernel(x, "relu", UnaryOp::relu);
  return record({.name = "relu", .inputs = {x}, .save_output = true}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  return {detail::relu_backward(g, ctx.output(), ctx.create_graph())};
                });
}

// d leaky_relu(x) = g*(x>0 ? 1 : slope)
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  Tensor out = unary_float(
      x, "leaky_relu", [negative_slope](auto v) { return v > 0 ? v : static_cast<decltype(v)>(negative_slope * v); });
  return record(
      {.name = "leaky_relu", .inputs = {x}, .saved = {x}}, out,
      [negative_slope](const BackwardContext& ctx, const Tensor& g) -> TensorList {
        if (!ctx.create_graph())
          return {unary_grad_kernel(g, ctx.saved(0), "leaky_relu", UnaryGrad::leaky_relu, {.low = negative_slope})};
        return {mul(g, mask_of(
                           ctx.saved(0), [](auto v) { return v > 0; }, negative_slope))};
      });
}

// d sigmoid(x) = g*s*(1-s)
Tensor sigmoid(const Tensor& x_in) {
  const Tensor x = detail::as_floating(x_in);
  Tensor out = unary_kernel(x, "sigmoid", UnaryOp::sigmoid);
  return record({.name = "sigmoid", .inputs = {x}, .save_output = true}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor s = ctx.output();
                  if (!ctx.create_graph()) return {unary_grad_kernel(g, s, "sigmoid", UnaryGrad::sigmoid)};
                  return {mul(g, mul(s, sub(ones_like(s), s)))};
                });
}

// d tanh(x) = g*(1-t²)
Tensor tanh(const Tensor& x_in) {
  const Tensor x = detail::as_floating(x_in);
  Tensor out = unary_kernel(x, "tanh", UnaryOp::tanh);
  return record({.name = "tanh", .inputs = {x}, .save_output = true}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor t = ctx.output();
                  if (!ctx.create_graph()) return {unary_grad_kernel(g, t, "tanh", UnaryGrad::tanh)};
                  return {mul(g, sub(ones_like(t), mul(t, t)))};
                });
}

// d clamp(x) = g*[low <= x <= high]
Tensor clamp(const Tensor& x_in, Scalar low_bound, Scalar high_bound) {
  const double low = low_bound.value(), high = high_bound.value();
  TG_CHECK(low <= high, "clamp: needs low <= high, got low {} and high {}", low, high);
  // int64 with integer bounds stays int64; a floating bound makes it float32, as PyTorch promotes.
  if (x_in.dtype() == int64 && low_bound.is_integral() && high_bound.is_integral())
    return int64_map(x_in, [lo = low_bound.integer(), hi = high_bound.integer()](std::int64_t v) {
      return std::min(std::max(v, lo), hi);
    });
  const Tensor x = detail::as_floating(x_in);
  Tensor out = unary_float(x, "clamp", [low, high](auto v) {
    using T = decltype(v);
    return std::min(std::max(v, static_cast<T>(low)), static_cast<T>(high));
  });
  return record({.name = "clamp", .inputs = {x}, .saved = {x}}, out,
                [low, high](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  if (!ctx.create_graph())
                    return {unary_grad_kernel(g, ctx.saved(0), "clamp", UnaryGrad::clamp, {.low = low, .high = high})};
                  return {mul(g, mask_of(ctx.saved(0), [&](auto v) { return v >= low && v <= high; }))};
                });
}

namespace {
// Gradient share of `a` in max(a, b) (1 where a wins, 1/2 on ties), or of min with `greater`
// false. Where either is NaN, both get all of it, as in PyTorch.
Tensor winner_share(const Tensor& a, const Tensor& b, bool greater) {
  return binary_map<SameType>(a.detach(), b.detach(), greater ? "maximum" : "minimum", [greater](auto u, auto v) {
    using T = decltype(u);
    if (u == v) return T(0.5);
    return (greater ? u < v : u > v) ? T(0) : T(1);
  });
}

Tensor extremum(const Tensor& a_in, const Tensor& b_in, bool greater) {
  const Promoted ab = promoted(a_in, b_in);
  const Tensor &a = ab.a, &b = ab.b;
  const char* name = greater ? "maximum" : "minimum";
  // A NaN on either side is the result, as in PyTorch.
  Tensor out = binary_map<SameType>(
      a, b, name, [greater](auto u, auto v) { return (greater ? u > v : u < v) || is_nan(u) ? u : v; });
  // d max(a,b) = g*share_a, g*share_b
  return record({.name = name, .inputs = {a, b}, .saved = {a, b}}, out,
                [greater](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& sa = ctx.saved(0);
                  const Tensor& sb = ctx.saved(1);
                  return {ctx.needs_grad(0) ? mul(g, winner_share(sa, sb, greater)) : Tensor(),
                          ctx.needs_grad(1) ? mul(g, winner_share(sb, sa, greater)) : Tensor()};
                });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(a, b, false); }

// d where(c, a, b) = -, g*[c], g*[!c]
Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  const Promoted ab = promoted(a_in, b_in);
  const Tensor &a = ab.a, &b = ab.b;
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const Tensor c = cond.detach().to(a.dtype());
  Tensor out = dispatch_all(a.dtype(), [&](auto t) {
    using T = decltype(t);
    const xt::xarray<T> pc = xt::broadcast(c.array<T>(), shape);
    const xt::xarray<T> pa = xt::broadcast(a.array<T>(), shape);
    const xt::xarray<T> pb = xt::broadcast(b.array<T>(), shape);
    xt::xarray<T> r = xt::xarray<T>::from_shape(shape);
    for (std::size_t i = 0; i < r.size(); ++i) r.data()[i] = pc.data()[i] != T(0) ? pa.data()[i] : pb.data()[i];
    return Tensor(std::move(r));
  });
  return record({.name = "where", .inputs = {cond, a, b}, .saved = {c}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& mask = ctx.saved(0);
                  const Tensor zero = zeros_like(g);
                  return {Tensor(), ctx.needs_grad(1) ? where(mask, g, zero) : Tensor(),
                          ctx.needs_grad(2) ? where(mask, zero, g) : Tensor()};
                });
}

Tensor add(const Tensor& a, Scalar b) { return add(a, scalar_operand(a, b)); }
Tensor mul(const Tensor& a, Scalar b) { return mul(a, scalar_operand(a, b)); }

namespace {
// pred(a, b) → int64 0/1, in the dtype both are promoted to.
template <class Pred>
Tensor compare(const Tensor& a, const Tensor& b, std::string_view name, Pred pred) {
  const auto [pa, pb] = promoted(a.detach(), b.detach());
  return binary_map<IndexType>(pa, pb, name, pred);
}
}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) {
  return compare(a, b, "eq", [](auto u, auto v) { return u == v; });
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return compare(a, b, "ne", [](auto u, auto v) { return u != v; });
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return compare(a, b, "lt", [](auto u, auto v) { return u < v; });
}
Tensor le(const Tensor& a, const Tensor& b) {
  return compare(a, b, "le", [](auto u, auto v) { return u <= v; });
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return compare(a, b, "gt", [](auto u, auto v) { return u > v; });
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return compare(a, b, "ge", [](auto u, auto v) { return u >= v; });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
Tensor operator+(Scalar a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, scalar_operand(a, b)); }
Tensor operator-(Scalar a, const Tensor& b) { return sub(scalar_operand(b, a), b); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Tensor& a, Scalar b) { return mul(a, Scalar(1.0 / b.value())); }
Tensor operator/(Scalar a, const Tensor& b) { return div(scalar_operand(b, a), b); }

}  // namespace tg
