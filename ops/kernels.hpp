#pragma once
// Internal: elementwise kernels shared by the ops. Unary kernels and same-shape binary kernels
// run flat loops (SIMD where a vector form is given); broadcasting binary kernels run a strided
// loop over the output whose innermost axis is contiguous, after merging adjacent axes, so that
// a scalar operand or a bias [C] onto [N, C] becomes one or a few long SIMD rows.
#include <algorithm>
#include <type_traits>

#include "autograd/dispatch.hpp"
#include "autograd/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/simd.hpp"

namespace tg::detail {

/// f(x) elementwise on a float tensor, one scalar call per element; the result has x's dtype.
template <class F>
Tensor unary_float(const Tensor& x, std::string_view op, F f) {
  return dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    const xt::xarray<T>& a = x.array<T>();
    xt::xarray<T> r = xt::xarray<T>::from_shape(a.shape());
    const T* in = a.data();
    T* out = r.data();
    const std::size_t n = a.size();
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(f(in[i]));
    return Tensor(std::move(r));
  });
}

/// f(x) elementwise on a float tensor with SIMD; f is callable on xsimd batches and on scalars
/// (see ops/simd.hpp).
template <class F>
Tensor unary_simd(const Tensor& x, std::string_view op, F f) {
  return dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    const xt::xarray<T>& a = x.array<T>();
    xt::xarray<T> r = xt::xarray<T>::from_shape(a.shape());
    simd::map1(a.data(), r.data(), a.size(), f, f);
    return Tensor(std::move(r));
  });
}

/// Two operands broadcast onto an output: merged axes (at least one) and each operand's
/// element strides along them, 0 where it is broadcast. The innermost strides are 0 or 1.
struct BroadcastPlan {
  Shape dims;
  std::vector<std::size_t> stride_a, stride_b;
};

inline BroadcastPlan broadcast_plan(const Shape& a, const Shape& b, const Shape& out) {
  const std::size_t n = out.size();
  // Contiguous strides of each operand, aligned to the output's axes; 0 where broadcast.
  auto strides = [n, &out](const Shape& s) {
    std::vector<std::size_t> st(n, 0);
    std::size_t step = 1;
    for (std::size_t i = s.size(); i-- > 0;) {
      const std::size_t o = i + (n - s.size());
      st[o] = s[i] == out[o] ? step : 0;
      step *= s[i];
    }
    return st;
  };
  const std::vector<std::size_t> sa = strides(a), sb = strides(b);
  BroadcastPlan p;
  for (std::size_t i = 0; i < n; ++i) {
    if (out[i] == 1) continue;  // size-1 axes take no part in the walk
    if (!p.dims.empty() && p.stride_a.back() == sa[i] * out[i] && p.stride_b.back() == sb[i] * out[i]) {
      // The previous axis steps over exactly this one in both operands: merge them.
      p.dims.back() *= out[i];
      p.stride_a.back() = sa[i];
      p.stride_b.back() = sb[i];
      continue;
    }
    p.dims.push_back(out[i]);
    p.stride_a.push_back(sa[i]);
    p.stride_b.push_back(sb[i]);
  }
  if (p.dims.empty()) {
    p.dims = {1};
    p.stride_a = {0};
    p.stride_b = {0};
  }
  return p;
}

