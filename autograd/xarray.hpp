#pragma once
// The xtensor side of tg::Tensor: a Tensor from an xtensor array or expression, and a tensor's
// elements as an xtensor expression over its storage (array<T>(), mutable_array<T>()). Apart
// from tensor.hpp so that code which never touches xtensor does not compile it.
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuffer_adaptor.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dtype.hpp"
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// A tensor's elements as an xtensor expression of its shape, read-only: an adaptor over the
/// storage (no copy), valid while a tensor sharing that storage lives; for a strided view, over
/// its gathered copy, valid until the storage next changes.
template <class T>
using ArrayRef = xt::xarray_adaptor<xt::xbuffer_adaptor<const T*, xt::no_ownership, std::allocator<T>>,
                                    xt::layout_type::row_major, Shape>;
/// The same, writable (Tensor::mutable_array).
template <class T>
using MutableArrayRef =
    xt::xarray_adaptor<xt::xbuffer_adaptor<T*, xt::no_ownership>, xt::layout_type::row_major, Shape>;

namespace detail {

/// The element types a Tensor holds.
template <class T>
inline constexpr bool is_element_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t>;

template <class E>
requires xt::is_xexpression<E>::value && is_element_v<typename E::value_type>
struct TensorSource<E> : std::true_type {
};

/// A tensor owning `a`'s elements (moved in, never copied).
Tensor tensor_from(xt::xarray<float>&& a);
/// The same for float64.
Tensor tensor_from(xt::xarray<double>&& a);
/// The same for int64.
Tensor tensor_from(xt::xarray<std::int64_t>&& a);

}  // namespace detail

template <class E>
requires detail::TensorSource<std::remove_cvref_t<E>>::value Tensor::Tensor(E&& array) {
  using T = typename std::remove_cvref_t<E>::value_type;
  if constexpr (std::is_same_v<std::remove_cvref_t<E>, xt::xarray<T>> && !std::is_lvalue_reference_v<E>)
    *this = detail::tensor_from(std::move(array));
  else
    *this = detail::tensor_from(xt::xarray<T>(std::forward<E>(array)));
}

template <class T>
auto Tensor::array() const {
  TG_CHECK(dtype() == dtype_of<T>(), "Tensor::array: asked for {} elements of a {} tensor", dtype_of<T>(), dtype());
  return ArrayRef<T>(xt::xbuffer_adaptor<const T*, xt::no_ownership, std::allocator<T>>(data<T>(), numel()), shape());
}

template <class T>
auto Tensor::mutable_array() {
  TG_CHECK(dtype() == dtype_of<T>(), "Tensor::mutable_array: asked for {} elements of a {} tensor", dtype_of<T>(),
           dtype());
  return MutableArrayRef<T>(xt::xbuffer_adaptor<T*, xt::no_ownership>(static_cast<T*>(mutable_data_ptr()), numel()),
                            shape());
}

}  // namespace tg
