#pragma once
// Internal: elementwise kernels shared by the ops. Same-shape inputs run a flat loop; other
// shapes broadcast through xtensor.
#include <xtensor/xvectorize.hpp>

#include "autograd/dispatch.hpp"
#include "autograd/tensor.hpp"
#include "ops/elementwise.hpp"

namespace tg::detail {

/// f(x) elementwise on a float tensor; the result has x's dtype.
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

/// f(a, b) elementwise with broadcasting; R(T) gives the result element type.
template <class Result, class F>
Tensor binary_map(const Tensor& a, const Tensor& b, std::string_view op, F f) {
  TG_CHECK(a.dtype() == b.dtype(), "{}: dtypes differ: {} {} and {} {}; convert one with to()", op, a.dtype(),
           shape_str(a.shape()), b.dtype(), shape_str(b.shape()));
  broadcast_shapes(a.shape(), b.shape(), op);
  return dispatch_all(a.dtype(), [&](auto t) {
    using T = decltype(t);
    using R = typename Result::template type<T>;
    const xt::xarray<T>& xa = a.array<T>();
    const xt::xarray<T>& xb = b.array<T>();
    auto g = [&f](T u, T v) -> R { return static_cast<R>(f(u, v)); };
    if (xa.shape() == xb.shape()) {
      xt::xarray<R> r = xt::xarray<R>::from_shape(xa.shape());
      const std::size_t n = xa.size();
      const T* pa = xa.data();
      const T* pb = xb.data();
      R* pr = r.data();
      for (std::size_t i = 0; i < n; ++i) pr[i] = g(pa[i], pb[i]);
      return Tensor(std::move(r));
    }
    xt::xarray<R> r = xt::vectorize(g)(xa, xb);
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

}  // namespace tg::detail
