// conv2d and its two gradient ops. Each is im2col/col2im around one GEMM per group over a whole
// chunk of the batch: the column matrix is [C_in*kH*kW, nb*H'*W'], so small images still make
// one wide GEMM instead of many thin ones. Few input taps (a first layer) take a direct SIMD
// kernel instead (forward and weight gradient); other float32 convolutions go to oneDNN's
// direct kernels (ops/conv_dnnl.cpp) when it has them, this file's path being the fallback and
// the float64 one. The three ops differentiate into each other (conv ↔ backward_input ↔
// backward_weight), which makes conv2d twice differentiable; conv2d_relu is conv2d with the
// activation fused in, and conv2d_relu_max_pool2d that followed by a 2x2 max pooling.
#include "ops/conv.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "autograd/dispatch.hpp"
#include "autograd/function.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/parallel.hpp"
#include "ops/conv_dnnl.hpp"
#include "ops/conv_geometry.hpp"
#include "ops/elementwise.hpp"
#include "ops/kernels.hpp"
#include "ops/linalg.hpp"
#include "ops/pool_kernels.hpp"
#include "ops/shape.hpp"
#include "ops/simd.hpp"

namespace tg {
namespace {

using Index = std::int64_t;

using detail::ConvGeometry;
namespace simd = detail::simd;

// Padding of one axis: (before, after).
std::pair<std::size_t, std::size_t> axis_padding(const Padding& p, Index explicit_size, Index in, Index k, Index stride,
                                                 Index dilation) {
  switch (p.kind) {
    case Padding::Kind::valid:
      return {0, 0};
    case Padding::Kind::same: {
      const Index out = (in + stride - 1) / stride;
      const Index total = std::max<Index>((out - 1) * stride + (k - 1) * dilation + 1 - in, 0);
      return {static_cast<std::size_t>(total / 2), static_cast<std::size_t>(total - total / 2)};
    }
    case Padding::Kind::explicit_size:
      break;
  }
  return {static_cast<std::size_t>(explicit_size), static_cast<std::size_t>(explicit_size)};
}

ConvGeometry plan_conv(const Shape& xs, const Shape& ws, const Conv2dOptions& o, std::string_view op) {
  TG_CHECK(xs.size() == 4, "{}: expected input x of rank 4 [N,C_in,H,W], got shape {}", op, shape_str(xs));
  TG_CHECK(ws.size() == 4, "{}: expected weight of rank 4 [C_out,C_in/groups,kH,kW], got shape {}", op, shape_str(ws));
  TG_CHECK(o.stride.h > 0 && o.stride.w > 0, "{}: stride must be positive, got [{}, {}] (x {}, weight {})", op,
           o.stride.h, o.stride.w, shape_str(xs), shape_str(ws));
  TG_CHECK(o.dilation.h > 0 && o.dilation.w > 0, "{}: dilation must be positive, got [{}, {}]", op, o.dilation.h,
           o.dilation.w);
  TG_CHECK(o.padding.size.h >= 0 && o.padding.size.w >= 0, "{}: padding must be non-negative, got [{}, {}]", op,
           o.padding.size.h, o.padding.size.w);
  TG_CHECK(o.groups > 0, "{}: groups must be positive, got {}", op, o.groups);
  const auto groups = static_cast<std::size_t>(o.groups);
  TG_CHECK(xs[1] % groups == 0 && ws[0] % groups == 0,
           "{}: groups {} must divide both C_in ({}, x {}) and C_out ({}, weight {})", op, groups, xs[1], shape_str(xs),
           ws[0], shape_str(ws));
  TG_CHECK(ws[1] * groups == xs[1],
           "{}: x {} has {} channels but weight {} with groups {} expects C_in = weight.shape[1] * groups = {}", op,
           shape_str(xs), xs[1], shape_str(ws), groups, ws[1] * groups);
  TG_CHECK(ws[2] > 0 && ws[3] > 0 && ws[0] > 0, "{}: weight {} has an empty dimension", op, shape_str(ws));
  ConvGeometry g{};
  g.n = xs[0], g.c_in = xs[1], g.h = xs[2], g.w = xs[3];
  g.c_out = ws[0], g.kh = ws[2], g.kw = ws[3];
  g.sh = static_cast<std::size_t>(o.stride.h), g.sw = static_cast<std::size_t>(o.stride.w);
  g.dh = static_cast<std::size_t>(o.dilation.h), g.dw = static_cast<std::size_t>(o.dilation.w);
  g.groups = groups;
  std::tie(g.pad_top, g.pad_bottom) = axis_padding(o.padding, o.padding.size.h, static_cast<Index>(g.h),
                                                   static_cast<Index>(g.kh), o.stride.h, o.dilation.h);
  std::tie(g.pad_left, g.pad_right) = axis_padding(o.padding, o.padding.size.w, static_cast<Index>(g.w),
                                                   static_cast<Index>(g.kw), o.stride.w, o.dilation.w);
  const std::size_t span_h = g.dh * (g.kh - 1) + 1, span_w = g.dw * (g.kw - 1) + 1;
  const std::size_t padded_h = g.h + g.pad_top + g.pad_bottom, padded_w = g.w + g.pad_left + g.pad_right;
  TG_CHECK(span_h <= padded_h && span_w <= padded_w,
           "{}: the kernel spans {}x{} (weight {}, dilation [{}, {}]) but the padded input is only {}x{} (x {}, "
           "padding [{}+{}, {}+{}]); expected a kernel no larger than the padded input",
           op, span_h, span_w, shape_str(ws), g.dh, g.dw, padded_h, padded_w, shape_str(xs), g.pad_top, g.pad_bottom,
           g.pad_left, g.pad_right);
  g.oh = (padded_h - span_h) / g.sh + 1;
  g.ow = (padded_w - span_w) / g.sw + 1;
  return g;
}

void check_dtypes(const Tensor& a, const Tensor& b, std::string_view op, std::string_view a_name,
                  std::string_view b_name) {
  TG_CHECK(is_floating(a.dtype()) && a.dtype() == b.dtype(), "{}: {} {} {} and {} {} {} must have the same float dtype",
           op, a_name, a.dtype(), shape_str(a.shape()), b_name, b.dtype(), shape_str(b.shape()));
}

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
void im2col(const T* x, const ConvGeometry& g, std::size_t n0, std::size_t nb, T* col) {
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
void col2im(const T* col, const ConvGeometry& g, std::size_t n0, std::size_t nb, T* dx) {
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

// dst[0, n) = src[0, n) for short rows (an output row is often 13 to 64 floats): whole SIMD
// batches, the last one overlapping the previous, instead of a memmove call per row.
// With relu, negative values are written as zero (the fused activation).
template <class T>
void copy_row(const T* src, T* dst, std::size_t n, bool relu = false) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  if (n < S) {
    for (std::size_t q = 0; q < n; ++q) dst[q] = relu ? std::max(src[q], T(0)) : src[q];
    return;
  }
  const V zero(T(0));
  auto move = [&](std::size_t q) {
    const V v = V::load_unaligned(src + q);
    (relu ? xsimd::max(v, zero) : v).store_unaligned(dst + q);
  };
  for (std::size_t q = 0; q + S <= n; q += S) move(q);
  move(n - S);
}

// Few input taps (the first layer of most CNNs: 1 or 3 channels, small kernel) make a GEMM
// with a depth of 9 or 27, which BLAS runs far below its peak. A direct loop is faster there.
// With unit stride, output (r, q) reads padded input (r + i*dh, q + j*dw): computed on "wide"
// rows as long as the padded input's, every tap is then one long contiguous multiply-add over
// the whole plane (short rows made the loop overhead dominate); the extra columns are dropped.
bool direct_taps(const ConvGeometry& g) { return g.groups == 1 && g.sh == 1 && g.sw == 1 && g.patch() <= 32; }

// The input planes of one sample, zero-padded (or x itself when there is no padding).
template <class T>
struct PaddedSample {
  std::size_t hp, wp;
  std::vector<T> storage;
  const T* planes = nullptr;

  PaddedSample(const ConvGeometry& g)
      : hp(g.h + g.pad_top + g.pad_bottom), wp(g.w + g.pad_left + g.pad_right) {
    if (hp != g.h || wp != g.w) storage.assign(g.c_in * hp * wp, T(0));
  }
  void load(const T* x, const ConvGeometry& g, std::size_t n) {
    const T* sample = x + n * g.c_in * g.h * g.w;
    if (storage.empty()) {
      planes = sample;
      return;
    }
    for (std::size_t ci = 0; ci < g.c_in; ++ci)
      for (std::size_t r = 0; r < g.h; ++r)
        std::copy_n(sample + (ci * g.h + r) * g.w, g.w,
                    storage.data() + (ci * hp + r + g.pad_top) * wp + g.pad_left);
    planes = storage.data();
  }
  // Offset of tap t (channel, kernel row, kernel column) from output (0, 0) on wide rows.
  std::size_t tap_offset(const ConvGeometry& g, std::size_t t) const {
    const std::size_t ci = t / (g.kh * g.kw), i = t / g.kw % g.kh, j = t % g.kw;
    return ci * hp * wp + i * g.dh * wp + j * g.dw;
  }
  // Length of a wide output plane that covers every real output.
  std::size_t wide_length(const ConvGeometry& g) const { return (g.oh - 1) * wp + g.ow; }
};

// Output channels [co, co+B) of one sample on wide rows: per batch of columns, B accumulators
// stay in registers across all taps, and each input load feeds B multiply-adds.
template <class T, std::size_t B>
void direct_block(const T* planes, const std::size_t* offsets, std::size_t K, const T* w, const T* bias,
                  std::size_t co, std::size_t span, T* wide) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  auto columns = [&](std::size_t k, auto load, auto store) {
    V acc[B];
    for (std::size_t b = 0; b < B; ++b) acc[b] = V(bias ? bias[co + b] : T(0));
    for (std::size_t t = 0; t < K; ++t) {
      const V src = load(planes + offsets[t] + k);
      for (std::size_t b = 0; b < B; ++b) acc[b] = xsimd::fma(V(w[(co + b) * K + t]), src, acc[b]);
    }
    for (std::size_t b = 0; b < B; ++b) store(acc[b], wide + b * span + k);
  };
  std::size_t k = 0;
  for (; k + S <= span; k += S)
    columns(k, [](const T* p) { return V::load_unaligned(p); }, [](const V& v, T* p) { v.store_unaligned(p); });
  for (; k < span; ++k)  // tail: one column at a time
    columns(k, [](const T* p) { return V(*p); }, [](const V& v, T* p) { *p = v.get(0); });
}

// The direct forward over the batch (split across threads by sample): for each sample n and
// each output channel c, emit(n, c, plane) gets the conv output plane (plus bias) on wide rows
// of `wp` columns, while it is in cache.
template <class T, class Emit>
void for_each_direct_plane(const T* x, const T* w, const T* bias, const ConvGeometry& g, Emit emit) {
  constexpr std::size_t B = 4;
  const std::size_t K = g.patch();
  parallel_for(g.n, 1, [&](std::size_t begin, std::size_t end) {
    PaddedSample<T> in(g);
    const std::size_t span = in.wide_length(g);
    std::vector<T> wide(B * span);
    std::vector<std::size_t> offsets(K);
    for (std::size_t t = 0; t < K; ++t) offsets[t] = in.tap_offset(g, t);
    for (std::size_t n = begin; n < end; ++n) {
      in.load(x, g, n);
      for (std::size_t co = 0; co < g.c_out; co += B) {
        const std::size_t block = std::min(B, g.c_out - co);
        if (block == B)
          direct_block<T, B>(in.planes, offsets.data(), K, w, bias, co, span, wide.data());
        else
          for (std::size_t b = 0; b < block; ++b)
            direct_block<T, 1>(in.planes, offsets.data(), K, w, bias, co + b, span, wide.data() + b * span);
        for (std::size_t b = 0; b < block; ++b) emit(n, co + b, static_cast<const T*>(wide.data() + b * span), in.wp);
      }
    }
  });
}

template <class T>
void conv_forward_direct(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu, T* y) {
  const std::size_t L = g.out_plane();
  for_each_direct_plane(x, w, bias, g, [&](std::size_t n, std::size_t c, const T* plane, std::size_t wp) {
    T* out = y + (n * g.c_out + c) * L;
    for (std::size_t r = 0; r < g.oh; ++r) copy_row(plane + r * wp, out + r * g.ow, g.ow, relu);
  });
}

// Adds to dw[b*K + t] (b < B, t in [t0, t0+TB)) the dot products of output channel b's gradient
// grads[b] with the input at tap t, over span columns. Each load feeds several multiply-adds
// (a gradient batch TB of them, an input batch B) and the B*TB sums stay in registers.
template <class T, std::size_t B, std::size_t TB>
void tap_dots(const T* const* grads, const T* planes, const std::size_t* offsets, std::size_t t0, std::size_t span,
              T* dw, std::size_t K) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  V sums[B][TB];
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < TB; ++t) sums[b][t] = V(T(0));
  std::size_t k = 0;
  for (; k + S <= span; k += S) {
    V gv[B];
    for (std::size_t b = 0; b < B; ++b) gv[b] = V::load_unaligned(grads[b] + k);
    for (std::size_t t = 0; t < TB; ++t) {
      const V xv = V::load_unaligned(planes + offsets[t0 + t] + k);
      for (std::size_t b = 0; b < B; ++b) sums[b][t] = xsimd::fma(gv[b], xv, sums[b][t]);
    }
  }
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < TB; ++t) {
      T total = xsimd::hadd(sums[b][t]);
      for (std::size_t j = k; j < span; ++j) total += grads[b][j] * planes[offsets[t0 + t] + j];
      dw[b * K + t0 + t] += total;
    }
}

