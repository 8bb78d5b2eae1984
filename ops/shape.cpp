// Shape ops: forward kernel, then the recorded backward right below it.
#include "tapegrad/ops/shape.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmanipulation.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tg {
namespace {
std::vector<std::int64_t> as_signed(const Shape& s) { return {s.begin(), s.end()}; }

std::size_t product(const Shape& s) { return std::accumulate(s.begin(), s.end(), std::size_t{1}, std::multiplies<>()); }

// Strides that show a strided view's elements (shape `from`, strides `st`, two or more elements)
// in shape `to` without moving them, if any exist. `from`'s axes fall into chunks, each a run of
// axes that step over one another contiguously; every chunk must be split exactly by a run of
// `to`'s axes (torch's rule for view).
std::optional<Strides> view_strides(const Shape& from, const Strides& st, const Shape& to) {
  Strides out(to.size());
  std::ptrdiff_t view_axis = static_cast<std::ptrdiff_t>(to.size()) - 1;
  std::size_t chunk_stride = st.back(), chunk_numel = 1, view_numel = 1;
  for (std::size_t d = from.size(); d-- > 0;) {
    chunk_numel *= from[d];
    const bool chunk_ends = d == 0 || (from[d - 1] != 1 && st[d - 1] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_axis >= 0 && (view_numel < chunk_numel || to[static_cast<std::size_t>(view_axis)] == 1)) {
      out[static_cast<std::size_t>(view_axis)] = view_numel * chunk_stride;
      view_numel *= to[static_cast<std::size_t>(view_axis)];
      --view_axis;
    }
    if (view_numel != chunk_numel) return std::nullopt;
    if (d > 0) chunk_stride = st[d - 1], chunk_numel = 1, view_numel = 1;
  }
  if (view_axis != -1) return std::nullopt;
  return out;
}
}  // namespace

// d reshape(x) = reshape(g, x.shape)
Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape) {
  const Shape from = x.shape();
  Shape to(shape.size());
  std::size_t known = 1;
  int inferred = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      TG_CHECK(inferred < 0, "reshape: more than one -1 in [{}]", fmt::join(shape, ", "));
      inferred = static_cast<int>(i);
    } else {
      TG_CHECK(shape[i] >= 0, "reshape: negative size in [{}]", fmt::join(shape, ", "));
      to[i] = static_cast<std::size_t>(shape[i]);
      known *= to[i];
    }
  }
  const std::size_t n = x.numel();
  if (inferred >= 0) {
    TG_CHECK(known > 0 && n % known == 0, "reshape: cannot reshape {} ({} elements) to [{}]", shape_str(from), n,
             fmt::join(shape, ", "));
    to[static_cast<std::size_t>(inferred)] = n / known;
  }
  TG_CHECK(product(to) == n, "reshape: cannot reshape {} ({} elements) to [{}] ({} elements)", shape_str(from), n,
           fmt::join(shape, ", "), product(to));
  if (to == from) return x;
  // A view when the elements can be walked in the new shape without moving (always, for a
  // contiguous x); otherwise a copy, as torch's reshape of such a view.
  Tensor out;
  if (x.is_contiguous())
    out = as_view(x, to);
  else if (const auto strides = view_strides(from, x.strides(), to))
    out = as_strided(x, to, *strides);
  else
    out = as_view(x.detach().contiguous(), to);
  return record({.name = "reshape", .inputs = {x}}, out, [from](const BackwardContext&, const Tensor& g) -> TensorList {
    return {reshape(g, as_signed(from))};
  });
}

