#include "tapegrad/autograd/tensor.hpp"

#include <fmt/ostream.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <ostream>
#include <sstream>
#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xio.hpp>

#include "tapegrad/autograd/broadcast.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/detail/tensor_impl.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/kernels/broadcast.hpp"
#include "tapegrad/kernels/strided.hpp"

namespace tg {
namespace {

// A tensor owning `array`, whose elements the storage keeps flat.
template <class T>
std::shared_ptr<TensorImpl> make_impl(xt::xarray<T> array) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape.assign(array.shape().begin(), array.shape().end());
  array.reshape({array.size()});
  impl->storage = std::make_shared<Storage>();
  impl->storage->array = std::move(array);
  return impl;
}

std::size_t product(const Shape& s) {
  std::size_t n = 1;
  for (std::size_t d : s) n *= d;
  return n;
}

// Row-major element strides of `shape`.
Strides row_major_strides(const Shape& shape) {
  Strides st(shape.size());
  std::size_t step = 1;
  for (std::size_t i = shape.size(); i-- > 0;) st[i] = step, step *= shape[i];
  return st;
}

// `strides` as a TensorImpl keeps them: empty when they lay `shape` out row-major (how a size-1
// axis steps does not matter, nor anything for fewer than two elements).
Strides normalized(const Shape& shape, const Strides& strides) {
  if (strides.empty() || product(shape) <= 1) return {};
  std::size_t step = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != step) return strides;
    step *= shape[i];
  }
  return {};
}

// The number of elements of `shape`, refusing a count that overflows (it could wrap to a small
// number or 0 and pass a bounds check).
std::size_t checked_numel(const Shape& shape, std::string_view op) {
  std::size_t n = 1, nonzero = 1;
  bool overflow = false;
  for (std::size_t d : shape) {
    n *= d;
    if (d != 0) overflow |= __builtin_mul_overflow(nonzero, d, &nonzero);
  }
  TG_CHECK(!overflow, "{}: shape {} has more elements than a size_t counts", op, shape_str(shape));
  return n;
}

std::size_t storage_size(const Storage& s) {
  return std::visit([](const auto& a) { return a.size(); }, s.array);
}

// A strided view's elements copied out row-major, in an array of `shape` (the view's, or flat).
template <class T>
xt::xarray<T> gather_rows(const TensorImpl& impl, const Shape& shape) {
  xt::xarray<T> rows = xt::xarray<T>::from_shape(shape);
  kernels::strided_gather(first_element<T>(impl), impl.shape, impl.strides, rows.data());
  return rows;
}

// A tensor of `shape` and `strides` (kept normalized) over base's storage, `offset` elements past
// base's first: what every view is.
Tensor make_view(const TensorImpl& base, const Shape& shape, const Strides& strides, std::size_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage;
  impl->shape = shape;
  impl->strides = normalized(shape, strides);
  impl->offset = base.offset + offset;
  return Tensor(impl);
}

// A strided view's elements, row-major: gathered on the first read and again after the storage
// changed (its version moved on), under the view's lock so that concurrent readers share one.
template <class T>
const T* gathered_elements(const TensorImpl& impl) {
  const std::lock_guard held(impl.gather_mutex);
  const Storage* have = impl.gathered.get();
  if (!have || have->version != impl.storage->version || !std::holds_alternative<xt::xarray<T>>(have->array)) {
    auto rows = std::make_shared<Storage>();
    rows->array = gather_rows<T>(impl, {product(impl.shape)});
    rows->version = impl.storage->version;
    impl.gathered = std::move(rows);
  }
  return std::get<xt::xarray<T>>(impl.gathered->array).data();
}

// Whether two elements of a view are one place in storage: with the axes of size > 1 ordered by
// stride, each stride must step past everything the smaller-strided axes reach.
bool overlaps_itself(const Shape& shape, const Strides& strides) {
  std::vector<std::pair<std::size_t, std::size_t>> axes;  // (stride, size)
  for (std::size_t i = 0; i < shape.size(); ++i)
    if (shape[i] > 1) axes.emplace_back(strides[i], shape[i]);
  std::sort(axes.begin(), axes.end());
  std::size_t reach = 0;  // the furthest element the smaller-strided axes reach
  for (const auto& [stride, size] : axes) {
    if (stride <= reach) return true;
    reach += stride * (size - 1);
  }
  return false;
}

