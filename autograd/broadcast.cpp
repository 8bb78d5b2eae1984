// broadcast_to and sum_to: each a kernel (kernels/broadcast.hpp) and its backward, the other.
#include "tapegrad/autograd/broadcast.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/kernels/broadcast.hpp"

namespace tg {

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    TG_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} do not broadcast (axis {}: {} vs {})", op,
             shape_str(a), shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// d broadcast_to(x) = sum_to(g, x.shape)
Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  const Shape from = x.shape();
  if (from == shape) return x;
  TG_CHECK(broadcast_shapes(from, shape, "broadcast_to") == shape, "broadcast_to: shape {} cannot be broadcast to {}",
           shape_str(from), shape_str(shape));
  // A view: stride 0 along the new leading axes and the axes of size 1 that grow.
  const Strides from_strides = x.strides();
  const std::size_t lead = shape.size() - from.size();
  Strides strides(shape.size(), 0);
  for (std::size_t i = 0; i < from.size(); ++i)
    if (from[i] == shape[lead + i]) strides[lead + i] = from_strides[i];
  const Tensor out = as_strided(x, shape, strides);
  return record({.name = "broadcast_to", .inputs = {x}}, out,
                [from](const BackwardContext&, const Tensor& g) -> TensorList { return {sum_to(g, from)}; });
}

// d sum_to(x) = broadcast_to(g, x.shape)
Tensor sum_to(const Tensor& x, const Shape& shape) {
  const Shape from = x.shape();
  if (from == shape) return x;
  TG_CHECK(shape.size() <= from.size(), "sum_to: cannot sum shape {} to the larger rank of {}", shape_str(from),
           shape_str(shape));
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::size_t big = from[from.size() - shape.size() + i];
    TG_CHECK(shape[i] == big || shape[i] == 1, "sum_to: shape {} does not broadcast to {}", shape_str(shape),
             shape_str(from));
  }
  Tensor out = dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(shape);
    kernels::sum_to(x.data<T>(), from, shape, r.data());
    return Tensor(std::move(r));
  });
  return record({.name = "sum_to", .inputs = {x}}, out,
                [from](const BackwardContext&, const Tensor& g) -> TensorList { return {broadcast_to(g, from)}; });
}

}  // namespace tg