// All taps of B output channels.
template <class T, std::size_t B>
void all_tap_dots(const T* const* grads, const T* planes, const std::size_t* offsets, std::size_t K, std::size_t span,
                  T* dw) {
  constexpr std::size_t TB = 8;
  std::size_t t = 0;
  for (; t + TB <= K; t += TB) tap_dots<T, B, TB>(grads, planes, offsets, t, span, dw, K);
  for (; t < K; ++t) tap_dots<T, B, 1>(grads, planes, offsets, t, span, dw, K);
}

// dst = g, zero where relu_out (the output of a fused conv2d_relu) is not positive: the relu's
// backward. Adds the sum of dst to *bias_grad when given. Over a whole contiguous plane, in SIMD.
template <class T>
void masked_plane(const T* __restrict g, const T* __restrict relu_out, std::size_t n, T* __restrict dst,
                  T* bias_grad) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  const V zero(T(0));
  V acc(T(0));
  std::size_t i = 0;
  for (; i + S <= n; i += S) {
    V v = V::load_unaligned(g + i);
    if (relu_out) v = xsimd::select(V::load_unaligned(relu_out + i) > zero, v, zero);
    v.store_unaligned(dst + i);
    acc += v;
  }
  T sum = xsimd::hadd(acc);
  for (; i < n; ++i) {
    const T v = relu_out && !(relu_out[i] > T(0)) ? T(0) : g[i];
    dst[i] = v;
    sum += v;
  }
  if (bias_grad) *bias_grad += sum;
}

