// Reductions: forward kernel, then the recorded backward right below it.
#include "tapegrad/ops/reduce.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/detail/map.hpp"
#include "tapegrad/ops/detail/reduction.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {

std::size_t normalize_axis(int axis, std::size_t ndim, std::string_view op) {
  const auto n = static_cast<int>(ndim);
  TG_CHECK(axis >= -n && axis < n, "{}: axis {} is out of range for a tensor of rank {}", op, axis, ndim);
  return static_cast<std::size_t>(axis < 0 ? axis + n : axis);
}

namespace {
std::vector<std::int64_t> as_signed(const Shape& s) { return {s.begin(), s.end()}; }
}  // namespace

namespace detail {

Reduction plan(const Tensor& x, const Axes& axes, bool keepdims, std::string_view op) {
  Reduction r;
  const Shape shape = x.shape();
  const auto rank = static_cast<int>(shape.size());
  for (int a : axes) {
    TG_CHECK(a >= -rank && a < rank, "{}: axis {} is out of range for shape {} (rank {})", op, a, shape_str(shape),
             rank);
    r.axes.push_back(normalize_axis(a, shape.size(), op));
  }
  std::sort(r.axes.begin(), r.axes.end());
  TG_CHECK(std::adjacent_find(r.axes.begin(), r.axes.end()) == r.axes.end(), "{}: axis repeated in [{}]", op,
           fmt::join(axes, ", "));
  r.kept_shape = shape;
  for (std::size_t a : r.axes) {
    r.count *= shape[a];
    r.kept_shape[a] = 1;
  }
  for (std::size_t i = 0; i < shape.size(); ++i)
    if (keepdims || !std::binary_search(r.axes.begin(), r.axes.end(), i)) r.out_shape.push_back(r.kept_shape[i]);
  return r;
}

Axes all_axes(const Tensor& x) {
  Axes a(x.ndim());
  std::iota(a.begin(), a.end(), 0);
  return a;
}

Tensor expand_back(const Tensor& g, const Reduction& r, const Shape& input_shape) {
  return broadcast_to(reshape(g, as_signed(r.kept_shape)), input_shape);
}

}  // namespace detail

namespace {
using detail::all_axes;
using detail::expand_back;
using detail::plan;
using detail::Reduction;

// out[kept position] = combine over the reduced axes, starting from `init`. A plain loop over
// x in memory order, the innermost axis tight: xtensor's immediate reducers crash on some
// shapes (full reductions) and are slower.
template <class Init, class Combine>
Tensor reduce_kernel(const Tensor& x, const Reduction& r, Init init, Combine combine) {
  return dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const Shape shape = x.shape();
    const std::size_t rank = shape.size();
    xt::xarray<T> out = xt::xarray<T>::from_shape(r.kept_shape);
    out.fill(init(T{}));
    // Stride in `out` of each input axis, 0 along reduced axes.
    std::vector<std::size_t> ostride(rank, 0);
    for (std::size_t d = rank, s = 1; d-- > 0;) {
      if (!std::binary_search(r.axes.begin(), r.axes.end(), d)) ostride[d] = s;
      s *= r.kept_shape[d];
    }
    const T* in = x.data<T>();
    T* o = out.data();
    const std::size_t total = x.numel();
    if (rank == 0 || total == 0) {
      if (total == 1) o[0] = combine(o[0], in[0]);
      out.reshape(r.out_shape);
      return Tensor(std::move(out));
    }
    const std::size_t last = shape[rank - 1], last_stride = ostride[rank - 1];
    Shape coord(rank, 0);
    std::size_t base = 0;
    for (std::size_t p = 0; p < total; p += last) {
      for (std::size_t i = 0; i < last; ++i) {
        T& slot = o[base + i * last_stride];
        slot = combine(slot, in[p + i]);
      }
      for (std::size_t d = rank - 1; d-- > 0;) {
        if (++coord[d] < shape[d]) {
          base += ostride[d];
          break;
        }
        base -= (shape[d] - 1) * ostride[d];
        coord[d] = 0;
      }
    }
    out.reshape(r.out_shape);
    return Tensor(std::move(out));
  });
}

}  // namespace

namespace {
// Whether r reduces exactly the innermost axes of `shape` (a full sum among them): x is then
// contiguous rows, each summed into one output element.
bool reduces_innermost(const Reduction& r, const Shape& shape) {
  if (r.axes.empty()) return false;
  for (std::size_t k = 0; k < r.axes.size(); ++k)
    if (r.axes[k] != shape.size() - r.axes.size() + k) return false;
  return true;
}
}  // namespace

// d sum(x) = g spread over the reduced axes
Tensor sum(const Tensor& x, const Axes& axes, bool keepdims) {
  const Reduction r = plan(x, axes, keepdims, "sum");
  Tensor out;
  if (is_floating(x.dtype()) && reduces_innermost(r, x.shape())) {
    // Rows summed in SIMD: the plain loop below adds one element at a time, a chain of
    // dependent adds that no compiler may reorder.
    out = dispatch_float(x.dtype(), "sum", [&](auto t) {
      using T = decltype(t);
      xt::xarray<T> o = xt::xarray<T>::from_shape(r.out_shape);
      kernels::row_sums(x.data<T>(), o.size(), r.count, o.data());
      return Tensor(std::move(o));
    });
  } else {
    out = reduce_kernel(
        x, r, [](auto t) { return decltype(t)(0); }, [](auto acc, auto v) { return acc + v; });
  }
  const Shape input_shape = x.shape();
  return record({.name = "sum", .inputs = {x}}, out,
                [r, input_shape](const BackwardContext&, const Tensor& g) -> TensorList {
                  return {expand_back(g, r, input_shape)};
                });
}

