// The layer-norm kernels of kernels/layer_norm.hpp for one instruction set (TG_ISA): each row's
// sums in SIMD accumulators (a row of 64 floats is a few vectors), then one SIMD pass writing it.
#include "tapegrad/kernels/layer_norm.hpp"

#include <algorithm>
#include <cmath>

#include "tapegrad/kernels/parallel.hpp"
#include "tapegrad/kernels/simd.hpp"

namespace tg::kernels::TG_ISA {
namespace {

// Rows per parallel chunk: enough work per thread to pay for the split.
std::size_t min_rows(std::size_t m) { return std::max<std::size_t>(1, 32768 / std::max<std::size_t>(m, 1)); }

// Σ f(i) over the row in SIMD lanes, then the scalar tail: f takes a batch offset and returns a
// batch, or an index and returns a scalar.
template <class T, class VF, class SF>
T row_sum(std::size_t m, VF vf, SF sf) {
  using B = xsimd::batch<T>;
  B acc(T(0));
  std::size_t j = 0;
  for (; j + B::size <= m; j += B::size) acc += vf(j);
  T s = xsimd::hadd(acc);
  for (; j < m; ++j) s += sf(j);
  return s;
}

template <class T>
void forward(const T* x, const T* weight, const T* bias, std::size_t rows, std::size_t m, double eps, T* y, T* mean,
             T* rstd) {
  using B = xsimd::batch<T>;
  parallel_for(rows, min_rows(m), [&](std::size_t begin, std::size_t end) {
    for (std::size_t r = begin; r < end; ++r) {
      const T* p = x + r * m;
      const T mu =
          row_sum<T>(
              m, [&](std::size_t j) { return B::load_unaligned(p + j); }, [&](std::size_t j) { return p[j]; }) /
          static_cast<T>(m);
      const B vmu(mu);
      const T sq = row_sum<T>(
          m,
          [&](std::size_t j) {
            const B d = B::load_unaligned(p + j) - vmu;
            return d * d;
          },
          [&](std::size_t j) { return (p[j] - mu) * (p[j] - mu); });
      const T rs = static_cast<T>(1.0 / std::sqrt(static_cast<double>(sq) / static_cast<double>(m) + eps));
      mean[r] = mu, rstd[r] = rs;
      T* q = y + r * m;
      const B vrs(rs);
      std::size_t j = 0;
      for (; j + B::size <= m; j += B::size) {
        B v = (B::load_unaligned(p + j) - vmu) * vrs;
        if (weight) v *= B::load_unaligned(weight + j);
        if (bias) v += B::load_unaligned(bias + j);
        v.store_unaligned(q + j);
      }
      for (; j < m; ++j) q[j] = (p[j] - mu) * rs * (weight ? weight[j] : T(1)) + (bias ? bias[j] : T(0));
    }
  });
}

template <class T>
void backward(const T* g, const T* x, const T* weight, const T* mean, const T* rstd, std::size_t rows, std::size_t m,
              T* dx) {
  using B = xsimd::batch<T>;
  const T inv_m = T(1) / static_cast<T>(m);
  parallel_for(rows, min_rows(m), [&](std::size_t begin, std::size_t end) {
    for (std::size_t r = begin; r < end; ++r) {
      const T* gr = g + r * m;
      const T* xr = x + r * m;
      const B vmu(mean[r]), vrs(rstd[r]);
      // d = g·w and xhat = (x - mean)·rstd, recomputed per pass (cheaper than storing them).
      auto d_at = [&](std::size_t j) {
        return weight ? B::load_unaligned(gr + j) * B::load_unaligned(weight + j) : B::load_unaligned(gr + j);
      };
      auto d_one = [&](std::size_t j) { return weight ? gr[j] * weight[j] : gr[j]; };
      const T s1 = row_sum<T>(m, d_at, d_one);
      const T s2 = row_sum<T>(
          m, [&](std::size_t j) { return d_at(j) * ((B::load_unaligned(xr + j) - vmu) * vrs); },
          [&](std::size_t j) { return d_one(j) * ((xr[j] - mean[r]) * rstd[r]); });
      const B a(s1 * inv_m), c(s2 * inv_m);
      T* out = dx + r * m;
      std::size_t j = 0;
      for (; j + B::size <= m; j += B::size) {
        const B xhat = (B::load_unaligned(xr + j) - vmu) * vrs;
        (vrs * (d_at(j) - a - xhat * c)).store_unaligned(out + j);
      }
      for (; j < m; ++j) {
        const T xhat = (xr[j] - mean[r]) * rstd[r];
        out[j] = rstd[r] * (d_one(j) - s1 * inv_m - xhat * s2 * inv_m);
      }
    }
  });
}

}  // namespace

template <class T>
constexpr LayerNorm<T> layer_norm_table{&forward<T>, &backward<T>};

}  // namespace tg::kernels::TG_ISA

namespace tg::kernels {
TG_PUBLISH_KERNELS(LayerNorm, layer_norm_table)
}  // namespace tg::kernels
