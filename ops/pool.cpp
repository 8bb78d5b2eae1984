// Pooling. Max pooling finds value and argmax in one pass; its backward is a scatter to the
// saved argmax, whose own backward is the matching gather (and back), so it is differentiable to
// any order. Average pooling and its backward are each other's adjoints in the same way.
#include "ops/pool.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/dispatch.hpp"
#include "autograd/function.hpp"
#include "autograd/parallel.hpp"
#include "ops/elementwise.hpp"
#include "ops/pool_kernels.hpp"
#include "ops/shape.hpp"
#include "ops/simd.hpp"

namespace tg {
namespace {

using detail::window_max_2x2;

// Resolved sizes of one pooling.
struct PoolGeometry {
  std::size_t n, c, h, w;  // input
  std::size_t kh, kw, sh, sw, ph, pw;
  std::size_t oh, ow;
  std::size_t planes() const { return n * c; }
  std::size_t in_plane() const { return h * w; }
  std::size_t out_plane() const { return oh * ow; }
  Shape input_shape() const { return {n, c, h, w}; }
  Shape output_shape() const { return {n, c, oh, ow}; }
  // Input rows [begin, end) of window row r (clipped to the input).
  std::pair<std::size_t, std::size_t> rows(std::size_t r) const { return clip(r * sh, ph, kh, h); }
  std::pair<std::size_t, std::size_t> cols(std::size_t q) const { return clip(q * sw, pw, kw, w); }
  static std::pair<std::size_t, std::size_t> clip(std::size_t start, std::size_t pad, std::size_t k, std::size_t in) {
    const std::size_t begin = start >= pad ? start - pad : 0;
    const std::size_t end = std::min(start + k - pad, in);  // start + k > pad: pad <= k/2
    return {begin, end};
  }
};

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

// Planes are independent: split them across threads when there is enough work.
template <class F>
void for_planes(const PoolGeometry& g, F f) {
  const std::size_t work = std::max<std::size_t>(g.out_plane() * g.kh * g.kw, 1);
  parallel_for(g.planes(), std::max<std::size_t>(16384 / work, 1), [&](std::size_t begin, std::size_t end) {
    for (std::size_t p = begin; p < end; ++p) f(p);
  });
}

// Flat index of the first NaN in window rows [r0, r1) × columns [c0, c1) (one is known to exist).
template <class T>
std::size_t first_nan(const T* in, const PoolGeometry& g, std::size_t r0, std::size_t r1, std::size_t c0,
                      std::size_t c1) {
  for (std::size_t i = r0; i < r1; ++i)
    for (std::size_t j = c0; j < c1; ++j)
      if (std::isnan(in[i * g.w + j])) return i * g.w + j;
  return r0 * g.w + c0;
}

// values[q] = best[2q], indices[q] = base + 2q + offset[2q]: the even columns of a row. A
// function of its own (not inside the pooling lambda) so that GCC sees the bounds and vectorizes.
template <class T>
void compact_even(const T* __restrict best, const T* __restrict offset, std::int64_t base, std::size_t count,
                  T* __restrict values, std::int64_t* __restrict indices) {
  for (std::size_t q = 0; q < count; ++q) values[q] = best[2 * q];
  for (std::size_t q = 0; q < count; ++q)
    indices[q] = base + static_cast<std::int64_t>(2 * q) + static_cast<std::int64_t>(offset[2 * q]);
}

// The 2x2, stride 2, unpadded case (most CNNs' pooling) without per-window bookkeeping: the
// generic loop below spends most of its time on window clipping and branches.
// One plane of max_pool_2x2: values and flat argmax indices (row * width + column).
template <class T>
void max_pool_2x2_plane(const T* in, std::size_t width, std::size_t oh, std::size_t ow, T* values,
                        std::int64_t* indices) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  // Per input column j, the winner of the window that would start at j: value and offset
  // (0, 1, W or W+1). Computed for every j with two shifted loads, kept for even j only:
  // wider work, but no deinterleaving and no branch on the data.
  // Per-thread buffers, reused across planes and calls (an allocation per plane was ~5% of a
  // training step).
  static thread_local std::vector<T> best, offset;
  if (best.size() < 2 * ow + S) best.resize(2 * ow + S), offset.resize(2 * ow + S);
  // A window's code (0-3) becomes its offset from the top-left corner: 0, 1, W or W+1.
  const T below_shift = static_cast<T>(width) - T(2);
  for (std::size_t r = 0; r < oh; ++r) {
    const T* top = in + 2 * r * width;
    const T* bottom = top + width;
    // The last batch is shifted back to end at the row's end (recomputing a few columns)
    // instead of a scalar tail.
    const std::size_t span = 2 * ow;
    for (std::size_t start = 0; start < span; start += S) {
      const std::size_t j = span >= S + 1 ? std::min(start, span - S - 1) : start;
      if (span < S + 1) {  // narrow rows: scalar
        for (std::size_t k = 0; k < span; k += 2) {
          const auto [value, code] = window_max_2x2(top[k], top[k + 1], bottom[k], bottom[k + 1]);
          best[k] = value;
          offset[k] = code >= T(2) ? code + below_shift : code;
        }
        break;
      }
      const auto [value, code] = window_max_2x2(V::load_unaligned(top + j), V::load_unaligned(top + j + 1),
                                                V::load_unaligned(bottom + j), V::load_unaligned(bottom + j + 1));
      value.store_unaligned(best.data() + j);
      xsimd::select(code >= V(T(2)), code + V(below_shift), code).store_unaligned(offset.data() + j);
    }
    compact_even(best.data(), offset.data(), static_cast<std::int64_t>(2 * r * width), ow, values + r * ow,
                 indices + r * ow);
  }
}


template <class T>
void max_pool_2x2(const T* x, const PoolGeometry& g, T* values, std::int64_t* indices) {
  const std::size_t in_plane = g.in_plane(), out_plane = g.out_plane();
  for_planes(g, [=](std::size_t p) {
    max_pool_2x2_plane(x + p * in_plane, g.w, g.oh, g.ow, values + p * out_plane, indices + p * out_plane);
  });
}

// values and flat argmax (h*W + w) of each window; NaN wins, as in PyTorch.
template <class T>
void max_pool_kernel(const T* x, const PoolGeometry& g, T* values, std::int64_t* indices) {
  if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0)
    return max_pool_2x2(x, g, values, indices);
  for_planes(g, [&](std::size_t p) {
    const T* in = x + p * g.in_plane();
    T* out = values + p * g.out_plane();
    std::int64_t* idx = indices + p * g.out_plane();
    for (std::size_t r = 0; r < g.oh; ++r) {
      const auto [r0, r1] = g.rows(r);
      for (std::size_t q = 0; q < g.ow; ++q) {
        const auto [c0, c1] = g.cols(q);
        T best = -std::numeric_limits<T>::infinity();
        std::size_t best_at = r0 * g.w + c0;
        bool has_nan = false;
        for (std::size_t i = r0; i < r1; ++i) {
          const T* row = in + i * g.w;
          for (std::size_t j = c0; j < c1; ++j) {
            if (row[j] > best) {
              best = row[j];
              best_at = i * g.w + j;
            }
            has_nan |= std::isnan(row[j]);
          }
        }
        if (has_nan) best_at = first_nan(in, g, r0, r1, c0, c1), best = in[best_at];
        out[r * g.ow + q] = best;
        idx[r * g.ow + q] = static_cast<std::int64_t>(best_at);
      }
    }
  });
}

