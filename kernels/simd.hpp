#pragma once
// Internal to the SIMD kernel files, which CMake compiles once per instruction set with TG_ISA
// naming it (baseline, avx2 or avx512; see kernels/cpu.hpp): SIMD loops with xsimd on that
// unit's widest vectors, each with a scalar tail, and the vector and scalar forms of the
// transcendental functions. The vector functors take and return xsimd::batch<T>; the scalar ones
// take and return T. Everything here lives in the unit's own namespace, so that no function
// compiled for one instruction set can stand in for another's at link time.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "tapegrad/kernels/cpu.hpp"

#if !defined(TG_ISA) || !defined(TG_ISA_LEVEL)
#error "kernels/simd.hpp is for the SIMD kernel files: CMake compiles them once per instruction set (TG_ISA)"
#endif
#if TG_ISA_LEVEL >= 1 && !(defined(__AVX2__) && defined(__FMA__))
#error "the avx2 and avx512 kernels need -mavx2 -mfma"
#endif
#if TG_ISA_LEVEL >= 2 && \
    !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__))
#error "the avx512 kernels need AVX-512 F, BW, DQ and VL"
#endif

// GCC 12 flags the _mm512_undefined_* idiom inside its own intrinsics headers as (maybe-)
// uninitialized (GCC bug 105593); the state that counts is the one where those headers are
// read, so it is silenced around this include.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning, unknown to clang (the fuzz build)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop

#if defined(XSIMD_NO_SUPPORTED_ARCHITECTURE)
#error "xsimd found no instruction set: every x86-64 CPU has SSE2"
#endif

/// Publishes this unit's `table<T>` (a variable template in its own namespace) as the Table<T>
/// of its instruction set, for float and double; written inside namespace tg::kernels.
#define TG_PUBLISH_KERNELS(Table, table)                         \
  template <>                                                    \
  const Table<float>& table_for<Isa::TG_ISA, Table<float>>() {   \
    return TG_ISA::table<float>;                                 \
  }                                                              \
  template <>                                                    \
  const Table<double>& table_for<Isa::TG_ISA, Table<double>>() { \
    return TG_ISA::table<double>;                                \
  }

