#pragma once
// tg::Tensor: a cheap shared handle onto an xtensor array that records the ops run on it.
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <vector>
#include <xtensor/xarray.hpp>

#include "tapegrad/autograd/dtype.hpp"
#include "tapegrad/autograd/error.hpp"

namespace tg {

using Shape = std::vector<std::size_t>;
class Node;
class Generator;
class Tensor;
using TensorList = std::vector<Tensor>;

// The state behind a handle (autograd/detail/tensor_impl.hpp, internal).
struct Storage;
struct TensorImpl;

/// Options of Tensor::backward.
struct BackwardOptions {
  bool retain_graph = false;  ///< keep saved tensors so that backward can run again
  bool create_graph = false;  ///< record the backward pass so gradients are differentiable
};

/// A multi-dimensional array of float32 (default), float64 or int64 that records the ops run
/// on it. Copies share state, like torch.Tensor. A default-constructed Tensor is undefined.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  /// Wraps (moves or copies) an xtensor array; the dtype follows the element type.
  Tensor(xt::xarray<float> a);
  Tensor(xt::xarray<double> a);
  Tensor(xt::xarray<std::int64_t> a);
  /// Nested initializer lists, as float32: Tensor({{1, 2}, {3, 4}}).
  Tensor(std::initializer_list<double> v);
  Tensor(std::initializer_list<std::initializer_list<double>> v);
  Tensor(std::initializer_list<std::initializer_list<std::initializer_list<double>>> v);
  Tensor(std::initializer_list<std::initializer_list<std::initializer_list<std::initializer_list<double>>>> v);

  bool defined() const { return impl_ != nullptr; }
  Dtype dtype() const;
  Shape shape() const;
  std::size_t shape(int axis) const;  ///< size of one axis; negative counts from the end
  std::size_t ndim() const;
  std::size_t numel() const;

  /// The array (throws unless T matches the dtype).
  template <class T>
  const xt::xarray<T>& array() const;
  /// Mutable access for in-place changes: bumps the version so saved tensors notice.
  template <class T>
  xt::xarray<T>& mutable_array();
  template <class T>
  const T* data() const {
    return array<T>().data();
  }
  /// The first element's address, whatever the dtype (row-major, contiguous).
  const void* data_ptr() const;
  /// The same, for writing: bumps the version, as mutable_array does.
  void* mutable_data_ptr() const;

  /// The single element as a double (throws unless numel() == 1).
  double item() const;
  template <class T>
  T item() const {
    return static_cast<T>(item());
  }

  /// Converted to another dtype (differentiable between float types).
  Tensor to(Dtype d) const;
  /// A copy with its own storage (differentiable).
  Tensor clone() const;
  /// The same values, cut from the graph: shares storage, never requires grad.
  Tensor detach() const;

  // Autograd state.
  bool requires_grad() const;
  /// Marks a leaf as needing gradients; returns *this for chaining.
  Tensor& requires_grad_(bool value = true);
  bool is_leaf() const;
  /// Gradient accumulated by backward (leaves only); undefined until the first backward.
  Tensor grad() const;
  void set_grad(const Tensor& g);
  void zero_grad();  ///< drops the accumulated gradient
  /// Calls `hook(*this)` once per backward() (not tg::grad), after this leaf's grad() has taken
  /// every contribution of that backward: the moment its gradient is final (PyTorch's
  /// register_post_accumulate_grad_hook). Returns a handle for remove_post_accumulate_grad_hook.
  std::size_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook);
  void remove_post_accumulate_grad_hook(std::size_t handle);
  const std::shared_ptr<Node>& grad_fn() const;
  /// Backpropagates from this scalar (or with `seed`, d(loss)/d(this), for any shape).
  void backward(BackwardOptions options = {}) const;
  // A template only so that backward({.retain_graph = true}) stays unambiguous: GCC 12 wrongly
  // lets a designated-initializer list reach Tensor's xarray constructors.
  template <std::same_as<Tensor> Seed>
  void backward(const Seed& seed, BackwardOptions options = {}) const {
    backward_with_seed(seed, options);
  }

  /// Version of the storage: bumped by every in-place change.
  std::uint64_t version() const;
  /// Marks the storage as changed in place (after writes through mutable_array()).
  void bump_version() const;

  // In-place changes (not differentiable; refuse a tensor that requires grad while grad mode
  // is on, as PyTorch does). Each bumps the version.
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);                       ///< same shape; converts dtype
  Tensor& add_(const Tensor& other, double alpha = 1.0);  ///< this += alpha * other (broadcast)
  Tensor& mul_(double value);
  /// Replaces the values behind this handle (and so every copy of it) by src's: its dtype,
  /// shape and values, keeping this tensor's identity and autograd state (Module::to uses it on
  /// parameters). Not differentiable; bumps the version.
  Tensor& set_data(const Tensor& src);

  /// The state behind the handle (an identity for containers; its type is internal).
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  void backward_with_seed(const Tensor& seed, BackwardOptions options) const;
  const TensorImpl& checked() const;
  std::shared_ptr<TensorImpl> impl_;
};

/// Formats "[2, 3]".
std::string shape_str(const Shape& s);

// Factories.
Tensor zeros(const Shape& shape, Dtype dtype = float32);
Tensor ones(const Shape& shape, Dtype dtype = float32);
Tensor full(const Shape& shape, double value, Dtype dtype = float32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
/// start, start+step, ... below stop.
Tensor arange(double start, double stop, double step = 1.0, Dtype dtype = float32);
Tensor arange(double stop, Dtype dtype = float32);
/// A 0-d tensor holding `value`.
Tensor scalar_tensor(double value, Dtype dtype = float32);

/// Prints like torch: tensor([[1., 2.], ...], dtype=float64, grad_fn=<mul>).
std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace tg

template <>
struct fmt::formatter<tg::Tensor> : fmt::formatter<std::string_view> {
  auto format(const tg::Tensor& t, format_context& ctx) const -> format_context::iterator;
};