// Runs change(T* elements) on impl's elements laid out row-major: in place when they are, else on
// a gathered copy written back (refused for a broadcast view, whose elements share places).
template <class T, class Change>
void change_elements(const TensorImpl& impl, std::string_view op, Change change) {
  if (is_contiguous(impl)) {
    change(first_element<T>(impl));
    return;
  }
  TG_CHECK(!overlaps_itself(impl.shape, impl.strides),
           "{}: the tensor of shape {} with strides [{}] is a view whose elements overlap (a broadcast view, or "
           "as_strided's): several of them are one place in memory. Change a contiguous() copy instead",
           op, shape_str(impl.shape), fmt::join(impl.strides, ", "));
  xt::xarray<T> rows = gather_rows<T>(impl, {product(impl.shape)});
  change(rows.data());
  kernels::strided_scatter(rows.data(), impl.shape, impl.strides, first_element<T>(impl));
}

template <class List>
xt::xarray<float> from_list(const List& list) {
  xt::xarray<double> a(list);
  return xt::cast<float>(a);
}

}  // namespace

TensorImpl::~TensorImpl() = default;

Tensor detail::tensor_from(xt::xarray<float>&& a) { return Tensor(make_impl(std::move(a))); }
Tensor detail::tensor_from(xt::xarray<double>&& a) { return Tensor(make_impl(std::move(a))); }
Tensor detail::tensor_from(xt::xarray<std::int64_t>&& a) { return Tensor(make_impl(std::move(a))); }
Tensor::Tensor(std::initializer_list<double> v) : impl_(make_impl(from_list(v))) {}
Tensor::Tensor(std::initializer_list<std::initializer_list<double>> v) : impl_(make_impl(from_list(v))) {}
Tensor::Tensor(std::initializer_list<std::initializer_list<std::initializer_list<double>>> v)
    : impl_(make_impl(from_list(v))) {}
Tensor::Tensor(std::initializer_list<std::initializer_list<std::initializer_list<std::initializer_list<double>>>> v)
    : impl_(make_impl(from_list(v))) {}

const TensorImpl& Tensor::checked() const {
  TG_CHECK(impl_, "Tensor: use of an undefined tensor");
  return *impl_;
}

Dtype Tensor::dtype() const { return static_cast<Dtype>(checked().storage->array.index()); }

Shape Tensor::shape() const { return checked().shape; }

std::size_t Tensor::shape(int axis) const {
  const std::size_t n = ndim();
  const int a = axis < 0 ? axis + static_cast<int>(n) : axis;
  TG_CHECK(a >= 0 && a < static_cast<int>(n), "Tensor::shape: axis {} out of range for a tensor of shape {}", axis,
           shape_str(shape()));
  return shape()[static_cast<std::size_t>(a)];
}

std::size_t Tensor::ndim() const { return checked().shape.size(); }

std::size_t Tensor::numel() const { return product(checked().shape); }

Strides Tensor::strides() const {
  const TensorImpl& impl = checked();
  return tg::is_contiguous(impl) ? row_major_strides(impl.shape) : impl.strides;
}

bool Tensor::is_contiguous() const { return tg::is_contiguous(checked()); }

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

template <class T>
const T* Tensor::data() const {
  const TensorImpl& impl = checked();
  TG_CHECK(std::holds_alternative<xt::xarray<T>>(impl.storage->array),
           "Tensor::data: asked for {} elements of a {} tensor", dtype_of<T>(), dtype());
  return tg::is_contiguous(impl) ? first_element<T>(impl) : gathered_elements<T>(impl);
}

template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;
template const std::int64_t* Tensor::data<std::int64_t>() const;