// dW[co, t] = Σ_n ⟨gradient plane of (n, co) on wide rows, input at tap t⟩, and db[co] the sum
// of those planes: fill(n, co, wide, wp, db_entry) writes the plane of (n, co) on wide rows of
// `wp` columns (whose extra columns must stay zero) and adds its sum to *db_entry when that is
// not null. Split over pairs of output channels: each thread owns its rows of dW and entries
// of db, and loads each input sample once for all its channels.
template <class T, class Fill>
void direct_weight_grad(const T* x, const ConvGeometry& g, T* dw, T* db, Fill fill) {
  constexpr std::size_t B = 2;  // output channels per pass over the input
  const std::size_t K = g.patch();
  std::fill(dw, dw + g.c_out * K, T(0));
  if (db) std::fill(db, db + g.c_out, T(0));
  parallel_for((g.c_out + B - 1) / B, 1, [&](std::size_t begin, std::size_t end) {
    PaddedSample<T> in(g);
    const std::size_t span = in.wide_length(g);
    std::vector<T> wide(B * span, T(0));
    std::vector<std::size_t> offsets(K);
    for (std::size_t t = 0; t < K; ++t) offsets[t] = in.tap_offset(g, t);
    const T* grads[B];
    for (std::size_t b = 0; b < B; ++b) grads[b] = wide.data() + b * span;
    for (std::size_t n = 0; n < g.n; ++n) {
      in.load(x, g, n);
      for (std::size_t co = begin * B; co < std::min(end * B, g.c_out); co += B) {
        const std::size_t block = std::min(B, g.c_out - co);
        for (std::size_t b = 0; b < block; ++b) fill(n, co + b, wide.data() + b * span, in.wp, db ? db + co + b : nullptr);
        if (block == B)
          all_tap_dots<T, B>(grads, in.planes, offsets.data(), K, span, dw + co * K);
        else
          all_tap_dots<T, 1>(grads, in.planes, offsets.data(), K, span, dw + co * K);
      }
    }
  });
}

// dW (and db) of conv2d from gy, on the direct path. With relu_out (the output of a fused
// conv2d_relu), gy is masked on the fly: one read of the gradient for all three.
template <class T>
void conv_backward_weight_direct(const T* gy, const T* x, const ConvGeometry& g, T* dw, const T* relu_out = nullptr,
                                 T* db = nullptr) {
  const std::size_t L = g.out_plane();
  direct_weight_grad(x, g, dw, db, [&](std::size_t n, std::size_t c, T* wide, std::size_t wp, T* db_entry) {
    thread_local std::vector<T> masked;
    const std::size_t plane = (n * g.c_out + c) * L;
    const T* grad = gy + plane;
    if (relu_out || db_entry) {
      masked.resize(L);
      masked_plane(grad, relu_out ? relu_out + plane : nullptr, L, masked.data(), db_entry);
      grad = masked.data();
    }
    for (std::size_t r = 0; r < g.oh; ++r) copy_row(grad + r * g.ow, wide + r * wp, g.ow);
  });
}

// The fused conv2d + relu + 2x2 max pooling (stride 2) below works one pooled row at a time,
// with each of a window's four positions (d, s) (row d, column s of the window) held in its
// own SIMD register across all taps: pooling is then a lane-wise max, and the activation plane
// never exists. For that, output column 2c+s, which reads padded input column 2c+s+j*dw at
// kernel column j, must read contiguously in c: the input is split by column parity, and
// column m is entry m/2 of the even or the odd copy.
#if defined(__AVX512F__)
constexpr bool many_registers = true;  // 32 vector registers
#else
constexpr bool many_registers = false;  // 16
#endif

// One sample's zero-padded input planes split by column parity: [parity][C_in][H_p][half],
// half = ceil(W_p / 2), plus a zero tail of a SIMD batch so that a batch may run past the
// last row (the lanes past a row's end are discarded).
template <class T>
struct ParitySample {
  std::size_t hp, wp, half, parity_stride;
  std::vector<T> planes;

