#pragma once
// Elementwise kernels over flat float32/float64 arrays, in SIMD: the maps of the unary and binary
// ops (binary ones over a broadcast plan), the one-pass backward loops of the unary ops, gradient
// accumulation and the per-channel sum of conv2d's bias gradient. kernels/elementwise.cpp
// compiles them once per instruction set; these functions run the active level's, the maps split
// across the threads of parallel_for when large (each element's result is the same either way).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "tapegrad/kernels/broadcast.hpp"
#include "tapegrad/kernels/cpu.hpp"
#include "tapegrad/kernels/parallel.hpp"

namespace tg::kernels {

enum class UnaryOp { neg, exp, log, sqrt, relu, sigmoid, tanh, gelu };
enum class BinaryOp { add, sub, mul, div };

/// The gradient of a unary op from the incoming gradient g and a saved value s (the op's input
/// or output, as each says), in one pass.
enum class UnaryGrad {
  times_saved,  ///< g·s: exp, with s its output
  relu,         ///< g where s > 0, else 0 (s the input or the output)
  leaky_relu,   ///< g where s > 0, else g·slope (s the input)
  sigmoid,      ///< g·s·(1 - s) (s the output)
  tanh,         ///< g·(1 - s²) (s the output)
  gelu,         ///< g·(Φ(s) + s·φ(s)), exact gelu's slope (s the input)
  clamp,        ///< g where low <= s <= high, else 0 (s the input; the bounds compared in T as
                ///< they round inwards, which picks the elements a comparison in double picks)
};
/// The constants some gradients take: leaky_relu's slope (in `low`), clamp's bounds.
struct UnaryGradParams {
  double low = 0, high = 0;
};

/// The functions one instruction set's kernels/elementwise.cpp provides.
template <class T>
struct Elementwise {
  void (*unary)(UnaryOp op, const T* in, T* out, std::size_t n);
  void (*binary)(BinaryOp op, const BroadcastPlan& plan, const T* a, const T* b, T* out);
  void (*unary_grad)(UnaryGrad op, UnaryGradParams params, const T* g, const T* s, T* out, std::size_t n);
  void (*accumulate)(T* acc, const T* g, std::size_t n);
  void (*channel_sum)(const T* x, std::size_t batch, std::size_t channels, std::size_t plane, T* out);
  void (*dropout)(std::mt19937_64& engine, std::uint64_t threshold, T scale, const T* in, T* mask, T* out,
                  std::size_t n);
};
TG_DECLARE_KERNEL_TABLE(Elementwise)

/// Elements per thread below which an elementwise map runs on one thread. A map of a
/// transcendental function (exp, tanh, gelu...) gains from a second thread from about this size;
/// one of a few cycles per element is bound by memory and by waking the worker, and gains only
/// on much larger arrays (measured on [173056] and [10^6]: tanh 51 → 31 us on 2 threads, mul
/// 14 → 18 us and 95 → 75 us).
inline constexpr std::size_t elementwise_grain = 32768;
/// The same for the maps of a few cycles per element (add, mul, relu, accumulate...).
inline constexpr std::size_t cheap_elementwise_grain = std::size_t{1} << 19;

/// Whether a unary op costs a transcendental function per element.
constexpr bool is_costly(UnaryOp op) { return op != UnaryOp::neg && op != UnaryOp::relu; }
constexpr bool is_costly(UnaryGrad op) { return op == UnaryGrad::gelu; }

/// fn(begin, end) over [0, n) split by parallel_for into chunks of whole multiples of 64
/// elements but the last: the SIMD loops then give the same elements to their scalar tail (whose
/// formulas may differ in the last bit) however the work is split.
template <class Fn>
void split_elements(std::size_t n, std::size_t grain, Fn fn) {
  constexpr std::size_t unit = 64;
  parallel_for((n + unit - 1) / unit, grain / unit,
               [&](std::size_t begin, std::size_t end) { fn(begin * unit, std::min(end * unit, n)); });
}

/// out[i] = op(in[i]) for i < n (out may be in).
template <class T>
void unary(UnaryOp op, const T* in, T* out, std::size_t n) {
  const auto kernel = active_table<Elementwise<T>>().unary;
  split_elements(n, is_costly(op) ? elementwise_grain : cheap_elementwise_grain,
                 [&](std::size_t b, std::size_t e) { kernel(op, in + b, out + b, e - b); });
}

/// out = op(a, b) elementwise over the broadcast plan; out holds the plan's output, contiguous.
/// Split across threads along the plan's outermost axis.
template <class T>
void binary(BinaryOp op, const BroadcastPlan& plan, const T* a, const T* b, T* out) {
  const auto kernel = active_table<Elementwise<T>>().binary;
  std::size_t per_outer = 1;  // output elements under one step of the outermost axis
  for (std::size_t d = 1; d < plan.dims.size(); ++d) per_outer *= plan.dims[d];
  parallel_for(plan.dims[0], std::max<std::size_t>(cheap_elementwise_grain / std::max<std::size_t>(per_outer, 1), 1),
               [&](std::size_t begin, std::size_t end) {
                 BroadcastPlan part = plan;
                 part.dims[0] = end - begin;
                 kernel(op, part, a + begin * plan.stride_a[0], b + begin * plan.stride_b[0], out + begin * per_outer);
               });
}

/// out[i] = the gradient `op` from g[i] and s[i], for i < n.
template <class T>
void unary_grad(UnaryGrad op, UnaryGradParams params, const T* g, const T* s, T* out, std::size_t n) {
  const auto kernel = active_table<Elementwise<T>>().unary_grad;
  split_elements(n, is_costly(op) ? elementwise_grain : cheap_elementwise_grain,
                 [&](std::size_t b, std::size_t e) { kernel(op, params, g + b, s + b, out + b, e - b); });
}

/// acc[i] += g[i] for i < n.
template <class T>
void accumulate(T* acc, const T* g, std::size_t n) {
  const auto kernel = active_table<Elementwise<T>>().accumulate;
  split_elements(n, cheap_elementwise_grain, [&](std::size_t b, std::size_t e) { kernel(acc + b, g + b, e - b); });
}

/// out[c] = Σ over n and l of x[n, c, l], for x [batch, channels, plane] and out [channels].
template <class T>
void channel_sum(const T* x, std::size_t batch, std::size_t channels, std::size_t plane, T* out) {
  active_table<Elementwise<T>>().channel_sum(x, batch, channels, plane, out);
}

/// out[r] = Σ over l of x[r·n + l], for r < rows: the sums of contiguous rows (a reduction over
/// the innermost axes), in SIMD with several accumulators. A single long row is summed in blocks
/// whose sums are then added in order; blocks or rows are split across threads, and the result
/// never depends on the thread count.
template <class T>
void row_sums(const T* x, std::size_t rows, std::size_t n, T* out) {
  const auto kernel = active_table<Elementwise<T>>().channel_sum;
  constexpr std::size_t block = 32768;
  if (rows == 1 && n > block) {
    const std::size_t blocks = (n + block - 1) / block;
    std::vector<T> partial(blocks);
    parallel_for(blocks, cheap_elementwise_grain / block, [&](std::size_t begin, std::size_t end) {
      for (std::size_t k = begin; k < end; ++k)
        kernel(x + k * block, 1, 1, std::min(block, n - k * block), &partial[k]);
    });
    T total = 0;
    for (T p : partial) total += p;
    *out = total;
    return;
  }
  parallel_for(rows, std::max<std::size_t>(cheap_elementwise_grain / std::max<std::size_t>(n, 1), 1),
               [&](std::size_t begin, std::size_t end) { kernel(x + begin * n, 1, end - begin, n, out + begin); });
}

/// Dropout's mask and output: for each i in order, one 64-bit draw from `engine`; mask[i] = scale
/// when the draw is >= threshold, else 0; out[i] = in[i]·mask[i]. The draws are the same at every
/// level (the engine's twist, the costly part, is what the wider instruction sets speed up).
template <class T>
void dropout(std::mt19937_64& engine, std::uint64_t threshold, T scale, const T* in, T* mask, T* out, std::size_t n) {
  active_table<Elementwise<T>>().dropout(engine, threshold, scale, in, mask, out, n);
}

}  // namespace tg::kernels
