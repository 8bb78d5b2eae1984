// Statistics: each forward reduces contiguous rows (x permuted so that the reduced axes come
// last), and each backward is built from differentiable ops on the saved input and output, as
// PyTorch's derivative formulas are, so NaN and the infinities come out as there.
#include "tapegrad/ops/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/detail/reduction.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/mask.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {

using detail::expand_back;
using detail::plan;
using detail::Reduction;

namespace {

void check_floating(const Tensor& x, std::string_view op) {
  TG_CHECK(is_floating(x.dtype()), "{}: expected a float32 or float64 tensor, got {} {}", op, x.dtype(),
           shape_str(x.shape()));
}

// out[g] = row(x's g-th slice over the reduced axes, its length) in the output's order; the
// row sees x's values as double, and the result is rounded to x's dtype.
template <class Row>
Tensor reduce_rows(const Tensor& x, const Reduction& r, Row row) {
  std::vector<int> perm;
  for (std::size_t d = 0; d < x.ndim(); ++d)
    if (!std::binary_search(r.axes.begin(), r.axes.end(), d)) perm.push_back(static_cast<int>(d));
  for (std::size_t d : r.axes) perm.push_back(static_cast<int>(d));
  const Tensor rows = (x.ndim() > 0 ? permute(x.detach(), perm) : x.detach()).to(float64);
  const double* in = rows.data<double>();
  xt::xarray<double> out = xt::xarray<double>::from_shape(r.out_shape);
  for (std::size_t g = 0, n = r.count; g < out.size(); ++g) out.data()[g] = row(in + g * n, n);
  return Tensor(std::move(out)).to(x.dtype());
}

Tensor zero_like_scalar(const Tensor& t) { return scalar_tensor(0.0, t.dtype()); }

// N - correction: PyTorch divides by it clamped at 0 in the forward and unclamped in the
// backward (a negative dof gives a finite gradient there).
double dof_of(const Reduction& r, std::int64_t correction) {
  return static_cast<double>(r.count) - static_cast<double>(correction);
}

// d var(x) = g * 2 (x - mean) / dof, in differentiable ops (std's backward ends in it too).
Tensor var_backward(const Tensor& g, const Tensor& x, const Reduction& r, double dof) {
  const Axes axes(r.axes.begin(), r.axes.end());
  return mul(mul(expand_back(g, r, x.shape()), 2.0 / dof), sub(x, mean(x, axes, true)));
}

}  // namespace

Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdims) {
  check_floating(x, "logsumexp");
  const Reduction r = plan(x, axes, keepdims, "logsumexp");
  // PyTorch's shift: the slice's maximum, or 0 when that is infinite (so -inf stays -inf and
  // inf gives inf rather than inf - inf).
  Tensor out = reduce_rows(x, r, [](const double* v, std::size_t n) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n; ++i) m = std::isnan(v[i]) || v[i] > m ? v[i] : m;
    if (std::isinf(m)) m = 0;
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += std::exp(v[i] - m);
    return std::log(s) + m;
  });
  // d logsumexp(x) = g * exp(x - out)
  return record({.name = "logsumexp", .inputs = {x}, .saved = {x}, .save_output = true}, out,
                [r](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& s = ctx.saved(0);
                  return {mul(expand_back(g, r, s.shape()), exp(sub(s, expand_back(ctx.output(), r, s.shape()))))};
                });
}

Tensor var(const Tensor& x, const Axes& axes, std::int64_t correction, bool keepdims) {
  check_floating(x, "var");
  const Reduction r = plan(x, axes, keepdims, "var");
  const double dof = dof_of(r, correction);
  // Two passes in double: the mean, then the squared deviations.
  Tensor out = reduce_rows(x, r, [dof](const double* v, std::size_t n) {
    double mean = 0, ss = 0;
    for (std::size_t i = 0; i < n; ++i) mean += v[i];
    mean /= static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) ss += (v[i] - mean) * (v[i] - mean);
    return ss / std::max(0.0, dof);
  });
  // d var(x) = g * 2 (x - mean) / dof
  return record({.name = "var", .inputs = {x}, .saved = {x}}, out,
                [r, dof](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  return {var_backward(g, ctx.saved(0), r, dof)};
                });
}

Tensor std(const Tensor& x, const Axes& axes, std::int64_t correction, bool keepdims) {
  check_floating(x, "std");
  const Reduction r = plan(x, axes, keepdims, "std");
  const double dof = dof_of(r, correction);
  Tensor out = sqrt(var(x.detach(), axes, correction, keepdims));
  // d std(x) = var's backward of g / (2 std), taken as 0 where std is 0
  return record({.name = "std", .inputs = {x}, .saved = {x}, .save_output = true}, out,
                [r, dof](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor y = ctx.output();
                  const Tensor g_var = masked_fill(div(g, mul(y, 2.0)), eq(y, zero_like_scalar(y)), 0.0);
                  return {var_backward(g_var, ctx.saved(0), r, dof)};
                });
}

Tensor detail::variance_of_all(const Tensor& x, std::int64_t correction, bool root) {
  const Axes axes = detail::all_axes(x);
  return root ? std(x, axes, correction) : var(x, axes, correction);
}
Tensor var(const Tensor& x) { return var(x, 1); }
Tensor std(const Tensor& x) { return std(x, 1); }