  explicit ParitySample(const ConvGeometry& g)
      : hp(g.h + g.pad_top + g.pad_bottom),
        wp(g.w + g.pad_left + g.pad_right),
        half((wp + 1) / 2),
        parity_stride(g.c_in * hp * half),
        planes(2 * parity_stride + xsimd::batch<T>::size, T(0)) {}

  // Writes sample n's values; the padding stays zero from the constructor. Per row, two
  // batches at a time split into their even and odd positions (a scalar scatter took ~3% of a
  // training step).
  void load(const T* x, const ConvGeometry& g, std::size_t n) {
    using V = xsimd::batch<T>;
    constexpr std::size_t S = V::size;
    const T* sample = x + n * g.c_in * g.h * g.w;
    // Row entry q lands in padded column q + pad_left: the even q go to the copy of that
    // parity, the odd q to the other.
    const std::size_t first_parity = g.pad_left % 2;
    for (std::size_t ci = 0; ci < g.c_in; ++ci)
      for (std::size_t r = 0; r < g.h; ++r) {
        const T* src = sample + (ci * g.h + r) * g.w;
        T* row = planes.data() + (ci * hp + r + g.pad_top) * half;
        T* first = row + first_parity * parity_stride;
        T* second = row + (1 - first_parity) * parity_stride;
        for (std::size_t q = 0; q < g.w; q += 2 * S) {
          const std::size_t len = std::min(2 * S, g.w - q);
          const std::size_t low = std::min(S, len);
          const auto [evens, odds] =
              simd::deinterleave(simd::load_first(src + q, low), simd::load_first(src + q + low, len - low));
          simd::store_first(evens, first + (q + g.pad_left) / 2, (len + 1) / 2);
          simd::store_first(odds, second + (q + 1 + g.pad_left) / 2, len / 2);
        }
      }
  }

  // offsets[p * K + t]: where tap t (channel, kernel row, kernel column) of window position
  // p = 2d + s reads, from the top-left of the window at pooled (0, 0).
  std::vector<std::size_t> window_offsets(const ConvGeometry& g) const {
    const std::size_t K = g.patch();
    std::vector<std::size_t> offsets(4 * K);
    for (std::size_t p = 0; p < 4; ++p)
      for (std::size_t t = 0; t < K; ++t) {
        const std::size_t ci = t / (g.kh * g.kw), i = t / g.kw % g.kh, j = t % g.kw;
        const std::size_t row = p / 2 + i * g.dh, column = p % 2 + j * g.dw;
        offsets[p * K + t] = column % 2 * parity_stride + (ci * hp + row) * half + column / 2;
      }
    return offsets;
  }
};

// The code of a window whose maximum after relu is 0, and so its gradient: all four were 0 or
// less. (Its argmax is the first position, code 0.) The backward then needs no other mask.
constexpr float zero_window = 4;

// Where the pooled rows of one fused output plane are: ph x pw windows over `half`-wide rows.
struct PooledPlane {
  std::size_t ph, pw, half;
  std::size_t input_at(std::size_t pr, std::size_t c) const { return 2 * pr * half + c; }
  std::size_t size() const { return ph * pw; }
};

// Where tap t of window position p reads, relative to the window's own place in the parity
// planes: from a table, for any geometry the direct path takes...
struct TapTable {
  static constexpr std::size_t max_size = 32;  // direct_taps' limit
  const std::size_t* offsets;
  std::size_t K;
  std::size_t size() const { return K; }
  std::size_t operator()(std::size_t p, std::size_t t) const { return offsets[p * K + t]; }
};

// ... or, for one input channel and a KH x KW kernel without dilation (most first layers),
// known when compiling: the kernels then unroll whole, and the four positions' loads of the
// same input become one, (KH+1)(KW+1) loads instead of 4*KH*KW.
template <std::size_t KH, std::size_t KW>
struct FixedTaps {
  static constexpr std::size_t max_size = KH * KW;
  std::size_t half, parity_stride;
  static constexpr std::size_t size() { return KH * KW; }
  std::size_t operator()(std::size_t p, std::size_t t) const {
    const std::size_t row = p / 2 + t / KW, column = p % 2 + t % KW;
    return column % 2 * parity_stride + row * half + column / 2;
  }
  static bool applies(const ConvGeometry& g) {
    return g.c_in == 1 && g.kh == KH && g.kw == KW && g.dh == 1 && g.dw == 1;
  }
};

// Calls f(taps, B) with the fastest tap policy for g and the channel block B that keeps that
// kernel's sums in registers (B a std::integral_constant).
template <std::size_t FixedB, std::size_t TableB, class T, class F>
void with_taps(const ConvGeometry& g, const ParitySample<T>& in, F f) {
  if (FixedTaps<3, 3>::applies(g)) {
    f(FixedTaps<3, 3>{in.half, in.parity_stride}, std::integral_constant<std::size_t, FixedB>{});
  } else {
    const std::vector<std::size_t> table = in.window_offsets(g);
    f(TapTable{table.data(), g.patch()}, std::integral_constant<std::size_t, TableB>{});
  }
}

// Output channels [co, co+B) of one sample: for each pooled row and batch of windows, the
// conv sums of the four window positions (from the bias) over all taps, then relu, then each
// window's maximum and its code. Each input load feeds 4B multiply-adds; the weights are
// broadcast once for the whole plane.
template <class T, std::size_t B, class Taps>
void pooled_conv_channels(const T* planes, const Taps& taps, const T* w, const T* bias, std::size_t co,
                          const PooledPlane& plane, T* values, T* codes) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  const std::size_t K = taps.size();
  V weights[B][Taps::max_size];
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < K; ++t) weights[b][t] = V(w[(co + b) * K + t]);
  const simd::Relu relu;  // which also makes NaN 0: the window's maximum needs no NaN rule
  for (std::size_t pr = 0; pr < plane.ph; ++pr)
    for (std::size_t c = 0; c < plane.pw; c += S) {
      const std::size_t count = std::min(S, plane.pw - c), at = plane.input_at(pr, c), out = pr * plane.pw + c;
      V acc[4][B];
      for (std::size_t b = 0; b < B; ++b)
        for (std::size_t p = 0; p < 4; ++p) acc[p][b] = V(bias ? bias[co + b] : T(0));
#pragma GCC unroll 9
      for (std::size_t t = 0; t < K; ++t) {
        V in[4];
        for (std::size_t p = 0; p < 4; ++p) in[p] = V::load_unaligned(planes + taps(p, t) + at);
        for (std::size_t b = 0; b < B; ++b)
          for (std::size_t p = 0; p < 4; ++p) acc[p][b] = xsimd::fma(weights[b][t], in[p], acc[p][b]);
      }
      for (std::size_t b = 0; b < B; ++b) {
        const auto [value, code] =
            detail::window_max_2x2_ordered(relu(acc[0][b]), relu(acc[1][b]), relu(acc[2][b]), relu(acc[3][b]));
        simd::store_first(value, values + b * plane.size() + out, count);
        const V stored_code = xsimd::select(value > V(T(0)), code, V(T(zero_window)));
        simd::store_first(stored_code, codes + b * plane.size() + out, count);
      }
    }
}