Tensor sum(const Tensor& x) { return sum(x, all_axes(x)); }

// mean = sum / count; over no elements 0 * (1/0): NaN, as PyTorch gives.
Tensor mean(const Tensor& x, const Axes& axes, bool keepdims) {
  TG_CHECK(is_floating(x.dtype()), "mean: needs a float tensor, got {}", x.dtype());
  const Reduction r = plan(x, axes, keepdims, "mean");
  const double scale = r.count > 0 ? 1.0 / static_cast<double>(r.count) : std::numeric_limits<double>::infinity();
  return mul(sum(x, axes, keepdims), scale);
}

Tensor mean(const Tensor& x) { return mean(x, all_axes(x)); }

namespace {
using detail::is_nan;

// Whether `candidate` replaces `best` as the first maximum (minimum): strictly greater (less),
// or the first NaN, which is the extreme of anything, as in PyTorch.
template <class T>
bool beats(T candidate, T best, bool is_max) {
  return (is_max ? candidate > best : candidate < best) || (is_nan(candidate) && !is_nan(best));
}

// d max(x) = g * [x == max] / (number of tied maxima). A NaN maximum: over axes, as PyTorch's
// amax, no element equals it and the whole slice's gradient is NaN (0/0); over everything, as
// torch.max(x), the NaNs share the gradient (`nan_wins`).
Tensor extreme(const Tensor& x, const Axes& axes, bool keepdims, bool is_max, bool nan_wins = false) {
  const char* name = is_max ? "max" : "min";
  const Reduction r = plan(x, axes, keepdims, name);
  // An empty axis has no extreme (PyTorch refuses it too); other axes of an empty tensor give an
  // empty result.
  for (std::size_t a : r.axes)
    TG_CHECK(x.shape()[a] > 0, "{}: cannot reduce over axis {} of shape {}, which is empty", name, a,
             shape_str(x.shape()));
  // The identity of max (min): -inf (+inf), or the extreme int64.
  auto identity = [is_max](auto t) {
    using L = std::numeric_limits<decltype(t)>;
    if constexpr (L::has_infinity)
      return is_max ? -L::infinity() : L::infinity();
    else
      return is_max ? L::lowest() : L::max();
  };
  Tensor out = reduce_kernel(x, r, identity, [is_max](auto acc, auto v) { return beats(v, acc, is_max) ? v : acc; });
  const Shape input_shape = x.shape();
  return record({.name = name, .inputs = {x}, .saved = {x}, .save_output = true}, out,
                [r, input_shape, nan_wins, name](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor extreme_everywhere = expand_back(ctx.output().detach(), r, input_shape);
                  const Tensor winners = detail::binary_map<detail::SameType>(
                                             ctx.saved(0).detach(), extreme_everywhere, name,
                                             [nan_wins](auto v, auto m) {
                                               using T = decltype(v);
                                               return v == m || (nan_wins && is_nan(v) && is_nan(m)) ? T(1) : T(0);
                                             })
                                             .to(g.dtype());
                  const Tensor ties = sum(winners, Axes(r.axes.begin(), r.axes.end()), true);
                  return {mul(expand_back(g, r, input_shape), div(winners, ties))};
                });
}
}  // namespace

Tensor max(const Tensor& x, const Axes& axes, bool keepdims) { return extreme(x, axes, keepdims, true); }
Tensor max(const Tensor& x) { return extreme(x, all_axes(x), false, true, true); }
Tensor min(const Tensor& x, const Axes& axes, bool keepdims) { return extreme(x, axes, keepdims, false); }
Tensor min(const Tensor& x) { return extreme(x, all_axes(x), false, false, true); }

Tensor argmax(const Tensor& x, int axis, bool keepdims) {
  const Shape shape = x.shape();
  const std::size_t a = normalize_axis(axis, shape.size(), "argmax");
  TG_CHECK(shape[a] > 0, "argmax: axis {} of shape {} is empty", axis, shape_str(shape));
  std::size_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < a; ++i) outer *= shape[i];
  for (std::size_t i = a + 1; i < shape.size(); ++i) inner *= shape[i];
  const std::size_t n = shape[a];
  Shape out_shape = shape;
  out_shape[a] = 1;
  if (!keepdims) out_shape.erase(out_shape.begin() + static_cast<std::ptrdiff_t>(a));
  xt::xarray<std::int64_t> out = xt::xarray<std::int64_t>::from_shape(out_shape);
  dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) {
        const T* base = p + o * n * inner + i;
        std::size_t best = 0;
        for (std::size_t k = 1; k < n; ++k)
          if (beats(base[k * inner], base[best * inner], true)) best = k;
        out.data()[o * inner + i] = static_cast<std::int64_t>(best);
      }
  });
  return Tensor(std::move(out));
}

Tensor argmax(const Tensor& x) { return argmax(reshape(x.detach(), {-1}), 0); }

}  // namespace tg