double Tensor::item() const {
  TG_CHECK(numel() == 1, "Tensor::item: needs a tensor with one element, got shape {}", shape_str(shape()));
  return dispatch_all(dtype(), [&](auto t) { return static_cast<double>(*data<decltype(t)>()); });
}

bool Tensor::shares_storage(const Tensor& other) const { return checked().storage == other.checked().storage; }

Tensor as_view(const Tensor& x, const Shape& shape, std::size_t offset) {
  TG_CHECK(x.defined(), "as_view: the tensor is undefined");
  const TensorImpl& base = *x.impl();
  TG_CHECK(is_contiguous(base), "as_view: the tensor of shape {} is a strided view; call contiguous() first",
           shape_str(base.shape));
  const std::size_t count = checked_numel(shape, "as_view");
  TG_CHECK(count == 0 || (offset <= product(base.shape) && count <= product(base.shape) - offset),
           "as_view: a view of shape {} from element {} does not fit in a tensor of shape {}", shape_str(shape), offset,
           shape_str(base.shape));
  return make_view(base, shape, {}, offset);
}

Tensor as_strided(const Tensor& x, const Shape& shape, const Strides& strides, std::size_t offset) {
  TG_CHECK(x.defined(), "as_strided: the tensor is undefined");
  const TensorImpl& base = *x.impl();
  TG_CHECK(shape.size() == strides.size(), "as_strided: {} strides given for shape {}", strides.size(),
           shape_str(shape));
  // The furthest element must lie in the storage (nothing is read for an empty view).
  const std::size_t count = checked_numel(shape, "as_strided");
  std::size_t last = 0;
  bool overflow = __builtin_add_overflow(base.offset, offset, &last);
  for (std::size_t i = 0; i < shape.size() && count > 0; ++i) {
    std::size_t step = 0;
    overflow |= __builtin_mul_overflow(shape[i] - 1, strides[i], &step);
    overflow |= __builtin_add_overflow(last, step, &last);
  }
  TG_CHECK(count == 0 || (!overflow && last < storage_size(*base.storage)),
           "as_strided: a view of shape {} with strides [{}] from element {} does not fit in a storage of {} "
           "elements",
           shape_str(shape), fmt::join(strides, ", "), base.offset + offset, storage_size(*base.storage));
  return make_view(base, shape, strides, offset);
}

Tensor Tensor::to(Dtype d) const {
  if (d == dtype()) return *this;
  Tensor out = dispatch_all(d, [&](auto t) {
    using T = decltype(t);
    return dispatch_all(dtype(),
                        [&](auto from) { return Tensor(xt::xarray<T>(xt::cast<T>(array<decltype(from)>()))); });
  });
  if (!is_floating(d) || !is_floating(dtype())) return out;
  const Dtype from = dtype();
  // d to(x) = g converted back
  return record({.name = "to", .inputs = {*this}}, out,
                [from](const BackwardContext&, const Tensor& g) -> TensorList { return {g.to(from)}; });
}

Tensor Tensor::clone() const {
  // A strided view is gathered straight into the copy (data<T>() would gather into its cache first).
  Tensor out = dispatch_all(dtype(), [&](auto t) {
    using T = decltype(t);
    const TensorImpl& impl = checked();
    return Tensor(tg::is_contiguous(impl) ? xt::xarray<T>(array<T>()) : gather_rows<T>(impl, impl.shape));
  });
  // d clone(x) = g
  return record({.name = "clone", .inputs = {*this}}, out,
                [](const BackwardContext&, const Tensor& g) -> TensorList { return {g}; });
}

Tensor Tensor::detach() const { return Tensor(alias(checked())); }

bool Tensor::requires_grad() const { return checked().requires_grad; }

Tensor& Tensor::requires_grad_(bool value) {
  TG_CHECK(is_leaf() || value, "requires_grad_: cannot turn off gradients of a non-leaf tensor; use detach()");
  TG_CHECK(!value || is_floating(dtype()),
           "requires_grad_: only float32 and float64 tensors can require gradients, got {}", dtype());
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return checked().grad_fn == nullptr; }