// max_pool2d(relu(conv2d(x))) with 2x2 windows at stride 2 on the direct path, split over the
// batch. values and codes [N, C_out, H'/2, W'/2]: which of the window's four the maximum is, or
// zero_window.
template <class T>
void conv_relu_pool_forward_direct(const T* x, const T* w, const T* bias, const ConvGeometry& g, T* values, T* codes) {
  parallel_for(g.n, 1, [&](std::size_t begin, std::size_t end) {
    ParitySample<T> in(g);
    const PooledPlane plane{g.oh / 2, g.ow / 2, in.half};
    // Sums in registers: 4B, plus B*9 weights for the fixed 3x3 kernel (32 registers on AVX-512).
    with_taps<many_registers ? 2 : 1, many_registers ? 4 : 2>(g, in, [&](const auto& taps, auto block_size) {
      constexpr std::size_t B = decltype(block_size)::value;
      for (std::size_t n = begin; n < end; ++n) {
        in.load(x, g, n);
        for (std::size_t co = 0; co < g.c_out; co += B) {
          const std::size_t out = (n * g.c_out + co) * plane.size();
          if (co + B <= g.c_out)
            pooled_conv_channels<T, B>(in.planes.data(), taps, w, bias, co, plane, values + out, codes + out);
          else
            for (std::size_t b = 0; co + b < g.c_out; ++b)
              pooled_conv_channels<T, 1>(in.planes.data(), taps, w, bias, co + b, plane,
                                         values + out + b * plane.size(), codes + out + b * plane.size());
        }
      }
    });
  });
}

// max_pool2d's int64 argmax indices (flat in the conv output plane) from the codes above.
template <class T>
Tensor pool_indices(const T* codes, const ConvGeometry& g) {
  const std::size_t ph = g.oh / 2, pw = g.ow / 2;
  xt::xarray<std::int64_t> indices = xt::xarray<std::int64_t>::from_shape({g.n, g.c_out, ph, pw});
  std::int64_t* out = indices.data();
  for (std::size_t p = 0; p < g.n * g.c_out; ++p)
    for (std::size_t pr = 0; pr < ph; ++pr)
      for (std::size_t pc = 0; pc < pw; ++pc, ++out, ++codes) {
        const std::size_t code = *codes == T(zero_window) ? 0 : static_cast<std::size_t>(*codes);
        *out = static_cast<std::int64_t>((2 * pr + code / 2) * g.ow + 2 * pc + code % 2);
      }
  return Tensor(std::move(indices));
}

// Adds to sums[b][t] (b < B, t < TB) the gradient of weight (co+b, t0+t) over one sample's
// plane of output channel co+b: the pooled gradient gp (masked by relu's gradient, zero_window,
// and by the window's code for each of its four positions) times the input each position read at that
// tap, over every window. The sums stay in registers across the whole plane.
template <class T, std::size_t B, std::size_t TB, class Taps>
void pooled_weight_block(const T* planes, const Taps& taps, std::size_t t0, const PooledPlane& plane,
                         const T* const* gp, const T* const* codes, xsimd::batch<T>* sums,
                         xsimd::batch<T>* bias_sums) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  const std::size_t K = taps.size();
  V acc[B][TB];
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < TB; ++t) acc[b][t] = sums[b * K + t0 + t];
  const V zero(T(0));
  for (std::size_t pr = 0; pr < plane.ph; ++pr)
    for (std::size_t c = 0; c < plane.pw; c += S) {
      const std::size_t count = std::min(S, plane.pw - c), out = pr * plane.pw + c;
      V grad[B][4];
      for (std::size_t b = 0; b < B; ++b) {
        // Lanes past count load a zero gradient.
        const V code = simd::load_first(codes[b] + out, count);
        const V g = xsimd::select(code != V(T(zero_window)), simd::load_first(gp[b] + out, count), zero);
        for (std::size_t p = 0; p < 4; ++p) grad[b][p] = xsimd::select(code == V(T(p)), g, zero);
        if (bias_sums) bias_sums[b] += g;
      }
      const std::size_t at = plane.input_at(pr, c);
      // Unrolled whole, or the sums would live in memory (GCC leaves a loop of TB*4 alone).
#pragma GCC unroll 9
      for (std::size_t t = 0; t < TB; ++t)
#pragma GCC unroll 4
        for (std::size_t p = 0; p < 4; ++p) {
          const V in = V::load_unaligned(planes + taps(p, t0 + t) + at);
          for (std::size_t b = 0; b < B; ++b) acc[b][t] = xsimd::fma(grad[b][p], in, acc[b][t]);
        }
    }
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < TB; ++t) sums[b * K + t0 + t] = acc[b][t];
}

// All taps of output channels [co, co+B) over one sample, in blocks of taps whose sums fit in
// registers.
template <class T, std::size_t B, class Taps>
void pooled_weight_taps(const T* planes, const Taps& taps, const PooledPlane& plane, const T* const* gp,
                        const T* const* codes, xsimd::batch<T>* sums, xsimd::batch<T>* bias_sums) {
  const std::size_t K = taps.size();
  std::size_t t = 0;
  auto run = [&]<std::size_t TB>(std::integral_constant<std::size_t, TB>) {
    pooled_weight_block<T, B, TB>(planes, taps, t, plane, gp, codes, sums, t == 0 ? bias_sums : nullptr);
    t += TB;
  };
  while (K - t >= 9) run(std::integral_constant<std::size_t, 9>{});
  while (K - t >= 3) run(std::integral_constant<std::size_t, 3>{});
  while (K - t >= 1) run(std::integral_constant<std::size_t, 1>{});
}