Tensor max_pool_gather(const Tensor& x, const Tensor& indices);

// out [N,C,H,W] with out[plane][indices] += g: the gradient of max pooling.
// d scatter(g) = gather(gg) at the same indices
Tensor max_pool_scatter(const Tensor& g, const Tensor& indices, const Shape& input_shape) {
  Tensor out = detail::dispatch_float(g.dtype(), "max_pool2d_backward", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(input_shape);
    const std::size_t planes = input_shape[0] * input_shape[1], in_plane = input_shape[2] * input_shape[3];
    const std::size_t out_plane = g.numel() / std::max<std::size_t>(planes, 1);
    const T* src = g.data<T>();
    const std::int64_t* idx = indices.data<std::int64_t>();
    T* dst = r.data();
    // Zeroed and scattered plane by plane, while the plane is in cache.
    parallel_for(planes, std::max<std::size_t>(16384 / std::max<std::size_t>(in_plane, 1), 1),
                 [&](std::size_t begin, std::size_t end) {
                   for (std::size_t p = begin; p < end; ++p) {
                     T* plane = dst + p * in_plane;
                     std::fill(plane, plane + in_plane, T(0));
                     for (std::size_t k = 0; k < out_plane; ++k)
                       plane[static_cast<std::size_t>(idx[p * out_plane + k])] += src[p * out_plane + k];
                   }
                 });
    return Tensor(std::move(r));
  });
  return record(
      {.name = "max_pool2d_backward", .inputs = {g}, .saved = {indices}}, out,
      [](const BackwardContext& ctx, const Tensor& gg) -> TensorList { return {max_pool_gather(gg, ctx.saved(0))}; });
}