namespace {

// -1, 0 or 1 as x's dtype; 0 at NaN, as torch.sign (constant: no gradient).
Tensor sign_of(const Tensor& x) {
  const Tensor zero = zero_like_scalar(x);
  return sub(gt(x, zero), lt(x, zero)).to(x.dtype());
}

double norm_row(const double* v, std::size_t n, double p) {
  double acc = 0;
  if (p == 0) {
    for (std::size_t i = 0; i < n; ++i) acc += v[i] != 0 ? 1.0 : 0.0;
    return acc;
  }
  if (std::isinf(p)) {
    acc = std::abs(v[0]);
    for (std::size_t i = 1; i < n; ++i) {
      const double a = std::abs(v[i]);
      if (std::isnan(a) || (p > 0 ? a > acc : a < acc)) acc = a;
      if (std::isnan(acc)) break;
    }
    return acc;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const double a = std::abs(v[i]);
    acc += p == 1 ? a : p == 2 ? a * a : std::pow(a, p);
  }
  return p == 1 ? acc : p == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / p);
}

// PyTorch's norm derivative for each p, from the input x, the norm y and g (both spread back
// over x's shape); `axes` are the reduced ones (kept, for the tie count of the inf norms).
Tensor norm_backward(const Tensor& x, const Tensor& y, const Tensor& g, double p, const Axes& axes) {
  if (p == 0) return zeros_like(x);
  if (p == 1) return mul(sign_of(x), g);
  const Tensor zero = zero_like_scalar(x);
  if (p == 2) return mul(g, masked_fill(div(x, y), eq(y, zero), 0.0));
  if (std::isinf(p)) {
    // The maxima (minima), NaN included, share the gradient evenly.
    const Tensor ax = abs(x);
    const Tensor winners = add(eq(ax, y), ne(ax, ax)).to(x.dtype());
    return mul(sign_of(x), mul(div(g, sum(winners, axes, true)), winners));
  }
  if (p < 1) {
    const Tensor scaled = mul(sign_of(x), masked_fill(pow(abs(x), p - 1), eq(x, zero), 0.0));
    return mul(mul(scaled, g), pow(y, 1 - p));
  }
  const Tensor scaled = p < 2 ? mul(sign_of(x), pow(abs(x), p - 1)) : mul(x, pow(abs(x), p - 2));
  return mul(scaled, masked_fill(div(g, pow(y, p - 1)), eq(y, zero), 0.0));
}

}  // namespace

Tensor norm(const Tensor& x, double p, const Axes& axes, bool keepdims) {
  check_floating(x, "norm");
  TG_CHECK(!std::isnan(p), "norm: p must be a number, got nan for x {} {}", x.dtype(), shape_str(x.shape()));
  const Axes used = axes.empty() ? detail::all_axes(x) : axes;
  const Reduction r = plan(x, used, keepdims, "norm");
  TG_CHECK(!std::isinf(p) || r.count > 0,
           "norm: the {}inf norm of x {} {} over axes [{}] reduces empty slices, which have no such norm",
           p > 0 ? "" : "-", x.dtype(), shape_str(x.shape()), fmt::join(used, ", "));
  Tensor out = reduce_rows(x, r, [p](const double* v, std::size_t n) { return norm_row(v, n, p); });
  // d norm(x) = g * x |x|^(p-2) / norm^(p-1), in PyTorch's special forms for p = 0, 1, 2, ±inf
  return record({.name = "norm", .inputs = {x}, .saved = {x}, .save_output = true}, out,
                [r, p](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& s = ctx.saved(0);
                  return {norm_backward(s, expand_back(ctx.output(), r, s.shape()), expand_back(g, r, s.shape()), p,
                                        Axes(r.axes.begin(), r.axes.end()))};
                });
}

namespace {

// The running sum along `axis`, from the end when `reverse`; floats accumulate in double (as
// PyTorch's CPU kernel), each partial sum rounded to the dtype.
Tensor running_sum(const Tensor& x, std::size_t axis, bool reverse) {
  const Shape s = x.shape();
  std::size_t outer = 1, n = 1, inner = 1;
  for (std::size_t d = 0; d < s.size(); ++d) (d < axis ? outer : d == axis ? n : inner) *= s[d];
  Tensor out = dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    xt::xarray<T> r = xt::xarray<T>::from_shape(s);
    const T* in = x.data<T>();
    T* o = r.data();
    for (std::size_t b = 0; b < outer; ++b)
      for (std::size_t i = 0; i < inner; ++i) {
        Acc acc = 0;
        for (std::size_t k = 0; k < n; ++k) {
          const std::size_t p = (b * n + (reverse ? n - 1 - k : k)) * inner + i;
          acc += static_cast<Acc>(in[p]);
          o[p] = static_cast<T>(acc);
        }
      }
    return Tensor(std::move(r));
  });
  // d cumsum(x) = the running sum of g in the other direction
  return record({.name = reverse ? "cumsum_reverse" : "cumsum", .inputs = {x}}, out,
                [axis, reverse](const BackwardContext&, const Tensor& g) -> TensorList {
                  return {running_sum(g, axis, !reverse)};
                });
}

}  // namespace

Tensor cumsum(const Tensor& x, int axis) {
  // A 0-d tensor counts as one element along axis 0, as in PyTorch.
  const int rank = std::max(static_cast<int>(x.ndim()), 1);
  TG_CHECK(axis >= -rank && axis < rank, "cumsum: axis {} is out of range for x {} {}", axis, x.dtype(),
           shape_str(x.shape()));
  return running_sum(x, normalize_axis(axis, static_cast<std::size_t>(rank), "cumsum"), false);
}

}  // namespace tg