// dW and db of max_pool2d(relu(conv2d(x))) on the direct path, from the pooled gradient gp: each
// window's gradient (zero for a zero_window: relu's gradient) belongs to the position its code
// names, and meets the input that position read at each tap. Split over blocks of output
// channels: each thread owns its rows of dW and entries of db (the same sums on any thread
// count) and reads every sample's input.
template <class T>
void conv_relu_pool_backward_params(const T* gp, const T* codes, const T* x, const ConvGeometry& g, T* dw, T* db) {
  using V = xsimd::batch<T>;
  // Channels per pass over the input (B): B * 9 sums and 4B gradients in registers. With the
  // fixed 3x3 kernel one channel: its loads are few already, and two spilled their sums. The
  // threads take units of two channels.
  constexpr std::size_t unit = 2, table_b = many_registers ? 2 : 1;
  const std::size_t K = g.patch();
  parallel_for((g.c_out + unit - 1) / unit, 1, [&](std::size_t begin, std::size_t end) {
    ParitySample<T> in(g);
    const PooledPlane plane{g.oh / 2, g.ow / 2, in.half};
    const std::size_t c_begin = begin * unit, c_end = std::min(end * unit, g.c_out);
    std::vector<V> sums((c_end - c_begin) * K, V(T(0))), bias_sums(c_end - c_begin, V(T(0)));
    with_taps<1, table_b>(g, in, [&](const auto& taps, auto block_size) {
      constexpr std::size_t B = decltype(block_size)::value;
      for (std::size_t n = 0; n < g.n; ++n) {
        in.load(x, g, n);
        for (std::size_t co = c_begin; co < c_end; co += B) {
          const std::size_t block = std::min(B, c_end - co);
          const T *grads[B], *where[B];
          for (std::size_t b = 0; b < block; ++b) {
            const std::size_t at = (n * g.c_out + co + b) * plane.size();
            grads[b] = gp + at, where[b] = codes + at;
          }
          V* channel_sums = sums.data() + (co - c_begin) * K;
          V* channel_bias = db ? bias_sums.data() + (co - c_begin) : nullptr;
          if (block == B)
            pooled_weight_taps<T, B>(in.planes.data(), taps, plane, grads, where, channel_sums, channel_bias);
          else
            for (std::size_t b = 0; b < block; ++b)
              pooled_weight_taps<T, 1>(in.planes.data(), taps, plane, grads + b, where + b,
                                       channel_sums + b * K, channel_bias ? channel_bias + b : nullptr);
        }
      }
    });
    for (std::size_t i = 0; i < sums.size(); ++i) dw[c_begin * K + i] = xsimd::hadd(sums[i]);
    if (db)
      for (std::size_t i = 0; i < bias_sums.size(); ++i) db[c_begin + i] = xsimd::hadd(bias_sums[i]);
  });
}

template <class T>
xt::xarray<T> conv_forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu) {
  xt::xarray<T> out = xt::xarray<T>::from_shape(g.output_shape());
  T* y = out.data();
  if (direct_taps(g)) {
    conv_forward_direct(x, w, bias, g, relu, y);
    return out;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (detail::dnnl_conv::forward(x, w, bias, g, relu, y)) return out;
  }
  const std::size_t L = g.out_plane(), K = g.patch(), cgo = g.cg_out(), nb_max = chunk_size<T>(g);
  const bool direct = g.pointwise() && nb_max == 1;
  auto col = buffer<T>(direct ? 0 : g.c_in * g.kh * g.kw * nb_max * L);
  auto tmp = buffer<T>(nb_max == 1 ? 0 : g.c_out * nb_max * L);
  for (std::size_t n0 = 0; n0 < g.n; n0 += nb_max) {
    const std::size_t nb = std::min(nb_max, g.n - n0), cols = nb * L;
    const T* c = x + n0 * g.c_in * L;  // valid as the column matrix when pointwise
    if (!direct) {
      im2col(x, g, n0, nb, col.get());
      c = col.get();
    }
    // One sample: its output block [C_out, L] already has the GEMM's layout.
    T* dst = nb == 1 ? y + n0 * g.c_out * L : tmp.get();
    for (std::size_t grp = 0; grp < g.groups; ++grp)
      blas::gemm<T>(false, false, cgo, cols, K, T(1), w + grp * cgo * K, K, c + grp * K * cols, cols, T(0),
                    dst + grp * cgo * cols, cols);
    if (nb > 1) unpack_chunk(tmp.get(), g.c_out, L, n0, nb, y);
  }
  if (bias || relu) {
    for (std::size_t n = 0; n < g.n; ++n)
      for (std::size_t co = 0; co < g.c_out; ++co) {
        T* p = y + (n * g.c_out + co) * L;
        const T b = bias ? bias[co] : T(0);
        if (relu)
          for (std::size_t q = 0; q < L; ++q) p[q] = std::max(p[q] + b, T(0));
        else
          for (std::size_t q = 0; q < L; ++q) p[q] += b;
      }
  }
  return out;
}

// dx = col2im(W^T @ grad_out) per group.
template <class T>
xt::xarray<T> conv_backward_input(const T* gy, const T* w, const ConvGeometry& g) {
  xt::xarray<T> out = xt::xarray<T>::from_shape({g.n, g.c_in, g.h, g.w});
  T* dx = out.data();
  if constexpr (std::is_same_v<T, float>) {
    if (detail::dnnl_conv::backward_data(gy, w, g, dx)) return out;
  }
  std::fill(dx, dx + out.size(), T(0));  // col2im accumulates
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
      blas::gemm<T>(true, false, K, cols, cgo, T(1), w + grp * cgo * K, K, gsrc + grp * cgo * cols, cols, T(0),
                    c + grp * K * cols, cols);
    if (!direct) col2im(col.get(), g, n0, nb, dx);
  }
  return out;
}

