// im2col + GEMM, conv2d's path for any geometry (the fallback of the faster ones, and the
// float64 one): one GEMM per group over a whole chunk of the batch, the column matrix being
// [C_in*kH*kW, nb*H'*W'], so that small images still make one wide GEMM instead of many thin ones.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "tapegrad/kernels/blas.hpp"
#include "tapegrad/kernels/conv_paths.hpp"
#include "tapegrad/kernels/parallel.hpp"

namespace tg::kernels::im2col {
namespace {

using Index = std::int64_t;

// Output positions o in [0, out) whose input coordinate o*stride + offset lies in [0, in).
std::pair<std::size_t, std::size_t> valid_range(Index offset, std::size_t stride, std::size_t in, std::size_t out) {
  const auto s = static_cast<Index>(stride);
  const Index lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
  const Index room = static_cast<Index>(in) - offset;
  const Index hi = room <= 0 ? 0 : std::min<Index>((room + s - 1) / s, static_cast<Index>(out));
  return {static_cast<std::size_t>(std::min(lo, hi)), static_cast<std::size_t>(hi)};
}

// Calls f(dst_row, src_row, ow_lo, ow_hi, in_offset) for every (channel, kernel tap, sample,
// output row) of samples [n0, n0+nb): dst_row is a row of the column matrix, src_row the input
// row it reads (nullptr when that row is padding). Shared by im2col and col2im. Work is split
// across threads by kernel tap when `split_taps` (each tap owns its column rows: im2col), else
// by channel (taps of one channel write the same input rows: col2im).
template <class Col, class Img, class F>
void for_each_patch_row(const ConvGeometry& g, std::size_t n0, std::size_t nb, Col* col, Img* x, bool split_taps, F f) {
  const std::size_t plane = g.h * g.w, opl = g.out_plane(), ld = nb * opl, taps = g.kh * g.kw;
  const std::size_t units = split_taps ? g.c_in * taps : g.c_in, taps_per_unit = split_taps ? 1 : taps;
  const std::size_t grain = std::max<std::size_t>(32768 / std::max<std::size_t>(taps_per_unit * ld, 1), 1);
  parallel_for(units, grain, [&](std::size_t begin, std::size_t end) {
    for (std::size_t t = begin * taps_per_unit; t < end * taps_per_unit; ++t) {
      const std::size_t c = t / taps, i = t % taps / g.kw, j = t % g.kw;
      const Index off_h = static_cast<Index>(i * g.dh) - static_cast<Index>(g.pad_top);
      const auto [oh_lo, oh_hi] = valid_range(off_h, g.sh, g.h, g.oh);
      const Index off_w = static_cast<Index>(j * g.dw) - static_cast<Index>(g.pad_left);
      const auto [ow_lo, ow_hi] = valid_range(off_w, g.sw, g.w, g.ow);
      Col* row = col + t * ld;
      for (std::size_t n = 0; n < nb; ++n) {
        Img* xp = x + ((n0 + n) * g.c_in + c) * plane;
        for (std::size_t r = 0; r < g.oh; ++r) {
          Col* dst = row + n * opl + r * g.ow;
          if (r < oh_lo || r >= oh_hi) {
            f(dst, static_cast<Img*>(nullptr), ow_lo, ow_hi, off_w);
          } else {
            f(dst, xp + static_cast<std::size_t>(static_cast<Index>(r * g.sh) + off_h) * g.w, ow_lo, ow_hi, off_w);
          }
        }
      }
    }
  });
}

// col [C_in*kH*kW, nb*H'*W'] ← patches of samples [n0, n0+nb) of x.
template <class T>
void to_columns(const T* x, const ConvGeometry& g, std::size_t n0, std::size_t nb, T* col) {
  const std::size_t ow = g.ow, sw = g.sw;
  for_each_patch_row(g, n0, nb, col, x, true,
                     [ow, sw](T* dst, const T* src, std::size_t lo, std::size_t hi, Index off) {
                       if (!src) {
                         std::fill(dst, dst + ow, T(0));
                         return;
                       }
                       std::fill(dst, dst + lo, T(0));
                       // Rows are short (the output width): a plain loop beats a memcpy call.
                       const T* s = src + (static_cast<Index>(lo * sw) + off);
                       if (sw == 1) {
                         for (std::size_t q = lo; q < hi; ++q) dst[q] = s[q - lo];
                       } else {
                         for (std::size_t q = lo; q < hi; ++q, s += sw) dst[q] = *s;
                       }
                       std::fill(dst + hi, dst + ow, T(0));
                     });
}

// dx of samples [n0, n0+nb) += col scattered back (the adjoint of im2col).
template <class T>
void add_from_columns(const T* col, const ConvGeometry& g, std::size_t n0, std::size_t nb, T* dx) {
  const std::size_t sw = g.sw;
  for_each_patch_row(g, n0, nb, col, dx, false, [sw](const T* src, T* dst, std::size_t lo, std::size_t hi, Index off) {
    if (!dst) return;
    T* d = dst + (static_cast<Index>(lo * sw) + off);
    for (std::size_t q = lo; q < hi; ++q, d += sw) *d += src[q];
  });
}

// Samples per chunk. Large output planes already make wide GEMMs one sample at a time, and then
// the GEMM reads and writes the NCHW tensors in place (no repacking); small planes are batched
// until the column matrix fills about 4 MB, so that it stays in cache.
template <class T>
std::size_t chunk_size(const ConvGeometry& g) {
  if (g.out_plane() >= 512) return 1;
  const std::size_t per_sample = std::max<std::size_t>(g.c_in * g.kh * g.kw * g.out_plane(), 1);
  return std::clamp<std::size_t>((std::size_t{4} << 20) / sizeof(T) / per_sample, 1, std::max<std::size_t>(g.n, 1));
}

template <class T>
std::unique_ptr<T[]> buffer(std::size_t n) {
  return std::make_unique_for_overwrite<T[]>(n);
}

// y[n0+n, c, :] (+)= tmp[c, n*L : (n+1)*L] for the chunk: [C, nb*L] → [N, C, L].
template <class T>
void unpack_chunk(const T* tmp, std::size_t c_count, std::size_t L, std::size_t n0, std::size_t nb, T* y) {
  for (std::size_t c = 0; c < c_count; ++c)
    for (std::size_t n = 0; n < nb; ++n)
      std::memcpy(y + ((n0 + n) * c_count + c) * L, tmp + (c * nb + n) * L, L * sizeof(T));
}

// tmp[c, n*L : (n+1)*L] = y[n0+n, c, :]: [N, C, L] → [C, nb*L].
template <class T>
void pack_chunk(const T* y, std::size_t c_count, std::size_t L, std::size_t n0, std::size_t nb, T* tmp) {
  for (std::size_t c = 0; c < c_count; ++c)
    for (std::size_t n = 0; n < nb; ++n)
      std::memcpy(tmp + (c * nb + n) * L, y + ((n0 + n) * c_count + c) * L, L * sizeof(T));
}

}  // namespace

template <class T>
void forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu, T* y) {
  const std::size_t L = g.out_plane(), K = g.patch(), cgo = g.cg_out(), nb_max = chunk_size<T>(g);
  const bool direct = g.pointwise() && nb_max == 1;
  auto col = buffer<T>(direct ? 0 : g.c_in * g.kh * g.kw * nb_max * L);
  auto tmp = buffer<T>(nb_max == 1 ? 0 : g.c_out * nb_max * L);
  for (std::size_t n0 = 0; n0 < g.n; n0 += nb_max) {
    const std::size_t nb = std::min(nb_max, g.n - n0), cols = nb * L;
    const T* c = x + n0 * g.c_in * L;  // valid as the column matrix when pointwise
    if (!direct) {
      to_columns(x, g, n0, nb, col.get());
      c = col.get();
    }
    // One sample: its output block [C_out, L] already has the GEMM's layout.
    T* dst = nb == 1 ? y + n0 * g.c_out * L : tmp.get();
    for (std::size_t grp = 0; grp < g.groups; ++grp)
      gemm<T>(false, false, cgo, cols, K, T(1), w + grp * cgo * K, K, c + grp * K * cols, cols, T(0),
              dst + grp * cgo * cols, cols);
    if (nb > 1) unpack_chunk(tmp.get(), g.c_out, L, n0, nb, y);
  }
  if (bias || relu) {
    for (std::size_t n = 0; n < g.n; ++n)
      for (std::size_t co = 0; co < g.c_out; ++co) {
        T* p = y + (n * g.c_out + co) * L;
        const T b = bias ? bias[co] : T(0);
        if (relu)
          for (std::size_t q = 0; q < L; ++q) p[q] = std::max(p[q] + b, T(0));  // keeps NaN (first operand)
        else
          for (std::size_t q = 0; q < L; ++q) p[q] += b;
      }
  }
}

