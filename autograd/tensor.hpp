#pragma once
// tg::Tensor: a cheap shared handle onto an array of elements that records the ops run on it.
// Lean on purpose: xtensor stays out (tapegrad/autograd/xarray.hpp brings the xtensor interop:
// Tensor from an xtensor array, array<T>() and mutable_array<T>()).
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "tapegrad/autograd/dtype.hpp"
#include "tapegrad/autograd/error.hpp"

namespace tg {

/// The size of each axis, outermost first ({} for a 0-d tensor).
using Shape = std::vector<std::size_t>;
/// Element strides of each axis, as torch's Tensor.stride() (0 along a broadcast axis).
using Strides = std::vector<std::size_t>;
class Node;
class Generator;
class Tensor;
/// Tensors in order: an op's inputs, a backward's gradients, a module's parameters.
using TensorList = std::vector<Tensor>;

namespace detail {
/// Whether a Tensor can be made from an E: tapegrad/autograd/xarray.hpp says yes for xtensor
/// arrays and expressions of float, double or std::int64_t.
template <class E>
struct TensorSource : std::false_type {};
}  // namespace detail

/// The state behind a handle (autograd/detail/tensor_impl.hpp, internal): the elements and their version.
struct Storage;
/// A handle's own state: its Storage, requires_grad, grad, grad_fn and hooks (internal).
struct TensorImpl;

/// Options of Tensor::backward.
struct BackwardOptions {
  bool retain_graph = false;  ///< keep saved tensors so that backward can run again (implied by create_graph)
  bool create_graph = false;  ///< record the backward pass so gradients are differentiable
};

/// A multi-dimensional array of float32 (default), float64 or int64 that records the ops run
/// on it. Copies share state, like torch.Tensor. A default-constructed Tensor is undefined.
class Tensor {
 public:
  Tensor() = default;
  /// A handle onto existing state (impl_ptr() of another tensor).
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  /// From an xtensor array (moved or copied) or expression of float, double or std::int64_t
  /// elements: float32, float64 or int64. Needs tapegrad/autograd/xarray.hpp.
  template <class E>
  requires detail::TensorSource<std::remove_cvref_t<E>>::value Tensor(E&& array);
  /// Nested initializer lists, as float32: Tensor({{1, 2}, {3, 4}}).
  Tensor(std::initializer_list<double> v);
  /// Two levels: rows of equal length → [rows, columns].
  Tensor(std::initializer_list<std::initializer_list<double>> v);
  /// Three levels → a 3-D tensor.
  Tensor(std::initializer_list<std::initializer_list<std::initializer_list<double>>> v);
  /// Four levels → a 4-D tensor.
  Tensor(std::initializer_list<std::initializer_list<std::initializer_list<std::initializer_list<double>>>> v);

  /// False for a default-constructed Tensor, whose other members then throw tg::Error.
  bool defined() const { return impl_ != nullptr; }
  /// The element type: float32, float64 or int64.
  Dtype dtype() const;
  /// The size of every axis.
  Shape shape() const;
  std::size_t shape(int axis) const;  ///< size of one axis; negative counts from the end
  /// Number of axes (0 for a scalar).
  std::size_t ndim() const;
  /// Number of elements: the product of the shape (1 for a 0-d tensor).
  std::size_t numel() const;
  /// Element strides of each axis in the storage, as torch's stride(): row-major ones unless this
  /// is a strided view (permute, transpose, broadcast_to, a slice with a step or of inner axes).
  Strides strides() const;
  /// Whether the elements lie row-major in the storage (every tensor but a strided view).
  bool is_contiguous() const;
  /// This tensor if contiguous, else a row-major copy of it (differentiable), as torch's.
  Tensor contiguous() const;

  /// The elements as an xtensor expression of this shape (tg::ArrayRef<T>), without a copy
  /// (throws unless T matches the dtype). `xt::xarray<T> a = t.array<T>()` copies them out.
  /// Needs tapegrad/autograd/xarray.hpp.
  template <class T>
  auto array() const;
  /// Writable access for in-place changes (tg::MutableArrayRef<T>), seen by every tensor
  /// sharing the storage (views of it): bumps the version so saved tensors notice. Throws for a
  /// strided view, as mutable_data_ptr does. Needs tapegrad/autograd/xarray.hpp.
  template <class T>
  auto mutable_array();
  /// The elements as a T*, row-major (throws unless T matches the dtype). For a strided view
  /// they are gathered into a row-major copy on the first read, kept until the storage changes:
  /// the pointer is valid until then (the next read after a change gathers anew).
  template <class T>
  const T* data() const;
  /// The same, whatever the dtype.
  const void* data_ptr() const;
  /// The first element's address for writing (row-major; a strided view has no such address and
  /// throws: change it with copy_/fill_/add_/mul_, or write to contiguous()). Bumps the version.
  void* mutable_data_ptr() const;

  /// The single element as a double (throws unless numel() == 1).
  double item() const;
  /// item() converted to T: t.item<int>().
  template <class T>
  T item() const {
    return static_cast<T>(item());
  }