namespace tg::kernels::TG_ISA::simd {

/// out[i] = f(in[i]); vf on whole batches, sf on the tail.
template <class T, class VF, class SF>
void map1(const T* in, T* out, std::size_t n, VF vf, SF sf) {
  using B = xsimd::batch<T>;
  std::size_t i = 0;
  for (; i + B::size <= n; i += B::size) vf(B::load_unaligned(in + i)).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = sf(in[i]);
}

/// out[i] = f(a[i], b[i]); f is generic (called with two batches, or two scalars).
template <class T, class F>
void map2(const T* a, const T* b, T* out, std::size_t n, F f) {
  using B = xsimd::batch<T>;
  std::size_t i = 0;
  for (; i + B::size <= n; i += B::size) f(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = f(a[i], b[i]);
}

/// out[i] = f(a[i], s): the second operand is one value.
template <class T, class F>
void map2_scalar_b(const T* a, T s, T* out, std::size_t n, F f) {
  using B = xsimd::batch<T>;
  const B bs(s);
  std::size_t i = 0;
  for (; i + B::size <= n; i += B::size) f(B::load_unaligned(a + i), bs).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = f(a[i], s);
}

/// out[i] = f(s, b[i]): the first operand is one value.
template <class T, class F>
void map2_scalar_a(T s, const T* b, T* out, std::size_t n, F f) {
  using B = xsimd::batch<T>;
  const B as(s);
  std::size_t i = 0;
  for (; i + B::size <= n; i += B::size) f(as, B::load_unaligned(b + i)).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = f(s, b[i]);
}

// The vector and scalar forms of the transcendental kernels. Each pair computes the same
// formula, so the tail differs from the body by rounding only.

template <class T>
concept Real = std::is_floating_point_v<T>;

template <class V>
struct scalar_of {
  using type = V;
};
template <class T, class A>
struct scalar_of<xsimd::batch<T, A>> {
  using type = T;
};

/// The constant c as a value of V (a scalar, or a batch with c in every lane).
template <class V>
V splat(double c) {
  return V(static_cast<typename scalar_of<V>::type>(c));
}

/// c ? a : b, for scalars; lane by lane for batches.
template <class T>
requires std::is_arithmetic_v<T> T select(bool c, T a, T b) { return c ? a : b; }
template <class T, class A>
xsimd::batch<T, A> select(const xsimd::batch_bool<T, A>& c, const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) {
  return xsimd::select(c, a, b);
}

/// exp
struct Exp {
  template <class T, class A>
  xsimd::batch<T, A> operator()(const xsimd::batch<T, A>& v) const {
    return xsimd::exp(v);
  }
  template <Real T>
  T operator()(T v) const {
    return std::exp(v);
  }
};

/// log
struct Log {
  template <class T, class A>
  xsimd::batch<T, A> operator()(const xsimd::batch<T, A>& v) const {
    return xsimd::log(v);
  }
  template <Real T>
  T operator()(T v) const {
    return std::log(v);
  }
};

/// sqrt
struct Sqrt {
  template <class T, class A>
  xsimd::batch<T, A> operator()(const xsimd::batch<T, A>& v) const {
    return xsimd::sqrt(v);
  }
  template <Real T>
  T operator()(T v) const {
    return std::sqrt(v);
  }
};

/// tanh
struct Tanh {
  template <class T, class A>
  xsimd::batch<T, A> operator()(const xsimd::batch<T, A>& v) const {
    return xsimd::tanh(v);
  }
  template <Real T>
  T operator()(T v) const {
    return std::tanh(v);
  }
};

/// sigmoid, stable for large |x|: with e = exp(-|x|) (never overflows), 1/(1+e) for x >= 0 and
/// e/(1+e) below; one exp per element.
struct Sigmoid {
  template <class T, class A>
  xsimd::batch<T, A> operator()(const xsimd::batch<T, A>& v) const {
    using B = xsimd::batch<T, A>;
    const B e = xsimd::exp(-xsimd::abs(v));
    const B r = B(T(1)) / (B(T(1)) + e);
    return xsimd::select(v >= B(T(0)), r, e * r);
  }
  template <Real T>
  T operator()(T v) const {
    const T e = std::exp(-std::abs(v));
    const T r = T(1) / (T(1) + e);
    return v >= T(0) ? r : e * r;
  }
};

/// gelu, exact: x·Φ(x) = x/2·(1 + erf(x/√2)).
struct Gelu {
  template <class V>
  V operator()(const V& x) const {
    using std::erf;
    return splat<V>(0.5) * x * (splat<V>(1) + erf(x * splat<V>(0.70710678118654752440)));
  }
};

/// gelu's slope: Φ(x) + x·φ(x), with φ(x) = exp(-x²/2)/√(2π).
struct GeluSlope {
  template <class V>
  V operator()(const V& x) const {
    using std::erf, std::exp;
    const V cdf = splat<V>(0.5) * (splat<V>(1) + erf(x * splat<V>(0.70710678118654752440)));
    return cdf + x * exp(splat<V>(-0.5) * x * x) * splat<V>(0.39894228040143267794);
  }
};

/// relu: x > 0 ? x : 0 (NaN gives 0, as before).
struct Relu {
  template <class T, class A>
  xsimd::batch<T, A> operator()(const xsimd::batch<T, A>& v) const {
    using B = xsimd::batch<T, A>;
    return xsimd::select(v <= B(T(0)), B(T(0)), v);  // NaN fails the test and stays, as in PyTorch
  }
  template <Real T>
  T operator()(T v) const {
    return v <= T(0) ? T(0) : v;
  }
};

namespace lanes {
// Swizzle and select patterns for deinterleave (n lanes, h = n/2).
struct EvensThenOdds {  // [0, 2, .., n-2, 1, 3, .., n-1]
  static constexpr unsigned get(unsigned i, unsigned n) { return i < n / 2 ? 2 * i : 2 * (i - n / 2) + 1; }
};
struct OddsThenEvens {  // [1, 3, .., n-1, 0, 2, .., n-2]
  static constexpr unsigned get(unsigned i, unsigned n) { return i < n / 2 ? 2 * i + 1 : 2 * (i - n / 2); }
};
struct SwapHalves {
  static constexpr unsigned get(unsigned i, unsigned n) { return (i + n / 2) % n; }
};
struct LowHalf {
  static constexpr bool get(unsigned i, unsigned n) { return i < n / 2; }
};
}  // namespace lanes

/// The 2n values a then b split into their even and their odd positions: {a0 a2 .. b0 b2 ..,
/// a1 a3 .. b1 b3 ..}.
template <class T, class A>
std::pair<xsimd::batch<T, A>, xsimd::batch<T, A>> deinterleave(const xsimd::batch<T, A>& a,
                                                               const xsimd::batch<T, A>& b) {
  using V = xsimd::batch<T, A>;
  using I = xsimd::batch<xsimd::as_unsigned_integer_t<T>, A>;
  const V a_split = xsimd::swizzle(a, xsimd::make_batch_constant<I, lanes::EvensThenOdds>());
  const V b_split = xsimd::swizzle(b, xsimd::make_batch_constant<I, lanes::OddsThenEvens>());
  constexpr auto low = xsimd::make_batch_bool_constant<V, lanes::LowHalf>();
  const V odds_swapped = xsimd::select(low, b_split, a_split);  // b's odds, then a's
  return {xsimd::select(low, a_split, b_split),
          xsimd::swizzle(odds_swapped, xsimd::make_batch_constant<I, lanes::SwapHalves>())};
}

/// The first n (at most a batch) values at p, zeros after them; reads nothing past p + n
/// (a masked load on AVX-512, otherwise a copy through the stack).
template <class T>
xsimd::batch<T> load_first(const T* p, std::size_t n) {
  using V = xsimd::batch<T>;
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    const auto mask = static_cast<std::uint32_t>((std::uint64_t{1} << n) - 1);
    if constexpr (std::is_same_v<T, float>)
      return V(_mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), p));
    else
      return V(_mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), p));
  }
#endif
  alignas(sizeof(V)) T lanes[V::size] = {};
  for (std::size_t i = 0; i < n; ++i) lanes[i] = p[i];
  return V::load_aligned(lanes);
}

/// Stores the first n (at most a batch) lanes of v at p; writes nothing past p + n.
template <class T>
void store_first(const xsimd::batch<T>& v, T* p, std::size_t n) {
  using V = xsimd::batch<T>;
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    const auto mask = static_cast<std::uint32_t>((std::uint64_t{1} << n) - 1);
    if constexpr (std::is_same_v<T, float>)
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>(mask), v);
    else
      _mm512_mask_storeu_pd(p, static_cast<__mmask8>(mask), v);
    return;
  }
#endif
  alignas(sizeof(V)) T lanes[V::size];
  v.store_aligned(lanes);
  for (std::size_t i = 0; i < n; ++i) p[i] = lanes[i];
}

}  // namespace tg::kernels::TG_ISA::simd
