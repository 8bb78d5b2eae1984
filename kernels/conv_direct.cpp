// The direct conv2d kernels for few input taps (the first layer of most CNNs: 1 or 3 channels,
// a small kernel), for one instruction set (TG_ISA). Such a layer makes a GEMM with a depth of 9
// or 27, which BLAS runs far below its peak: a direct loop is faster there.
#include <algorithm>
#include <vector>

#include "tapegrad/kernels/conv_paths.hpp"
#include "tapegrad/kernels/parallel.hpp"
#include "tapegrad/kernels/simd.hpp"

namespace tg::kernels::TG_ISA {
namespace {

// dst[0, n) = src[0, n) for short rows (an output row is often 13 to 64 floats): whole SIMD
// batches, the last one overlapping the previous, instead of a memmove call per row.
// With relu, negative values are written as zero (the fused activation).
template <class T>
void copy_row(const T* src, T* dst, std::size_t n, bool relu = false) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  if (n < S) {
    for (std::size_t q = 0; q < n; ++q) dst[q] = relu ? simd::Relu{}(src[q]) : src[q];
    return;
  }
  auto move = [&](std::size_t q) {
    const V v = V::load_unaligned(src + q);
    (relu ? simd::Relu{}(v) : v).store_unaligned(dst + q);
  };
  for (std::size_t q = 0; q + S <= n; q += S) move(q);
  move(n - S);
}

// With unit stride, output (r, q) reads padded input (r + i*dh, q + j*dw): computed on "wide"
// rows as long as the padded input's, every tap is then one long contiguous multiply-add over
// the whole plane (short rows made the loop overhead dominate); the extra columns are dropped.

// The input planes of one sample, zero-padded (or x itself when there is no padding).
template <class T>
struct PaddedSample {
  std::size_t hp, wp;
  std::vector<T> storage;
  const T* planes = nullptr;

  PaddedSample(const ConvGeometry& g) : hp(g.h + g.pad_top + g.pad_bottom), wp(g.w + g.pad_left + g.pad_right) {
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
        std::copy_n(sample + (ci * g.h + r) * g.w, g.w, storage.data() + (ci * hp + r + g.pad_top) * wp + g.pad_left);
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
void direct_block(const T* planes, const std::size_t* offsets, std::size_t K, const T* w, const T* bias, std::size_t co,
                  std::size_t span, T* wide) {
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
    columns(
        k, [](const T* p) { return V::load_unaligned(p); }, [](const V& v, T* p) { v.store_unaligned(p); });
  for (; k < span; ++k)  // tail: one column at a time
    columns(
        k, [](const T* p) { return V(*p); }, [](const V& v, T* p) { *p = v.get(0); });
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
void forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, bool relu, T* y) {
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

// dst = g, zero where relu_out (the output of a fused conv2d_relu) is 0 or less (a NaN passes g,
// as in PyTorch): the relu's backward. Adds the sum of dst to *bias_grad when given. Over a whole contiguous plane, in
// SIMD.
template <class T>
void masked_plane(const T* __restrict g, const T* __restrict relu_out, std::size_t n, T* __restrict dst, T* bias_grad) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  const V zero(T(0));
  V acc(T(0));
  std::size_t i = 0;
  for (; i + S <= n; i += S) {
    V v = V::load_unaligned(g + i);
    if (relu_out) v = xsimd::select(V::load_unaligned(relu_out + i) <= zero, zero, v);
    v.store_unaligned(dst + i);
    acc += v;
  }
  T sum = xsimd::hadd(acc);
  for (; i < n; ++i) {
    const T v = relu_out && relu_out[i] <= T(0) ? T(0) : g[i];
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
        for (std::size_t b = 0; b < block; ++b)
          fill(n, co + b, wide.data() + b * span, in.wp, db ? db + co + b : nullptr);
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
void backward_weight(const T* gy, const T* x, const ConvGeometry& g, T* dw, const T* relu_out, T* db) {
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

}  // namespace

template <class T>
constexpr DirectConv<T> direct_conv_table{&forward<T>, &backward_weight<T>};

}  // namespace tg::kernels::TG_ISA

namespace tg::kernels {
TG_PUBLISH_KERNELS(DirectConv, direct_conv_table)
}  // namespace tg::kernels