  /// Converted to another dtype (differentiable between float types).
  Tensor to(Dtype d) const;
  /// A copy with its own storage (differentiable).
  Tensor clone() const;
  /// Whether both share one storage: a view and its base, views of one base, detach()'s result.
  bool shares_storage(const Tensor& other) const;
  /// The same values, cut from the graph: shares storage, never requires grad.
  Tensor detach() const;

  // Autograd state.
  /// Whether backward computes a gradient for it (a marked leaf, or an op's result recorded from one).
  bool requires_grad() const;
  /// Marks a leaf as needing gradients; returns *this for chaining.
  Tensor& requires_grad_(bool value = true);
  /// True unless an op recorded it (no grad_fn); plain tensors are leaves too.
  bool is_leaf() const;
  /// Gradient accumulated by backward (leaves only); undefined until the first backward.
  Tensor grad() const;
  /// Replaces the accumulated gradient (same shape and dtype; undefined drops it).
  void set_grad(const Tensor& g);
  void zero_grad();  ///< drops the accumulated gradient
  /// Calls `hook(*this)` once per backward() (not tg::grad), after this leaf's grad() has taken
  /// every contribution of that backward: the moment its gradient is final (PyTorch's
  /// register_post_accumulate_grad_hook). Returns a handle for remove_post_accumulate_grad_hook.
  std::size_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook);
  /// Removes the hook registered under `handle`; an unknown handle is ignored.
  void remove_post_accumulate_grad_hook(std::size_t handle);
  /// The node that recorded this tensor; null for a leaf.
  const std::shared_ptr<Node>& grad_fn() const;
  /// Backpropagates from this scalar (or with `seed`, d(loss)/d(this), for any shape).
  void backward(BackwardOptions options = {}) const;
  // A template only so that backward({.retain_graph = true}) stays unambiguous: GCC 12 wrongly
  // lets a designated-initializer list reach Tensor's converting constructors.
  /// Backpropagates `seed`, d(loss)/d(this) of this tensor's shape, from a tensor of any shape.
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
  /// Sets every element to 0; returns *this.
  Tensor& zero_();
  /// Sets every element to `value`, converted to the dtype; returns *this.
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);                       ///< same shape; converts dtype
  Tensor& add_(const Tensor& other, double alpha = 1.0);  ///< this += alpha * other (broadcast)
  /// Multiplies every element by `value`; returns *this.
  Tensor& mul_(double value);
  /// Replaces the values behind this handle (and so every copy of it) by src's: its dtype,
  /// shape and values, keeping this tensor's identity and autograd state (Module::to uses it on
  /// parameters). Not differentiable; bumps the version.
  Tensor& set_data(const Tensor& src);

  /// The state behind the handle (an identity for containers; its type is internal).
  TensorImpl* impl() const { return impl_.get(); }
  /// The shared state itself, as Tensor(impl) takes it.
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  /// Whether both handles share one state (the same tensor, not merely equal values).
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  void backward_with_seed(const Tensor& seed, BackwardOptions options) const;
  const TensorImpl& checked() const;
  std::shared_ptr<TensorImpl> impl_;
};

/// A tensor of `shape` over contiguous x's storage, from x's element `offset` on (row-major; the
/// elements must lie within x's): how reshape, squeeze and unsqueeze share storage. Not
/// recorded: the op that makes a view records it.
Tensor as_view(const Tensor& x, const Shape& shape, std::size_t offset = 0);
/// A strided view of x's storage: element i of axis k is `strides[k]` elements further on, the
/// first one `offset` elements past x's first (torch's as_strided counts from the storage's
/// start). Every element must lie in the storage. Not recorded, as as_view.
Tensor as_strided(const Tensor& x, const Shape& shape, const Strides& strides, std::size_t offset = 0);

/// Formats "[2, 3]".
std::string shape_str(const Shape& s);

// Factories.
/// A tensor of `shape` filled with 0.
Tensor zeros(const Shape& shape, Dtype dtype = float32);
/// A tensor of `shape` filled with 1.
Tensor ones(const Shape& shape, Dtype dtype = float32);
/// A tensor of `shape` filled with `value`.
Tensor full(const Shape& shape, double value, Dtype dtype = float32);
/// Zeros of t's shape and dtype.
Tensor zeros_like(const Tensor& t);
/// Ones of t's shape and dtype.
Tensor ones_like(const Tensor& t);
/// `value` in t's shape and dtype.
Tensor full_like(const Tensor& t, double value);
/// start, start+step, ... below stop.
Tensor arange(double start, double stop, double step = 1.0, Dtype dtype = float32);
/// 0, 1, 2, ... below stop.
Tensor arange(double stop, Dtype dtype = float32);
/// A 0-d tensor holding `value`.
Tensor scalar_tensor(double value, Dtype dtype = float32);

/// Prints like torch: tensor([[1., 2.], ...], dtype=float64, grad_fn=<mul>).
std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace tg
