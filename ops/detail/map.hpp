#pragma once
// Internal to ops/: elementwise maps from Tensors to a new Tensor. The float maps of the ops run
// the SIMD kernels of kernels/elementwise.hpp; any other function runs one scalar call per
// element (any dtype), broadcasting as kernels/broadcast.hpp plans it.
#include <cmath>
#include <type_traits>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/kernels/broadcast.hpp"
#include "tapegrad/kernels/elementwise.hpp"
#include "tapegrad/ops/elementwise.hpp"

namespace tg::detail {

/// f(x) elementwise on a float tensor, one scalar call per element; the result has x's dtype.
template <class F>
Tensor unary_float(const Tensor& x, std::string_view op, F f) {
  return dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    const ArrayRef<T> a = x.array<T>();
    xt::xarray<T> r = xt::xarray<T>::from_shape(a.shape());
    const T* in = a.data();
    T* out = r.data();
    for (std::size_t i = 0, n = a.size(); i < n; ++i) out[i] = static_cast<T>(f(in[i]));
    return Tensor(std::move(r));
  });
}

/// x, or x converted to default_float when it is int64: the input of an op that is only defined
/// on floats (exp, log, ...), as PyTorch promotes integers there.
Tensor as_floating(const Tensor& x);

/// The kernel `op` on a float tensor (named `name` in errors).
Tensor unary_kernel(const Tensor& x, std::string_view name, kernels::UnaryOp op);

/// The gradient kernel `op` from g and the saved s (same shape), in one pass: the plain backward
/// of a unary op when its backward is not itself recorded.
Tensor unary_grad_kernel(const Tensor& g, const Tensor& s, std::string_view name, kernels::UnaryGrad op,
                         kernels::UnaryGradParams params = {});

/// The kernel `op` on a and b broadcast; int64 runs the same op one element at a time.
Tensor binary_kernel(const Tensor& a, const Tensor& b, std::string_view name, kernels::BinaryOp op);

/// f(a, b) elementwise with broadcasting, one scalar call per element; Result::type<T> gives the
/// result element type.
template <class Result, class F>
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
    kernels::broadcast_map(kernels::broadcast_plan(sa, sb, out_shape), a.data<T>(), b.data<T>(), r.data(), f);
    return Tensor(std::move(r));
  });
}

/// Whether v is NaN; integers never are.
template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(v);
  else
    return false;
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
/// fuse a relu. One kernel pass, or differentiable in g when the backward is recorded
/// (BackwardContext::create_graph).
Tensor relu_backward(const Tensor& g, const Tensor& out, bool create_graph);

}  // namespace tg::detail