/// pr[...] = f(pa[...], pb[...]) over the plan. With Vector, f is also called on SIMD batches.
template <bool Vector, class T, class R, class F>
void broadcast_loop(const BroadcastPlan& p, const T* pa, const T* pb, R* pr, F f) {
  const std::size_t rank = p.dims.size();
  const std::size_t inner = p.dims.back();
  const std::size_t ia = p.stride_a.back(), ib = p.stride_b.back();
  constexpr bool vec = Vector && std::is_same_v<T, R> && simd::enabled<T>;
  auto row = [&](const T* ra, const T* rb, R* out) {
    if (ia == 1 && ib == 1) {
      if constexpr (vec)
        simd::map2(ra, rb, out, inner, f);
      else
        for (std::size_t i = 0; i < inner; ++i) out[i] = static_cast<R>(f(ra[i], rb[i]));
    } else if (ia == 1) {
      if constexpr (vec)
        simd::map2_scalar_b(ra, *rb, out, inner, f);
      else
        for (std::size_t i = 0; i < inner; ++i) out[i] = static_cast<R>(f(ra[i], *rb));
    } else if (ib == 1) {
      if constexpr (vec)
        simd::map2_scalar_a(*ra, rb, out, inner, f);
      else
        for (std::size_t i = 0; i < inner; ++i) out[i] = static_cast<R>(f(*ra, rb[i]));
    } else {
      std::fill_n(out, inner, static_cast<R>(f(*ra, *rb)));
    }
  };
  if (rank == 1) {
    row(pa, pb, pr);
    return;
  }
  // Odometer over the outer axes, carrying each operand's offset.
  std::vector<std::size_t> coord(rank - 1, 0);
  std::size_t oa = 0, ob = 0;
  std::size_t rows = 1;
  for (std::size_t d = 0; d + 1 < rank; ++d) rows *= p.dims[d];
  for (std::size_t r = 0; r < rows; ++r, pr += inner) {
    row(pa + oa, pb + ob, pr);
    for (std::size_t d = rank - 1; d-- > 0;) {
      oa += p.stride_a[d];
      ob += p.stride_b[d];
      if (++coord[d] < p.dims[d]) break;
      oa -= p.dims[d] * p.stride_a[d];
      ob -= p.dims[d] * p.stride_b[d];
      coord[d] = 0;
    }
  }
}

/// f(a, b) elementwise with broadcasting; Result::type<T> gives the result element type. With
/// Vector, f must also accept xsimd batches (float types then run SIMD loops).
template <class Result, bool Vector = false, class F>
Tensor binary_map(const Tensor& a, const Tensor& b, std::string_view op, F f) {
  TG_CHECK(a.dtype() == b.dtype(), "{}: dtypes differ: {} {} and {} {}; convert one with to()", op, a.dtype(),
           shape_str(a.shape()), b.dtype(), shape_str(b.shape()));
  const Shape sa = a.shape(), sb = b.shape();
  const Shape out_shape = sa == sb ? sa : broadcast_shapes(sa, sb, op);
  return dispatch_all(a.dtype(), [&](auto t) {
    using T = decltype(t);
    using R = typename Result::template type<T>;
    xt::xarray<R> r = xt::xarray<R>::from_shape(out_shape);
    if (r.size() == 0) return Tensor(std::move(r));
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    if (sa == sb) {
      constexpr bool vec = Vector && std::is_same_v<T, R> && simd::enabled<T>;
      if constexpr (vec) {
        simd::map2(pa, pb, r.data(), r.size(), f);
      } else {
        R* pr = r.data();
        for (std::size_t i = 0, n = r.size(); i < n; ++i) pr[i] = static_cast<R>(f(pa[i], pb[i]));
      }
      return Tensor(std::move(r));
    }
    broadcast_loop<Vector>(broadcast_plan(sa, sb, out_shape), pa, pb, r.data(), f);
    return Tensor(std::move(r));
  });
}

struct SameType {
  template <class T>
  using type = T;
};
struct IndexType {
  template <class T>
  using type = std::int64_t;
};

/// g where out (a relu's output) is positive, else 0: the relu's backward, shared with ops that
/// fuse a relu. One pass when no graph is recorded; differentiable in g otherwise.
Tensor relu_backward(const Tensor& g, const Tensor& out);

/// binary_map whose generic f runs on SIMD batches too; the result has the operands' dtype.
template <class F>
Tensor binary_simd(const Tensor& a, const Tensor& b, std::string_view op, F f) {
  return binary_map<SameType, true>(a, b, op, f);
}

}  // namespace tg::detail