Tensor flatten(const Tensor& x, int start_axis, int end_axis) {
  const Shape s = x.shape();
  if (s.empty()) return reshape(x, {1});
  const std::size_t a = normalize_axis(start_axis, s.size(), "flatten");
  const std::size_t b = normalize_axis(end_axis, s.size(), "flatten");
  TG_CHECK(a <= b, "flatten: start axis {} comes after end axis {}", start_axis, end_axis);
  std::vector<std::int64_t> to;
  for (std::size_t i = 0; i < a; ++i) to.push_back(static_cast<std::int64_t>(s[i]));
  std::int64_t merged = 1;
  for (std::size_t i = a; i <= b; ++i) merged *= static_cast<std::int64_t>(s[i]);
  to.push_back(merged);
  for (std::size_t i = b + 1; i < s.size(); ++i) to.push_back(static_cast<std::int64_t>(s[i]));
  return reshape(x, to);
}

// d permute(x, p) = permute(g, inverse(p))
Tensor permute(const Tensor& x, const std::vector<int>& perm) {
  const std::size_t n = x.ndim();
  TG_CHECK(perm.size() == n, "permute: {} axes given for a tensor of shape {}", perm.size(), shape_str(x.shape()));
  std::vector<std::size_t> p(n);
  std::vector<bool> seen(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    p[i] = normalize_axis(perm[i], n, "permute");
    TG_CHECK(!seen[p[i]], "permute: axis {} repeated in [{}]", perm[i], fmt::join(perm, ", "));
    seen[p[i]] = true;
  }
  // A view: x's axes in the new order, each with its stride.
  const Shape in_shape = x.shape();
  const Strides in_strides = x.strides();
  Shape out_shape(n);
  Strides out_strides(n);
  for (std::size_t i = 0; i < n; ++i) out_shape[i] = in_shape[p[i]], out_strides[i] = in_strides[p[i]];
  const Tensor out = as_strided(x, out_shape, out_strides);
  std::vector<int> inverse(n);
  for (std::size_t i = 0; i < n; ++i) inverse[p[i]] = static_cast<int>(i);
  return record({.name = "permute", .inputs = {x}}, out,
                [inverse](const BackwardContext&, const Tensor& g) -> TensorList { return {permute(g, inverse)}; });
}

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  // As in PyTorch, a 0-d tensor has one axis to name (0 or -1) and a 1-D tensor may swap its axis
  // with itself; the default axes (-2, -1) need two.
  const std::size_t n = x.ndim();
  const std::size_t a0 = normalize_axis(axis0, std::max<std::size_t>(n, 1), "transpose");
  const std::size_t a1 = normalize_axis(axis1, std::max<std::size_t>(n, 1), "transpose");
  if (a0 == a1) return x;
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[a0], perm[a1]);
  return permute(x, perm);
}

Tensor squeeze(const Tensor& x) {
  std::vector<std::int64_t> to;
  for (std::size_t d : x.shape())
    if (d != 1) to.push_back(static_cast<std::int64_t>(d));
  return reshape(x, to);
}

Tensor squeeze(const Tensor& x, int axis) {
  const Shape s = x.shape();
  const std::size_t a = normalize_axis(axis, s.size(), "squeeze");
  TG_CHECK(s[a] == 1, "squeeze: axis {} of shape {} has size {}, not 1", axis, shape_str(s), s[a]);
  std::vector<std::int64_t> to = as_signed(s);
  to.erase(to.begin() + static_cast<std::ptrdiff_t>(a));
  return reshape(x, to);
}

Tensor unsqueeze(const Tensor& x, int axis) {
  const Shape s = x.shape();
  const std::size_t a = normalize_axis(axis, s.size() + 1, "unsqueeze");
  std::vector<std::int64_t> to = as_signed(s);
  to.insert(to.begin() + static_cast<std::ptrdiff_t>(a), 1);
  return reshape(x, to);
}

