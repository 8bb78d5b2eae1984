// The fused conv2d + relu + 2x2 max pooling (stride 2) of kernels/conv.hpp on the direct path,
// for one instruction set (TG_ISA).
#include <algorithm>
#include <vector>

#include "tapegrad/kernels/conv.hpp"
#include "tapegrad/kernels/conv_paths.hpp"
#include "tapegrad/kernels/parallel.hpp"
#include "tapegrad/kernels/simd.hpp"
#include "tapegrad/kernels/window_max.hpp"

namespace tg::kernels::TG_ISA {
namespace {

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
constexpr int zero_window = relu_pool_zero_window;

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
  const simd::Relu relu;
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
        const V r0 = relu(acc[0][b]), r1 = relu(acc[1][b]), r2 = relu(acc[2][b]), r3 = relu(acc[3][b]);
        // A NaN (from a NaN input) is the window's maximum, as in PyTorch; the sum of the four
        // (each 0 or more, or NaN) tells whether there is one, so the common case stays short.
        const WindowMax<V> m = xsimd::any(xsimd::isnan(r0 + r1 + r2 + r3)) ? window_max_2x2(r0, r1, r2, r3)
                                                                           : window_max_2x2_ordered(r0, r1, r2, r3);
        simd::store_first(m.value, values + b * plane.size() + out, count);
        // A window whose maximum is 0 gets relu's zero gradient; NaN fails `<= 0` and keeps its code.
        const V stored_code = xsimd::select(m.value <= V(T(0)), V(T(zero_window)), m.code);
        simd::store_first(stored_code, codes + b * plane.size() + out, count);
      }
    }
}

// max_pool2d(relu(conv2d(x))) with 2x2 windows at stride 2 on the direct path, split over the
// batch. values and codes [N, C_out, H'/2, W'/2]: which of the window's four the maximum is, or
// zero_window.
template <class T>
void forward(const T* x, const T* w, const T* bias, const ConvGeometry& g, T* values, T* codes) {
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

// Adds to sums[b][t] (b < B, t < TB) the gradient of weight (co+b, t0+t) over one sample's
// plane of output channel co+b: the pooled gradient gp (masked by relu's gradient, zero_window,
// and by the window's code for each of its four positions) times the input each position read at that
// tap, over every window. The sums stay in registers across the whole plane.
template <class T, std::size_t B, std::size_t TB, class Taps>
void pooled_weight_block(const T* planes, const Taps& taps, std::size_t t0, const PooledPlane& plane,
                         const T* const* gp, const T* const* codes, xsimd::batch<T>* sums, xsimd::batch<T>* bias_sums) {
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
void backward_params(const T* gp, const T* codes, const T* x, const ConvGeometry& g, T* dw, T* db) {
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
              pooled_weight_taps<T, 1>(in.planes.data(), taps, plane, grads + b, where + b, channel_sums + b * K,
                                       channel_bias ? channel_bias + b : nullptr);
        }
      }
    });
    for (std::size_t i = 0; i < sums.size(); ++i) dw[c_begin * K + i] = xsimd::hadd(sums[i]);
    if (db)
      for (std::size_t i = 0; i < bias_sums.size(); ++i) db[c_begin + i] = xsimd::hadd(bias_sums[i]);
  });
}

}  // namespace

template <class T>
constexpr ConvReluPool<T> conv_relu_pool_table{&forward<T>, &backward_params<T>};

}  // namespace tg::kernels::TG_ISA

namespace tg::kernels {
TG_PUBLISH_KERNELS(ConvReluPool, conv_relu_pool_table)
}  // namespace tg::kernels