// out[plane][k] = x[plane][indices[plane][k]].
// d gather(x) = scatter(gg) to the same indices
Tensor max_pool_gather(const Tensor& x, const Tensor& indices) {
  const Shape xs = x.shape(), is = indices.shape();
  Tensor out = detail::dispatch_float(x.dtype(), "max_pool2d_backward", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(is);
    const std::size_t planes = xs[0] * xs[1], in_plane = xs[2] * xs[3], out_plane = is[2] * is[3];
    const T* src = x.data<T>();
    const std::int64_t* idx = indices.data<std::int64_t>();
    T* dst = r.data();
    for (std::size_t p = 0; p < planes; ++p)
      for (std::size_t k = 0; k < out_plane; ++k)
        dst[p * out_plane + k] = src[p * in_plane + static_cast<std::size_t>(idx[p * out_plane + k])];
    return Tensor(std::move(r));
  });
  return record({.name = "max_pool2d_backward_backward", .inputs = {x}, .saved = {indices}}, out,
                [xs](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {max_pool_scatter(gg, ctx.saved(0), xs)};
                });
}

void check_float(const Tensor& x, std::string_view op) {
  TG_CHECK(is_floating(x.dtype()), "{}: expected a float32 or float64 tensor, got {} {}", op, x.dtype(),
           shape_str(x.shape()));
}

// Divisor of window (r, q) for average pooling.
std::size_t avg_divisor(const PoolGeometry& g, bool count_include_pad, std::size_t r, std::size_t q) {
  if (count_include_pad) return g.kh * g.kw;
  const auto [r0, r1] = g.rows(r);
  const auto [c0, c1] = g.cols(q);
  return (r1 - r0) * (c1 - c0);
}

template <class T>
void avg_pool_kernel(const T* x, const PoolGeometry& g, bool count_include_pad, T* y) {
  for_planes(g, [&](std::size_t p) {
    const T* in = x + p * g.in_plane();
    T* out = y + p * g.out_plane();
    for (std::size_t r = 0; r < g.oh; ++r) {
      const auto [r0, r1] = g.rows(r);
      for (std::size_t q = 0; q < g.ow; ++q) {
        const auto [c0, c1] = g.cols(q);
        T acc = 0;
        for (std::size_t i = r0; i < r1; ++i)
          for (std::size_t j = c0; j < c1; ++j) acc += in[i * g.w + j];
        out[r * g.ow + q] = acc / static_cast<T>(avg_divisor(g, count_include_pad, r, q));
      }
    }
  });
}

// The adjoint of avg_pool_kernel: each window's gradient spread evenly over it.
template <class T>
void avg_unpool_kernel(const T* gy, const PoolGeometry& g, bool count_include_pad, T* dx) {
  for_planes(g, [&](std::size_t p) {
    const T* in = gy + p * g.out_plane();
    T* out = dx + p * g.in_plane();
    for (std::size_t r = 0; r < g.oh; ++r) {
      const auto [r0, r1] = g.rows(r);
      for (std::size_t q = 0; q < g.ow; ++q) {
        const auto [c0, c1] = g.cols(q);
        const T v = in[r * g.ow + q] / static_cast<T>(avg_divisor(g, count_include_pad, r, q));
        for (std::size_t i = r0; i < r1; ++i)
          for (std::size_t j = c0; j < c1; ++j) out[i * g.w + j] += v;
      }
    }
  });
}

Tensor avg_pool2d_backward(const Tensor& g, const Shape& input_shape, const AvgPool2dOptions& options);

// d avg_pool(x) = avg_pool2d_backward(g)
Tensor avg_pool2d_impl(const Tensor& x, const AvgPool2dOptions& options, std::string_view op) {
  check_float(x, op);
  const PoolGeometry geo = plan_pool(x.shape(), options.kernel, options.stride, options.padding, op);
  Tensor out = detail::dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(geo.output_shape());
    avg_pool_kernel(x.data<T>(), geo, options.count_include_pad, r.data());
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
  Tensor out = detail::dispatch_float(g.dtype(), "avg_pool2d_backward", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::zeros<T>(input_shape);
    avg_unpool_kernel(g.data<T>(), geo, options.count_include_pad, r.data());
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
  xt::xarray<std::int64_t> idx = xt::xarray<std::int64_t>::from_shape(geo.output_shape());
  Tensor out = detail::dispatch_float(x.dtype(), "max_pool2d", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(geo.output_shape());
    max_pool_kernel(x.data<T>(), geo, r.data(), idx.data());
    return Tensor(std::move(r));
  });
  Tensor indices(std::move(idx));
  Tensor values = record({.name = "max_pool2d", .inputs = {x}, .saved = {indices}}, out,
                         [xs = x.shape()](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                           return {max_pool_scatter(g, ctx.saved(0), xs)};
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
  Tensor out = detail::dispatch_float(x.dtype(), "global_avg_pool2d", [&](auto t) {
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
  return max_pool_scatter(g, indices, input_shape);
}

}  // namespace tg
