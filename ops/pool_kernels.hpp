#pragma once
// Max-pooling pieces that ops fusing a pooling (ops/conv.cpp's conv2d_relu_max_pool2d) share
// with max_pool2d itself. Internal: not part of the public headers.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "autograd/tensor.hpp"
#include "ops/simd.hpp"

namespace tg::detail {

/// `candidate` replaces `current` as the first maximum in scan order: strictly greater, or the
/// first NaN (NaN propagates, as in PyTorch). Lane by lane on SIMD batches.
template <class T, class A>
[[gnu::always_inline]] inline auto beats(const xsimd::batch<T, A>& candidate, const xsimd::batch<T, A>& current) {
  return (candidate > current) | (xsimd::isnan(candidate) & !xsimd::isnan(current));
}
template <class T>
  requires std::is_floating_point_v<T>
[[gnu::always_inline]] inline bool beats(T candidate, T current) {
  return candidate > current || (std::isnan(candidate) && !std::isnan(current));
}

/// The maximum of the 2x2 window (a b over c d), lane by lane, and where it is: code 0, 1, 2 or
/// 3 in that order, with max_pool2d's tie and NaN rules (the first maximum in scan order).
template <class V>
struct WindowMax {
  V value, code;
};
template <class T, class A>
[[gnu::always_inline]] inline WindowMax<xsimd::batch<T, A>> window_max_2x2(const xsimd::batch<T, A>& a,
                                                                          const xsimd::batch<T, A>& b,
                                                                          const xsimd::batch<T, A>& c,
                                                                          const xsimd::batch<T, A>& d) {
  using V = xsimd::batch<T, A>;
  const auto right_top = beats(b, a), right_bottom = beats(d, c);
  const V m_top = xsimd::select(right_top, b, a), m_bottom = xsimd::select(right_bottom, d, c);
  const auto lower = beats(m_bottom, m_top);
  return {xsimd::select(lower, m_bottom, m_top),
          xsimd::select(lower, xsimd::select(right_bottom, V(T(3)), V(T(2))),
                        xsimd::select(right_top, V(T(1)), V(T(0))))};
}
/// window_max_2x2 for windows known to hold no NaN (after a relu, say): fewer instructions.
template <class T, class A>
[[gnu::always_inline]] inline WindowMax<xsimd::batch<T, A>> window_max_2x2_ordered(const xsimd::batch<T, A>& a,
                                                                                  const xsimd::batch<T, A>& b,
                                                                                  const xsimd::batch<T, A>& c,
                                                                                  const xsimd::batch<T, A>& d) {
  using V = xsimd::batch<T, A>;
  const V value = xsimd::max(xsimd::max(a, b), xsimd::max(c, d));
  // The first position holding the maximum, scanning backwards so that earlier ones win.
  V code = xsimd::select(c == value, V(T(2)), V(T(3)));
  code = xsimd::select(b == value, V(T(1)), code);
  return {value, xsimd::select(a == value, V(T(0)), code)};
}
template <class T>
  requires std::is_floating_point_v<T>
[[gnu::always_inline]] inline WindowMax<T> window_max_2x2(T a, T b, T c, T d) {
  const bool right_top = beats(b, a), right_bottom = beats(d, c);
  const T m_top = right_top ? b : a, m_bottom = right_bottom ? d : c;
  const bool lower = beats(m_bottom, m_top);
  return {lower ? m_bottom : m_top, lower ? T(right_bottom ? 3 : 2) : T(right_top ? 1 : 0)};
}

/// The gradient of max pooling: g [N,C,H',W'] scattered to the int64 argmax `indices` (flat
/// within each plane) of an input of input_shape [N,C,H,W]. Differentiable (its backward is the
/// matching gather).
Tensor max_pool2d_backward(const Tensor& g, const Tensor& indices, const Shape& input_shape);

}  // namespace tg::detail