Tensor Tensor::grad() const {
  const auto& g = checked().grad;
  return g ? Tensor(g) : Tensor();
}

std::size_t Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) {
  checked();
  TG_CHECK(is_leaf() && requires_grad(),
           "register_post_accumulate_grad_hook: only a leaf that requires grad accumulates a gradient");
  TG_CHECK(hook != nullptr, "register_post_accumulate_grad_hook: the hook is empty");
  static std::atomic<std::size_t> next_handle{1};
  const std::size_t handle = next_handle++;
  impl_->post_accumulate_hooks.emplace_back(handle, std::move(hook));
  return handle;
}

void Tensor::remove_post_accumulate_grad_hook(std::size_t handle) {
  checked();
  std::erase_if(impl_->post_accumulate_hooks, [handle](const auto& h) { return h.first == handle; });
}

void Tensor::set_grad(const Tensor& g) {
  checked();
  if (g.defined()) {
    TG_CHECK(g.shape() == shape() && g.dtype() == dtype(),
             "set_grad: gradient of shape {} ({}) does not fit a tensor of shape {} ({})", shape_str(g.shape()),
             g.dtype(), shape_str(shape()), dtype());
  }
  // Row-major, as every leaf gradient (optimizers and clip_grad_* change it in place).
  impl_->grad = g.defined() ? g.contiguous().impl_ptr() : nullptr;
}

void Tensor::zero_grad() { checked(), impl_->grad.reset(); }

const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked().grad_fn; }

std::uint64_t Tensor::version() const { return checked().storage->version; }
void Tensor::bump_version() const { ++checked().storage->version; }