// dW = grad_out @ im2col(x)^T per group, accumulated over chunks.
template <class T>
xt::xarray<T> conv_backward_weight(const T* gy, const T* x, const ConvGeometry& g) {
  xt::xarray<T> out = xt::xarray<T>::from_shape({g.c_out, g.cg_in(), g.kh, g.kw});
  T* dw = out.data();
  if (direct_taps(g)) {
    conv_backward_weight_direct(gy, x, g, dw);
    return out;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (detail::dnnl_conv::backward_weights(gy, x, g, dw)) return out;
  }
  const std::size_t L = g.out_plane(), K = g.patch(), cgo = g.cg_out(), nb_max = chunk_size<T>(g);
  const bool direct = g.pointwise() && nb_max == 1;
  auto col = buffer<T>(direct ? 0 : g.c_in * g.kh * g.kw * nb_max * L);
  auto tmp = buffer<T>(nb_max == 1 ? 0 : g.c_out * nb_max * L);
  if (g.n == 0) std::fill(dw, dw + out.size(), T(0));
  for (std::size_t n0 = 0; n0 < g.n; n0 += nb_max) {
    const std::size_t nb = std::min(nb_max, g.n - n0), cols = nb * L;
    const T* gsrc = gy + n0 * g.c_out * L;
    if (nb > 1) {
      pack_chunk(gy, g.c_out, L, n0, nb, tmp.get());
      gsrc = tmp.get();
    }
    const T* c = x + n0 * g.c_in * L;
    if (!direct) {
      im2col(x, g, n0, nb, col.get());
      c = col.get();
    }
    const T beta = n0 == 0 ? T(0) : T(1);
    for (std::size_t grp = 0; grp < g.groups; ++grp)
      blas::gemm<T>(false, true, cgo, K, cols, T(1), gsrc + grp * cgo * cols, cols, c + grp * K * cols, cols, beta,
                    dw + grp * cgo * K, K);
  }
  return out;
}

// out[c] = Σ_{n,h,w} g[n,c,h,w]; d = gg broadcast over n, h, w.
Tensor channel_sum(const Tensor& g) {
  const Shape s = g.shape();
  Tensor out = detail::dispatch_float(g.dtype(), "conv2d", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::zeros<T>({s[1]});
    const std::size_t L = s[2] * s[3];
    const T* p = g.data<T>();
    using V = xsimd::batch<T>;
    constexpr std::size_t S = V::size;
    for (std::size_t n = 0; n < s[0]; ++n)
      for (std::size_t c = 0; c < s[1]; ++c) {
        const T* q = p + (n * s[1] + c) * L;
        // Two vector accumulators: a scalar sum is one long dependency chain (and not vectorized).
        V acc0(T(0)), acc1(T(0));
        std::size_t k = 0;
        for (; k + 2 * S <= L; k += 2 * S) {
          acc0 += V::load_unaligned(q + k);
          acc1 += V::load_unaligned(q + k + S);
        }
        T acc = xsimd::hadd(acc0 + acc1);
        for (; k < L; ++k) acc += q[k];
        r(c) += acc;
      }
    return Tensor(std::move(r));
  });
  return record({.name = "conv2d_bias_grad", .inputs = {g}}, out,
                [s](const BackwardContext&, const Tensor& gg) -> TensorList {
                  return {broadcast_to(reshape(gg, {1, static_cast<std::int64_t>(s[1]), 1, 1}), s)};
                });
}

void check_grad_out(const Tensor& grad_out, const ConvGeometry& g, std::string_view op) {
  TG_CHECK(grad_out.shape() == g.output_shape(), "{}: grad_out has shape {}, expected the conv2d output shape {}", op,
           shape_str(grad_out.shape()), shape_str(g.output_shape()));
}

// {dW, db (or undefined)} of relu(conv2d) from the gradient of its output, on the direct path;
// empty when that path does not apply (the caller then takes the general one).
TensorList conv2d_relu_backward_params(const Tensor& grad, const Tensor& out, const Tensor& x, const Shape& ws,
                                       const ConvGeometry& geo, bool bias_grad) {
  if (!direct_taps(geo) || grad.dtype() != x.dtype()) return {};
  return detail::dispatch_float(x.dtype(), "conv2d_relu_backward", [&](auto t) -> TensorList {
    using T = decltype(t);
    xt::xarray<T> dw = xt::xarray<T>::from_shape(ws);
    xt::xarray<T> db = xt::xarray<T>::from_shape({bias_grad ? geo.c_out : 0});
    conv_backward_weight_direct(grad.data<T>(), x.data<T>(), geo, dw.data(), out.data<T>(),
                                bias_grad ? db.data() : nullptr);
    return {Tensor(std::move(dw)), bias_grad ? Tensor(std::move(db)) : Tensor()};
  });
}

// The geometry of conv op `op` on x, weight and bias (may be undefined), after checking their
// dtypes and the bias's shape.
ConvGeometry plan_checked(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options,
                          std::string_view op) {
  const ConvGeometry geo = plan_conv(x.shape(), weight.shape(), options, op);
  check_dtypes(x, weight, op, "x", "weight");
  if (bias.defined()) {
    check_dtypes(x, bias, op, "x", "bias");
    TG_CHECK(bias.shape() == Shape{geo.c_out}, "{}: bias has shape {}, expected [{}] (C_out of weight {})", op,
             shape_str(bias.shape()), geo.c_out, shape_str(weight.shape()));
  }
  return geo;
}

Tensor conv2d_impl(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options,
                   bool relu) {
  const char* op = relu ? "conv2d_relu" : "conv2d";
  const ConvGeometry geo = plan_checked(x, weight, bias, options, op);
  Tensor out = detail::dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    return Tensor(
        conv_forward<T>(x.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr, geo, relu));
  });
  return record(
      {.name = op, .inputs = {x, weight, bias}, .saved = {x, weight}, .save_output = relu}, out,
      [xs = x.shape(), ws = weight.shape(), options, relu, geo](const BackwardContext& ctx,
                                                                const Tensor& grad) -> TensorList {
        if (relu && !ctx.needs_grad(0) && !is_grad_enabled()) {
          // The first layer's case (no input gradient): mask, weight and bias gradients in one
          // pass over the gradient, when the direct kernel applies.
          TensorList fused = conv2d_relu_backward_params(grad, ctx.output(), ctx.saved(0), ws, geo, ctx.needs_grad(2));
          if (!fused.empty()) return {Tensor(), fused[0], fused[1]};
        }
        const Tensor g = relu ? detail::relu_backward(grad, ctx.output()) : grad;
        return {ctx.needs_grad(0) ? conv2d_backward_input(g, ctx.saved(1), xs, options) : Tensor(),
                ctx.needs_grad(1) ? conv2d_backward_weight(g, ctx.saved(0), ws, options) : Tensor(),
                ctx.needs_grad(2) ? channel_sum(g) : Tensor()};
      });
}

}  // namespace