// dx = col2im(W^T @ grad_out) per group.
template <class T>
void backward_input(const T* gy, const T* w, const ConvGeometry& g, T* dx) {
  std::fill(dx, dx + g.n * g.c_in * g.h * g.w, T(0));  // col2im accumulates
  const std::size_t L = g.out_plane(), K = g.patch(), cgo = g.cg_out(), nb_max = chunk_size<T>(g);
  const bool direct = g.pointwise() && nb_max == 1;
  auto col = buffer<T>(direct ? 0 : g.c_in * g.kh * g.kw * nb_max * L);
  auto tmp = buffer<T>(nb_max == 1 ? 0 : g.c_out * nb_max * L);
  for (std::size_t n0 = 0; n0 < g.n; n0 += nb_max) {
    const std::size_t nb = std::min(nb_max, g.n - n0), cols = nb * L;
    const T* gsrc = gy + n0 * g.c_out * L;
    if (nb > 1) {
      pack_chunk(gy, g.c_out, L, n0, nb, tmp.get());
      gsrc = tmp.get();
    }
    T* c = direct ? dx + n0 * g.c_in * L : col.get();
    for (std::size_t grp = 0; grp < g.groups; ++grp)
      gemm<T>(true, false, K, cols, cgo, T(1), w + grp * cgo * K, K, gsrc + grp * cgo * cols, cols, T(0),
              c + grp * K * cols, cols);
    if (!direct) add_from_columns(col.get(), g, n0, nb, dx);
  }
}

