#pragma once
// The maximum of a 2x2 window and where it is, the rule max_pool2d and the fused
// conv2d_relu_max_pool2d share. Internal to the SIMD kernel files (kernels/simd.hpp).
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "tapegrad/kernels/simd.hpp"

namespace tg::kernels::TG_ISA {

/// `candidate` replaces `current` as the window's maximum in scan order: strictly greater (so the
/// first of tied maxima stays), or NaN (so the last NaN wins: NaN propagates, and its gradient
/// goes where PyTorch's CPU max_pool2d sends it). Lane by lane on SIMD batches.
template <class T, class A>
[[gnu::always_inline]] inline auto beats(const xsimd::batch<T, A>& candidate, const xsimd::batch<T, A>& current) {
  return (candidate > current) | xsimd::isnan(candidate);
}
template <class T>
requires std::is_floating_point_v<T>
[[gnu::always_inline]] inline bool beats(T candidate, T current) {
  return candidate > current || std::isnan(candidate);
}

/// `if_else(mask, a, b)`: a where mask holds, else b; for SIMD masks lane by lane.
template <class T, class A>
[[gnu::always_inline]] inline xsimd::batch<T, A> if_else(const xsimd::batch_bool<T, A>& mask,
                                                         const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) {
  return xsimd::select(mask, a, b);
}
template <class T>
[[gnu::always_inline]] inline T if_else(bool mask, T a, T b) {
  return mask ? a : b;
}

/// The maximum of the 2x2 window (a b over c d) and where it is: code 0, 1, 2 or 3 in that
/// order, with max_pool2d's tie and NaN rules (the first maximum, or the last NaN, in scan order). V is a float
/// type or a SIMD batch of one (then lane by lane).
template <class V>
struct WindowMax {
  V value, code;
};
template <class V>
[[gnu::always_inline]] inline WindowMax<V> window_max_2x2(const V& a, const V& b, const V& c, const V& d) {
  const auto right_top = beats(b, a), right_bottom = beats(d, c);
  const V m_top = if_else(right_top, b, a), m_bottom = if_else(right_bottom, d, c);
  const auto lower = beats(m_bottom, m_top);
  return {if_else(lower, m_bottom, m_top),
          if_else(lower, if_else(right_bottom, V(3), V(2)), if_else(right_top, V(1), V(0)))};
}

/// window_max_2x2 on SIMD batches known to hold no NaN (after a relu, say): fewer instructions.
template <class V>
[[gnu::always_inline]] inline WindowMax<V> window_max_2x2_ordered(const V& a, const V& b, const V& c, const V& d) {
  const V value = xsimd::max(xsimd::max(a, b), xsimd::max(c, d));
  // The first position holding the maximum, scanning backwards so that earlier ones win.
  V code = xsimd::select(c == value, V(2), V(3));
  code = xsimd::select(b == value, V(1), code);
  return {value, xsimd::select(a == value, V(0), code)};
}

}  // namespace tg::kernels::TG_ISA
