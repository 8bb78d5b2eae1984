#pragma once
// Internal to autograd: the state behind a tg::Tensor handle.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <variant>
#include <vector>
#include <xtensor/xarray.hpp>

#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/autograd/xarray.hpp"

namespace tg {

/// The elements behind one or more tensors (a flat, 1-D array: each tensor viewing it has its own
/// shape and offset), plus a version counter that in-place changes bump, through any of those
/// tensors, so that backward can tell when a value it saved was overwritten.
struct Storage {
  std::variant<xt::xarray<float>, xt::xarray<double>, xt::xarray<std::int64_t>> array;
  std::uint64_t version = 0;
};

/// State shared by all copies of one Tensor handle.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  // Element strides of a strided view (transpose, broadcast, stepped slice); empty when the
  // elements are storage's [offset, offset + product(shape)) in row-major order.
  Strides strides;
  std::size_t offset = 0;  // of the first element, in elements
  // A strided view's elements gathered row-major for readers (data<T>()), made on the first read
  // and again once the storage's version has moved on; `version` records the one gathered.
  mutable std::shared_ptr<Storage> gathered;
  mutable std::mutex gather_mutex;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // leaves only
  std::shared_ptr<Node> grad_fn;     // the op that made this tensor; null for leaves
  // Leaves only: run by backward once this leaf's gradient is final (handle, hook).
  std::vector<std::pair<std::size_t, std::function<void(const Tensor&)>>> post_accumulate_hooks;
  ~TensorImpl();
};

/// Whether the elements are row-major from the first one (no strides of a view).
inline bool is_contiguous(const TensorImpl& impl) { return impl.strides.empty(); }

/// A new handle onto the same elements: storage, shape, strides and offset (no autograd state).
inline std::shared_ptr<TensorImpl> alias(const TensorImpl& impl) {
  auto out = std::make_shared<TensorImpl>();
  out->storage = impl.storage;
  out->shape = impl.shape;
  out->strides = impl.strides;
  out->offset = impl.offset;
  return out;
}

/// A tensor's first element as a T* (the caller has checked the dtype): the storage's data
/// moved on by the tensor's offset.
template <class T>
T* first_element(const TensorImpl& impl) {
  return std::get<xt::xarray<T>>(impl.storage->array).data() + impl.offset;
}

}  // namespace tg
