// The elementwise kernels of kernels/elementwise.hpp for one instruction set (TG_ISA): each a
// switch on the op, then one SIMD loop with a scalar tail.
#include "tapegrad/kernels/elementwise.hpp"

#include <limits>

#include "tapegrad/kernels/simd.hpp"

namespace tg::kernels::TG_ISA {
namespace {

using simd::splat;

template <class T>
void unary(UnaryOp op, const T* in, T* out, std::size_t n) {
  const auto neg = [](auto v) { return -v; };
  switch (op) {
    case UnaryOp::neg:
      return simd::map1(in, out, n, neg, neg);
    case UnaryOp::exp:
      return simd::map1(in, out, n, simd::Exp{}, simd::Exp{});
    case UnaryOp::log:
      return simd::map1(in, out, n, simd::Log{}, simd::Log{});
    case UnaryOp::sqrt:
      return simd::map1(in, out, n, simd::Sqrt{}, simd::Sqrt{});
    case UnaryOp::relu:
      return simd::map1(in, out, n, simd::Relu{}, simd::Relu{});
    case UnaryOp::sigmoid:
      return simd::map1(in, out, n, simd::Sigmoid{}, simd::Sigmoid{});
    case UnaryOp::tanh:
      return simd::map1(in, out, n, simd::Tanh{}, simd::Tanh{});
    case UnaryOp::gelu:
      return simd::map1(in, out, n, simd::Gelu{}, simd::Gelu{});
  }
}

// out = f(a, b) over the plan: per row, a SIMD map with each operand contiguous or one value.
template <class T, class F>
void broadcast_simd(const BroadcastPlan& p, const T* pa, const T* pb, T* pr, F f) {
  const std::size_t inner = p.dims.back(), ia = p.stride_a.back(), ib = p.stride_b.back();
  for_each_row(p, pa, pb, [&](const T* ra, const T* rb, std::size_t r) {
    T* out = pr + r * inner;
    if (ia == 1 && ib == 1)
      simd::map2(ra, rb, out, inner, f);
    else if (ia == 1)
      simd::map2_scalar_b(ra, *rb, out, inner, f);
    else if (ib == 1)
      simd::map2_scalar_a(*ra, rb, out, inner, f);
    else
      std::fill_n(out, inner, f(*ra, *rb));
  });
}

template <class T>
void binary(BinaryOp op, const BroadcastPlan& plan, const T* a, const T* b, T* out) {
  switch (op) {
    case BinaryOp::add:
      return broadcast_simd(plan, a, b, out, [](auto u, auto v) { return u + v; });
    case BinaryOp::sub:
      return broadcast_simd(plan, a, b, out, [](auto u, auto v) { return u - v; });
    case BinaryOp::mul:
      return broadcast_simd(plan, a, b, out, [](auto u, auto v) { return u * v; });
    case BinaryOp::div:
      return broadcast_simd(plan, a, b, out, [](auto u, auto v) { return u / v; });
  }
}

// The bounds of clamp's gradient in T, rounded inwards: comparing in T then picks the elements
// that comparing in double picks.
template <class T>
std::pair<T, T> inward_bounds(double low, double high) {
  T lo = static_cast<T>(low), hi = static_cast<T>(high);
  if (static_cast<double>(lo) < low) lo = std::nextafter(lo, std::numeric_limits<T>::infinity());
  if (static_cast<double>(hi) > high) hi = std::nextafter(hi, -std::numeric_limits<T>::infinity());
  return {lo, hi};
}

template <class T>
void unary_grad(UnaryGrad op, UnaryGradParams params, const T* g, const T* s, T* out, std::size_t n) {
  switch (op) {
    case UnaryGrad::times_saved:
      return simd::map2(g, s, out, n, [](auto dy, auto y) { return dy * y; });
    case UnaryGrad::relu:
      return simd::map2(g, s, out, n, [](auto dy, auto y) {
        using V = decltype(dy);
        return simd::select(y <= splat<V>(0), splat<V>(0), dy);  // a NaN output passes dy, as PyTorch's
      });
    case UnaryGrad::leaky_relu: {
      const T slope = static_cast<T>(params.low);
      return simd::map2(g, s, out, n, [slope](auto dy, auto x) {
        using V = decltype(dy);
        return simd::select(x > splat<V>(0), dy, dy * V(slope));
      });
    }
    case UnaryGrad::sigmoid:
      return simd::map2(g, s, out, n, [](auto dy, auto y) {
        using V = decltype(dy);
        return dy * (y * (splat<V>(1) - y));
      });
    case UnaryGrad::tanh:
      return simd::map2(g, s, out, n, [](auto dy, auto y) {
        using V = decltype(dy);
        return dy * (splat<V>(1) - y * y);
      });
    case UnaryGrad::gelu:
      return simd::map2(g, s, out, n, [](auto dy, auto x) { return dy * simd::GeluSlope{}(x); });
    case UnaryGrad::clamp: {
      const std::pair<T, T> bounds = inward_bounds<T>(params.low, params.high);
      const T lo = bounds.first, hi = bounds.second;  // named: clang 14 cannot capture a structured binding
      return simd::map2(g, s, out, n, [lo, hi](auto dy, auto x) {
        using V = decltype(dy);
        return simd::select((x >= V(lo)) & (x <= V(hi)), dy, splat<V>(0));
      });
    }
  }
}

template <class T>
void accumulate(T* acc, const T* g, std::size_t n) {
  simd::map2(acc, g, acc, n, [](auto u, auto v) { return u + v; });
}

template <class T>
void channel_sum(const T* x, std::size_t batch, std::size_t channels, std::size_t plane, T* out) {
  using V = xsimd::batch<T>;
  constexpr std::size_t S = V::size;
  std::fill_n(out, channels, T(0));
  for (std::size_t n = 0; n < batch; ++n)
    for (std::size_t c = 0; c < channels; ++c) {
      const T* q = x + (n * channels + c) * plane;
      // Two vector accumulators: a scalar sum is one long dependency chain (and not vectorized).
      V acc0(T(0)), acc1(T(0));
      std::size_t k = 0;
      for (; k + 2 * S <= plane; k += 2 * S) {
        acc0 += V::load_unaligned(q + k);
        acc1 += V::load_unaligned(q + k + S);
      }
      T sum = xsimd::hadd(acc0 + acc1);
      for (; k < plane; ++k) sum += q[k];
      out[c] += sum;
    }
}

// flatten: the engine's twist inlined here, compiled for this level. A call would go to the one
// out-of-line copy the linker keeps of std::mt19937_64's twist, compiled for another level.
template <class T>
[[gnu::flatten]] void dropout(std::mt19937_64& engine, std::uint64_t threshold, T scale, const T* in, T* mask, T* out,
                              std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    mask[i] = engine() >= threshold ? scale : T(0);
    out[i] = in[i] * mask[i];
  }
}

}  // namespace

template <class T>
constexpr Elementwise<T> elementwise_table{&unary<T>,      &binary<T>,      &unary_grad<T>,
                                           &accumulate<T>, &channel_sum<T>, &dropout<T>};

}  // namespace tg::kernels::TG_ISA

namespace tg::kernels {
TG_PUBLISH_KERNELS(Elementwise, elementwise_table)
}  // namespace tg::kernels