namespace {
// A tensor seen as [outer, n, inner] around `axis`: the layout every axis op below walks.
struct AxisBlocks {
  std::size_t outer = 1, n = 1, inner = 1;
};

AxisBlocks blocks(const Shape& s, std::size_t axis) {
  AxisBlocks b;
  for (std::size_t i = 0; i < axis; ++i) b.outer *= s[i];
  b.n = s[axis];
  for (std::size_t i = axis + 1; i < s.size(); ++i) b.inner *= s[i];
  return b;
}

// Clamps a Python-style bound (negative counts from the end) into [0, n].
std::size_t python_bound(std::int64_t v, std::size_t n) {
  const auto sn = static_cast<std::int64_t>(n);
  if (v < 0) v += sn;
  return static_cast<std::size_t>(std::clamp<std::int64_t>(v, 0, sn));
}

// The int64 index values, each checked to lie in [0, size).
ArrayRef<std::int64_t> checked_index(const Tensor& index, std::size_t size, std::size_t axis, const Shape& x_shape,
                                     std::string_view op) {
  TG_CHECK(index.dtype() == int64, "{}: index must be int64, got {} (shape {})", op, index.dtype(),
           shape_str(index.shape()));
  ArrayRef<std::int64_t> idx = index.array<std::int64_t>();
  for (std::int64_t v : idx)
    TG_CHECK(v >= 0 && static_cast<std::size_t>(v) < size,
             "{}: index {} is out of range for axis {} of size {} (shape {})", op, v, axis, size, shape_str(x_shape));
  return idx;
}

// Calls f(p, base) for every element p (row-major) of an index of shape `is` used to address a
// tensor of shape `xs` along `axis`: base is the offset in that tensor of the element's
// position with the `axis` coordinate set to 0.
template <class F>
void for_each_gathered(const Shape& is, const Shape& xs, std::size_t axis, F f) {
  const std::size_t rank = is.size();
  const std::size_t total = product(is);
  if (total == 0) return;
  Shape stride(rank, 1);
  for (std::size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * xs[d];
  Shape coord(rank, 0);
  std::size_t base = 0;
  for (std::size_t p = 0; p < total; ++p) {
    f(p, base);
    for (std::size_t d = rank; d-- > 0;) {
      const std::size_t step = d == axis ? 0 : stride[d];
      if (++coord[d] < is[d]) {
        base += step;
        break;
      }
      base -= (is[d] - 1) * step;
      coord[d] = 0;
    }
  }
}

// Zeros of `shape` with g written at the positions slice(axis, start, step) picked.
Tensor slice_backward(const Tensor& g, const Shape& shape, std::size_t axis, std::size_t start, std::size_t step) {
  Tensor out = dispatch_all(g.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::zeros<T>(shape);
    const AxisBlocks in = blocks(g.shape(), axis);
    const AxisBlocks to = blocks(shape, axis);
    const T* src = g.data<T>();
    for (std::size_t o = 0; o < in.outer; ++o)
      for (std::size_t j = 0; j < in.n; ++j)
        std::copy_n(src + (o * in.n + j) * in.inner, in.inner, r.data() + (o * to.n + start + j * step) * to.inner);
    return Tensor(std::move(r));
  });
  const std::size_t count = g.shape()[axis];
  // d slice_backward(g) = slice(gg)
  return record({.name = "slice_backward", .inputs = {g}}, out,
                [axis, start, step, count](const BackwardContext&, const Tensor& gg) -> TensorList {
                  const auto begin = static_cast<std::int64_t>(start);
                  const auto end = begin + static_cast<std::int64_t>(count * step);
                  return {slice(gg, static_cast<int>(axis), begin, end, static_cast<std::int64_t>(step))};
                });
}

// Zeros of `shape` with the rows of g added at `index` along `axis` (index_select's adjoint).
Tensor index_add(const Tensor& g, const Shape& shape, std::size_t axis, const Tensor& index) {
  Tensor out = dispatch_all(g.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::zeros<T>(shape);
    const AxisBlocks in = blocks(g.shape(), axis);
    const AxisBlocks to = blocks(shape, axis);
    const std::int64_t* idx = index.data<std::int64_t>();
    const T* src = g.data<T>();
    for (std::size_t o = 0; o < in.outer; ++o)
      for (std::size_t j = 0; j < in.n; ++j) {
        const T* from = src + (o * in.n + j) * in.inner;
        T* dst = r.data() + (o * to.n + static_cast<std::size_t>(idx[j])) * to.inner;
        for (std::size_t i = 0; i < in.inner; ++i) dst[i] += from[i];
      }
    return Tensor(std::move(r));
  });
  // d index_add(g) = index_select(gg)
  return record({.name = "index_add", .inputs = {g}, .saved = {index}}, out,
                [axis](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {index_select(gg, static_cast<int>(axis), ctx.saved(0))};
                });
}

