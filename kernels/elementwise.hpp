#pragma once
// Elementwise kernels over flat float32/float64 arrays, in SIMD: the maps of the unary and binary
// ops (binary ones over a broadcast plan), the one-pass backward loops of the unary ops, gradient
// accumulation and the per-channel sum of conv2d's bias gradient. kernels/elementwise.cpp
// compiles them once per instruction set; these functions run the active level's.
#include <cstddef>
#include <cstdint>
#include <random>

#include "tapegrad/kernels/broadcast.hpp"
#include "tapegrad/kernels/cpu.hpp"

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

/// out[i] = op(in[i]) for i < n (out may be in).
template <class T>
void unary(UnaryOp op, const T* in, T* out, std::size_t n) {
  active_table<Elementwise<T>>().unary(op, in, out, n);
}

/// out = op(a, b) elementwise over the broadcast plan; out holds the plan's output, contiguous.
template <class T>
void binary(BinaryOp op, const BroadcastPlan& plan, const T* a, const T* b, T* out) {
  active_table<Elementwise<T>>().binary(op, plan, a, b, out);
}

/// out[i] = the gradient `op` from g[i] and s[i], for i < n.
template <class T>
void unary_grad(UnaryGrad op, UnaryGradParams params, const T* g, const T* s, T* out, std::size_t n) {
  active_table<Elementwise<T>>().unary_grad(op, params, g, s, out, n);
}

/// acc[i] += g[i] for i < n.
template <class T>
void accumulate(T* acc, const T* g, std::size_t n) {
  active_table<Elementwise<T>>().accumulate(acc, g, n);
}

/// out[c] = Σ over n and l of x[n, c, l], for x [batch, channels, plane] and out [channels].
template <class T>
void channel_sum(const T* x, std::size_t batch, std::size_t channels, std::size_t plane, T* out) {
  active_table<Elementwise<T>>().channel_sum(x, batch, channels, plane, out);
}

/// Dropout's mask and output: for each i in order, one 64-bit draw from `engine`; mask[i] = scale
/// when the draw is >= threshold, else 0; out[i] = in[i]·mask[i]. The draws are the same at every
/// level (the engine's twist, the costly part, is what the wider instruction sets speed up).
template <class T>
void dropout(std::mt19937_64& engine, std::uint64_t threshold, T scale, const T* in, T* mask, T* out, std::size_t n) {
  active_table<Elementwise<T>>().dropout(engine, threshold, scale, in, mask, out, n);
}

}  // namespace tg::kernels