// d max_pool2d(relu(conv2d(x, w, b))): the pooled gradient, where the pooled value is positive,
// scattered to the argmax, then conv2d's gradients (fused into one pass for a first layer)
Tensor conv2d_relu_max_pool2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& conv,
                              const MaxPool2dOptions& pool, bool flatten) {
  constexpr const char* op = "conv2d_relu_max_pool2d";
  const ConvGeometry geo = plan_checked(x, weight, bias, conv, op);
  const Size2 stride = pool.stride.value_or(pool.kernel);
  const bool fused = direct_taps(geo) && pool.kernel.h == 2 && pool.kernel.w == 2 && stride.h == 2 && stride.w == 2 &&
                     pool.padding.h == 0 && pool.padding.w == 0 && geo.oh >= 2 && geo.ow >= 2;
  if (!fused) {
    const Tensor y = max_pool2d(conv2d_relu(x, weight, bias, conv), pool);
    return flatten ? tg::flatten(y, 1, 3) : y;
  }
  const Shape pooled_shape{geo.n, geo.c_out, geo.oh / 2, geo.ow / 2};
  // The kernels see flat arrays: a flattened result is the same values under another shape.
  const Shape out_shape = flatten ? Shape{geo.n, geo.c_out * (geo.oh / 2) * (geo.ow / 2)} : pooled_shape;
  Tensor codes;
  Tensor out = detail::dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> values = xt::xarray<T>::from_shape(out_shape), where = xt::xarray<T>::from_shape(out_shape);
    conv_relu_pool_forward_direct<T>(x.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr, geo,
                                     values.data(), where.data());
    codes = Tensor(std::move(where));
    return Tensor(std::move(values));
  });
  return record(
      {.name = op, .inputs = {x, weight, bias}, .saved = {x, weight}, .save_output = true}, out,
      [xs = x.shape(), ws = weight.shape(), conv, geo, codes, flatten](const BackwardContext& ctx,
                                                                       const Tensor& grad) -> TensorList {
        const Tensor& values = ctx.output();
        if (!ctx.needs_grad(0) && !is_grad_enabled() && grad.dtype() == values.dtype()) {
          return detail::dispatch_float(values.dtype(), op, [&](auto t) -> TensorList {
            using T = decltype(t);
            xt::xarray<T> dw = xt::xarray<T>::from_shape(ws);
            xt::xarray<T> db = xt::xarray<T>::from_shape({ctx.needs_grad(2) ? geo.c_out : 0});
            conv_relu_pool_backward_params(grad.data<T>(), codes.data<T>(), ctx.saved(0).data<T>(), geo, dw.data(),
                                           ctx.needs_grad(2) ? db.data() : nullptr);
            return {Tensor(), Tensor(std::move(dw)), ctx.needs_grad(2) ? Tensor(std::move(db)) : Tensor()};
          });
        }
        const Tensor indices = detail::dispatch_float(codes.dtype(), op, [&](auto t) {
          using T = decltype(t);
          return pool_indices(codes.data<T>(), geo);
        });
        const Tensor masked = detail::relu_backward(grad, values);
        const std::vector<std::int64_t> pooled_dims = {static_cast<std::int64_t>(geo.n),
                                                       static_cast<std::int64_t>(geo.c_out),
                                                       static_cast<std::int64_t>(geo.oh / 2),
                                                       static_cast<std::int64_t>(geo.ow / 2)};
        const Tensor g = detail::max_pool2d_backward(flatten ? reshape(masked, pooled_dims) : masked, indices,
                                                     geo.output_shape());
        return {ctx.needs_grad(0) ? conv2d_backward_input(g, ctx.saved(1), xs, conv) : Tensor(),
                ctx.needs_grad(1) ? conv2d_backward_weight(g, ctx.saved(0), ws, conv) : Tensor(),
                ctx.needs_grad(2) ? channel_sum(g) : Tensor()};
      });
}

// d conv2d(x, w, b) = conv2d_backward_input(g, w), conv2d_backward_weight(g, x), Σ_{n,h,w} g
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  return conv2d_impl(x, weight, bias, options, false);
}

// d relu(conv2d(x, w, b)) = the same with g masked where the output is zero
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  return conv2d_impl(x, weight, bias, options, true);
}

// d backward_input(g, w) = conv2d(gg, w), conv2d_backward_weight(g, gg)
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dOptions& options) {
  const ConvGeometry geo = plan_conv(input_shape, weight.shape(), options, "conv2d_backward_input");
  check_dtypes(grad_out, weight, "conv2d_backward_input", "grad_out", "weight");
  check_grad_out(grad_out, geo, "conv2d_backward_input");
  Tensor out = detail::dispatch_float(grad_out.dtype(), "conv2d_backward_input", [&](auto t) {
    using T = decltype(t);
    return Tensor(conv_backward_input<T>(grad_out.data<T>(), weight.data<T>(), geo));
  });
  return record({.name = "conv2d_backward_input", .inputs = {grad_out, weight}, .saved = {grad_out, weight}}, out,
                [ws = weight.shape(), options](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {ctx.needs_grad(0) ? conv2d(gg, ctx.saved(1), {}, options) : Tensor(),
                          ctx.needs_grad(1) ? conv2d_backward_weight(ctx.saved(0), gg, ws, options) : Tensor()};
                });
}

// d backward_weight(g, x) = conv2d(x, gg), conv2d_backward_input(g, gg)
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dOptions& options) {
  const ConvGeometry geo = plan_conv(x.shape(), weight_shape, options, "conv2d_backward_weight");
  check_dtypes(grad_out, x, "conv2d_backward_weight", "grad_out", "x");
  check_grad_out(grad_out, geo, "conv2d_backward_weight");
  Tensor out = detail::dispatch_float(grad_out.dtype(), "conv2d_backward_weight", [&](auto t) {
    using T = decltype(t);
    return Tensor(conv_backward_weight<T>(grad_out.data<T>(), x.data<T>(), geo));
  });
  return record({.name = "conv2d_backward_weight", .inputs = {grad_out, x}, .saved = {grad_out, x}}, out,
                [xs = x.shape(), options](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {ctx.needs_grad(0) ? conv2d(ctx.saved(1), gg, {}, options) : Tensor(),
                          ctx.needs_grad(1) ? conv2d_backward_input(ctx.saved(0), gg, xs, options) : Tensor()};
                });
}

}  // namespace tg