// Zeros of `shape` with g[p] added at x position index[p] along `axis` (gather's adjoint).
Tensor scatter_add(const Tensor& g, const Shape& shape, std::size_t axis, const Tensor& index) {
  Tensor out = dispatch_all(g.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::zeros<T>(shape);
    const std::size_t axis_stride = blocks(shape, axis).inner;
    const std::int64_t* idx = index.data<std::int64_t>();
    const T* src = g.data<T>();
    T* dst = r.data();
    for_each_gathered(index.shape(), shape, axis, [&](std::size_t p, std::size_t base) {
      dst[base + static_cast<std::size_t>(idx[p]) * axis_stride] += src[p];
    });
    return Tensor(std::move(r));
  });
  // d scatter_add(g) = gather(gg)
  return record({.name = "scatter_add", .inputs = {g}, .saved = {index}}, out,
                [axis](const BackwardContext& ctx, const Tensor& gg) -> TensorList {
                  return {gather(gg, static_cast<int>(axis), ctx.saved(0))};
                });
}
}  // namespace

// d concat(x_0, x_1, ...) = the slices of g along axis
Tensor concat(const TensorList& xs, int axis) {
  TG_CHECK(!xs.empty(), "concat: needs at least one tensor");
  const Shape first = xs[0].shape();
  TG_CHECK(!first.empty(), "concat: cannot concatenate 0-d tensors; use stack");
  const std::size_t a = normalize_axis(axis, first.size(), "concat");
  Shape out_shape = first;
  out_shape[a] = 0;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Shape s = xs[i].shape();
    TG_CHECK(xs[i].dtype() == xs[0].dtype(), "concat: tensor {} is {} but tensor 0 is {}; convert one with to()", i,
             xs[i].dtype(), xs[0].dtype());
    bool fits = s.size() == first.size();
    for (std::size_t d = 0; fits && d < s.size(); ++d) fits = d == a || s[d] == first[d];
    TG_CHECK(fits, "concat: tensor {} has shape {}, which does not match tensor 0's shape {} outside axis {}", i,
             shape_str(s), shape_str(first), axis);
    sizes.push_back(s[a]);
    out_shape[a] += s[a];
  }
  Tensor out = dispatch_all(xs[0].dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(out_shape);
    const AxisBlocks ob = blocks(out_shape, a);
    T* dst = r.data();
    for (std::size_t o = 0; o < ob.outer; ++o)
      for (std::size_t i = 0; i < xs.size(); ++i) {
        const std::size_t chunk = sizes[i] * ob.inner;
        dst = std::copy_n(xs[i].data<T>() + o * chunk, chunk, dst);
      }
    return Tensor(std::move(r));
  });
  return record({.name = "concat", .inputs = xs}, out,
                [a, sizes](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  TensorList grads(sizes.size());
                  std::int64_t offset = 0;
                  for (std::size_t i = 0; i < sizes.size(); ++i) {
                    const auto end = offset + static_cast<std::int64_t>(sizes[i]);
                    if (ctx.needs_grad(i)) grads[i] = slice(g, static_cast<int>(a), offset, end);
                    offset = end;
                  }
                  return grads;
                });
}

// stack = concat of the inputs, each given a size-1 axis
Tensor stack(const TensorList& xs, int axis) {
  TG_CHECK(!xs.empty(), "stack: needs at least one tensor");
  const Shape first = xs[0].shape();
  const std::size_t a = normalize_axis(axis, first.size() + 1, "stack");
  TensorList expanded;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    TG_CHECK(xs[i].shape() == first, "stack: tensor {} has shape {} but tensor 0 has shape {}; all must match", i,
             shape_str(xs[i].shape()), shape_str(first));
    expanded.push_back(unsqueeze(xs[i], static_cast<int>(a)));
  }
  return concat(expanded, static_cast<int>(a));
}