namespace {
void check_inplace(const Tensor& t, std::string_view op) {
  TG_CHECK(!(t.requires_grad() && is_grad_enabled()),
           "{}: in-place change of a tensor that requires grad is not differentiable; use the out-of-place "
           "op, or wrap the update in tg::NoGradGuard (as optimizers do)",
           op);
}
}  // namespace

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::fill_(double value) {
  check_inplace(*this, "fill_");
  dispatch_all(dtype(), [&](auto t) {
    using T = decltype(t);
    change_elements<T>(checked(), "fill_", [&](T* p) { std::fill_n(p, numel(), static_cast<T>(value)); });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  TG_CHECK(src.shape() == shape(), "copy_: source of shape {} does not match destination of shape {}",
           shape_str(src.shape()), shape_str(shape()));
  Tensor converted = src.detach().to(dtype());
  dispatch_all(dtype(), [&](auto t) {
    using T = decltype(t);
    const T* from = converted.data<T>();
    change_elements<T>(checked(), "copy_", [&](T* p) { std::copy_n(from, numel(), p); });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  const Shape s = shape(), from = other.shape();
  TG_CHECK(broadcast_shapes(s, from, "add_") == s, "add_: other of shape {} does not broadcast to {}", shape_str(from),
           shape_str(s));
  // alpha * other in other's dtype, then in this one's (an int64 tensor plus 0.5 * a float one
  // adds the rounded products, not the products of rounded values).
  Tensor scaled = other.detach();
  if (alpha != 1.0) {
    scaled = dispatch_all(scaled.dtype(), [&](auto t) {
      using T = decltype(t);
      xt::xarray<T> r = scaled.array<T>();
      for (T& v : r) v = static_cast<T>(v * alpha);
      return Tensor(std::move(r));
    });
  }
  const Tensor src = scaled.to(dtype());
  dispatch_all(dtype(), [&](auto t) {
    using T = decltype(t);
    const T* other_elements = src.data<T>();
    if (numel() > 0)
      change_elements<T>(checked(), "add_", [&](T* dst) {
        kernels::broadcast_map(kernels::broadcast_plan(s, from, s), static_cast<const T*>(dst), other_elements, dst,
                               [](T u, T v) { return static_cast<T>(u + v); });
      });
  });
  bump_version();
  return *this;
}

Tensor& Tensor::set_data(const Tensor& src) {
  TG_CHECK(src.defined(), "set_data: the source tensor is undefined");
  // A storage of its own for the new values: views of the old ones keep them (as PyTorch's .data =).
  const TensorImpl& from = src.checked();
  auto storage = std::make_shared<Storage>();
  dispatch_all(src.dtype(), [&](auto t) {
    using T = decltype(t);
    storage->array =
        xt::xarray<T>(xt::adapt(src.data<T>(), product(from.shape), xt::no_ownership(), Shape{product(from.shape)}));
  });
  storage->version = checked().storage->version + 1;
  impl_->storage = std::move(storage);
  impl_->shape = from.shape;
  impl_->strides.clear();
  impl_->offset = 0;
  return *this;
}

const void* Tensor::data_ptr() const {
  return dispatch_all(dtype(), [&](auto t) -> const void* { return data<decltype(t)>(); });
}

void* Tensor::mutable_data_ptr() const {
  TG_CHECK(tg::is_contiguous(checked()),
           "Tensor::mutable_data_ptr/mutable_array: the tensor of shape {} is a strided view (of a permute, transpose, "
           "broadcast_to or slice), which has no row-major elements to write to; change it with copy_, fill_, add_ "
           "or mul_, or write to contiguous()",
           shape_str(shape()));
  bump_version();
  return dispatch_all(dtype(), [&](auto t) -> void* { return first_element<decltype(t)>(checked()); });
}

Tensor& Tensor::mul_(double value) {
  check_inplace(*this, "mul_");
  dispatch_all(dtype(), [&](auto t) {
    using T = decltype(t);
    change_elements<T>(checked(), "mul_", [&](T* p) {
      for (std::size_t i = 0, n = numel(); i < n; ++i) p[i] = static_cast<T>(p[i] * value);
    });
  });
  bump_version();
  return *this;
}

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

Tensor full(const Shape& shape, double value, Dtype dtype) {
  // The element count, counting only the dims that are not 0 (xtensor's strides must not
  // overflow even for an empty shape), and the bytes: a clear error instead of std::bad_alloc.
  std::size_t nonzero = 1;
  bool overflow = false;
  for (std::size_t d : shape)
    if (d != 0) overflow |= __builtin_mul_overflow(nonzero, d, &nonzero);
  overflow |= nonzero > (std::size_t{1} << 50) / dtype_size(dtype);
  TG_CHECK(!overflow, "full/zeros/ones: shape {} of {} is too large (more than 2^50 bytes)", shape_str(shape), dtype);
  try {
    return dispatch_all(dtype, [&](auto t) {
      using T = decltype(t);
      xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
      a.fill(static_cast<T>(value));
      return Tensor(std::move(a));
    });
  } catch (const std::bad_alloc&) {
    detail::fail("full/zeros/ones: cannot allocate shape {} of {}: {} bytes are more than this process can get",
                 shape_str(shape), dtype, nonzero * dtype_size(dtype));
  }
}
Tensor zeros(const Shape& shape, Dtype dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, Dtype dtype) { return full(shape, 1.0, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype()); }
Tensor scalar_tensor(double value, Dtype dtype) { return full({}, value, dtype); }

Tensor arange(double start, double stop, double step, Dtype dtype) {
  TG_CHECK(step != 0.0, "arange: step must not be zero");
  const double count = std::ceil((stop - start) / step);
  const auto n = count > 0 ? static_cast<std::size_t>(count) : 0;
  return dispatch_all(dtype, [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> a = xt::xarray<T>::from_shape({n});
    for (std::size_t i = 0; i < n; ++i) a(i) = static_cast<T>(start + static_cast<double>(i) * step);
    return Tensor(std::move(a));
  });
}
Tensor arange(double stop, Dtype dtype) { return arange(0.0, stop, 1.0, dtype); }

}  // namespace tg

auto fmt::formatter<tg::Tensor>::format(const tg::Tensor& t, format_context& ctx) const -> format_context::iterator {
  std::ostringstream os;
  os << t;
  return fmt::formatter<std::string_view>::format(os.str(), ctx);
}