// dW = grad_out @ im2col(x)^T per group, accumulated over chunks.
template <class T>
void backward_weight(const T* gy, const T* x, const ConvGeometry& g, T* dw) {
  const std::size_t L = g.out_plane(), K = g.patch(), cgo = g.cg_out(), nb_max = chunk_size<T>(g);
  const bool direct = g.pointwise() && nb_max == 1;
  auto col = buffer<T>(direct ? 0 : g.c_in * g.kh * g.kw * nb_max * L);
  auto tmp = buffer<T>(nb_max == 1 ? 0 : g.c_out * nb_max * L);
  if (g.n == 0) std::fill(dw, dw + g.c_out * g.patch(), T(0));
  for (std::size_t n0 = 0; n0 < g.n; n0 += nb_max) {
    const std::size_t nb = std::min(nb_max, g.n - n0), cols = nb * L;
    const T* gsrc = gy + n0 * g.c_out * L;
    if (nb > 1) {
      pack_chunk(gy, g.c_out, L, n0, nb, tmp.get());
      gsrc = tmp.get();
    }
    const T* c = x + n0 * g.c_in * L;
    if (!direct) {
      to_columns(x, g, n0, nb, col.get());
      c = col.get();
    }
    const T beta = n0 == 0 ? T(0) : T(1);
    for (std::size_t grp = 0; grp < g.groups; ++grp)
      gemm<T>(false, true, cgo, K, cols, T(1), gsrc + grp * cgo * cols, cols, c + grp * K * cols, cols, beta,
              dw + grp * cgo * K, K);
  }
}

template void forward<float>(const float*, const float*, const float*, const ConvGeometry&, bool, float*);
template void forward<double>(const double*, const double*, const double*, const ConvGeometry&, bool, double*);
template void backward_input<float>(const float*, const float*, const ConvGeometry&, float*);
template void backward_input<double>(const double*, const double*, const ConvGeometry&, double*);
template void backward_weight<float>(const float*, const float*, const ConvGeometry&, float*);
template void backward_weight<double>(const double*, const double*, const ConvGeometry&, double*);

}  // namespace tg::kernels::im2col