// d slice(x) = g written into zeros of x's shape at the sliced positions
Tensor slice(const Tensor& x, int axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
  const Shape shape = x.shape();
  const std::size_t a = normalize_axis(axis, shape.size(), "slice");
  TG_CHECK(step > 0, "slice: step must be positive, got {} (shape {}, axis {})", step, shape_str(shape), axis);
  const std::size_t begin = python_bound(start, shape[a]);
  const std::size_t end = python_bound(stop, shape[a]);
  const auto stride = static_cast<std::size_t>(step);
  const std::size_t count = end > begin ? (end - begin + stride - 1) / stride : 0;
  Shape out_shape = shape;
  out_shape[a] = count;
  // A view: x's strides, `step` times as long along the axis, from the first element kept.
  Strides strides = x.strides();
  const std::size_t first = count > 0 ? begin * strides[a] : 0;
  strides[a] *= stride;
  const Tensor out = as_strided(x, out_shape, strides, first);
  return record({.name = "slice", .inputs = {x}}, out,
                [shape, a, begin, stride](const BackwardContext&, const Tensor& g) -> TensorList {
                  return {slice_backward(g, shape, a, begin, stride)};
                });
}

// d index_select(x) = index_add(g): rows of g added back at their indices
Tensor index_select(const Tensor& x, int axis, const Tensor& index) {
  const Shape shape = x.shape();
  const std::size_t a = normalize_axis(axis, shape.size(), "index_select");
  TG_CHECK(index.ndim() == 1, "index_select: index must be 1-D, got shape {}", shape_str(index.shape()));
  const ArrayRef<std::int64_t> idx = checked_index(index, shape[a], a, shape, "index_select");
  Shape out_shape = shape;
  out_shape[a] = idx.size();
  Tensor out = dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(out_shape);
    const AxisBlocks b = blocks(shape, a);
    const T* src = x.data<T>();
    T* dst = r.data();
    for (std::size_t o = 0; o < b.outer; ++o)
      for (std::size_t j = 0; j < idx.size(); ++j)
        dst = std::copy_n(src + (o * b.n + static_cast<std::size_t>(idx(j))) * b.inner, b.inner, dst);
    return Tensor(std::move(r));
  });
  return record({.name = "index_select", .inputs = {x}, .saved = {index}}, out,
                [shape, a](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  return {index_add(g, shape, a, ctx.saved(0))};
                });
}

// d gather(x) = scatter_add(g): each element of g added back where it was taken from
Tensor gather(const Tensor& x, int axis, const Tensor& index) {
  const Shape shape = x.shape();
  const std::size_t a = normalize_axis(axis, shape.size(), "gather");
  const Shape is = index.shape();
  bool fits = is.size() == shape.size();
  for (std::size_t d = 0; fits && d < is.size(); ++d) fits = d == a || is[d] <= shape[d];
  TG_CHECK(fits, "gather: index of shape {} does not fit x of shape {} (same rank, sizes <= x's outside axis {})",
           shape_str(is), shape_str(shape), axis);
  const ArrayRef<std::int64_t> idx = checked_index(index, shape[a], a, shape, "gather");
  Tensor out = dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(is);
    const std::size_t axis_stride = blocks(shape, a).inner;
    const T* src = x.data<T>();
    T* dst = r.data();
    for_each_gathered(is, shape, a, [&](std::size_t p, std::size_t base) {
      dst[p] = src[base + static_cast<std::size_t>(idx.data()[p]) * axis_stride];
    });
    return Tensor(std::move(r));
  });
  return record({.name = "gather", .inputs = {x}, .saved = {index}}, out,
                [shape, a](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  return {scatter_add(g, shape, a, ctx.saved(0))};
                });
}

}  // namespace tg
