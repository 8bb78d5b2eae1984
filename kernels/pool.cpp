// The pooling kernels of kernels/pool.hpp for one instruction set (TG_ISA).
#include "tapegrad/kernels/pool.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "tapegrad/kernels/parallel.hpp"
#include "tapegrad/kernels/simd.hpp"
#include "tapegrad/kernels/window_max.hpp"

namespace tg::kernels::TG_ISA {
namespace {

// Planes are independent: split them across threads when there is enough work.
template <class F>
void for_planes(const PoolGeometry& g, F f) {
  const std::size_t work = std::max<std::size_t>(g.out_plane() * g.kh * g.kw, 1);
  parallel_for(g.planes(), std::max<std::size_t>(16384 / work, 1), [&](std::size_t begin, std::size_t end) {
    for (std::size_t p = begin; p < end; ++p) f(p);
  });
}

// Flat index of the last NaN in window rows [r0, r1) × columns [c0, c1) (one is known to exist):
// the one PyTorch's CPU max_pool2d takes as the maximum.
template <class T>
std::size_t last_nan(const T* in, const PoolGeometry& g, std::size_t r0, std::size_t r1, std::size_t c0,
                     std::size_t c1) {
  std::size_t at = r0 * g.w + c0;
  for (std::size_t i = r0; i < r1; ++i)
    for (std::size_t j = c0; j < c1; ++j)
      if (std::isnan(in[i * g.w + j])) at = i * g.w + j;
  return at;
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
void max_pool(const T* x, const PoolGeometry& g, T* values, std::int64_t* indices) {
  if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0) {
    const std::size_t in_plane = g.in_plane(), out_plane = g.out_plane();
    for_planes(g, [=](std::size_t p) {
      max_pool_2x2_plane(x + p * in_plane, g.w, g.oh, g.ow, values + p * out_plane, indices + p * out_plane);
    });
    return;
  }
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
        if (has_nan) best_at = last_nan(in, g, r0, r1, c0, c1), best = in[best_at];
        out[r * g.ow + q] = best;
        idx[r * g.ow + q] = static_cast<std::int64_t>(best_at);
      }
    }
  });
}

template <class T>
void max_pool_backward(const T* gy, const std::int64_t* indices, const PoolGeometry& g, T* dx) {
  const std::size_t in_plane = g.in_plane(), out_plane = g.out_plane();
  // Zeroed and scattered plane by plane, while the plane is in cache.
  parallel_for(g.planes(), std::max<std::size_t>(16384 / std::max<std::size_t>(in_plane, 1), 1),
               [&](std::size_t begin, std::size_t end) {
                 for (std::size_t p = begin; p < end; ++p) {
                   T* plane = dx + p * in_plane;
                   std::fill(plane, plane + in_plane, T(0));
                   for (std::size_t k = 0; k < out_plane; ++k)
                     plane[static_cast<std::size_t>(indices[p * out_plane + k])] += gy[p * out_plane + k];
                 }
               });
}

template <class T>
void max_pool_gather(const T* x, const std::int64_t* indices, const PoolGeometry& g, T* out) {
  const std::size_t in_plane = g.in_plane(), out_plane = g.out_plane();
  for (std::size_t p = 0; p < g.planes(); ++p)
    for (std::size_t k = 0; k < out_plane; ++k)
      out[p * out_plane + k] = x[p * in_plane + static_cast<std::size_t>(indices[p * out_plane + k])];
}

// Divisor of window (r, q) for average pooling.
std::size_t avg_divisor(const PoolGeometry& g, bool count_include_pad, std::size_t r, std::size_t q) {
  if (count_include_pad) return g.kh * g.kw;
  const auto [r0, r1] = g.rows(r);
  const auto [c0, c1] = g.cols(q);
  return (r1 - r0) * (c1 - c0);
}

template <class T>
void avg_pool(const T* x, const PoolGeometry& g, bool count_include_pad, T* y) {
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

template <class T>
void avg_pool_backward(const T* gy, const PoolGeometry& g, bool count_include_pad, T* dx) {
  for_planes(g, [&](std::size_t p) {
    const T* in = gy + p * g.out_plane();
    T* out = dx + p * g.in_plane();
    std::fill(out, out + g.in_plane(), T(0));
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

}  // namespace

template <class T>
constexpr Pooling<T> pooling_table{&max_pool<T>, &max_pool_backward<T>, &max_pool_gather<T>, &avg_pool<T>,
                                   &avg_pool_backward<T>};

}  // namespace tg::kernels::TG_ISA

namespace tg::kernels {
TG_PUBLISH_KERNELS(Pooling, pooling_table)
}  // namespace tg::kernels
