// sort and topk: a kernel finds the indices, and the values are gather(x, indices), whose
// backward scatters g back to where each value came from (and is itself differentiable).
#include "tapegrad/ops/sort.hpp"

#include <algorithm>
#include <numeric>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/detail/map.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

// The first k positions of each lane of x along `axis` in stable sorted order (descending or
// ascending, NaN the largest), int64 of x's shape with k along the axis.
Tensor sorted_indices(const Tensor& x, std::size_t axis, bool descending, std::size_t k) {
  const Shape s = x.shape();
  std::size_t outer = 1, n = s[axis], inner = 1;
  for (std::size_t d = 0; d < s.size(); ++d)
    if (d != axis) (d < axis ? outer : inner) *= s[d];
  Shape out_shape = s;
  out_shape[axis] = k;
  xt::xarray<std::int64_t> out = xt::xarray<std::int64_t>::from_shape(out_shape);
  dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* in = x.data<T>();
    std::vector<std::size_t> order(n);
    for (std::size_t b = 0; b < outer; ++b)
      for (std::size_t i = 0; i < inner; ++i) {
        const T* lane = in + b * n * inner + i;
        auto less = [&](std::size_t p, std::size_t q) {
          const T u = lane[p * inner], v = lane[q * inner];
          return !detail::is_nan(u) && (detail::is_nan(v) || u < v);
        };
        std::iota(order.begin(), order.end(), std::size_t{0});
        if (descending)
          std::stable_sort(order.begin(), order.end(), [&](std::size_t p, std::size_t q) { return less(q, p); });
        else
          std::stable_sort(order.begin(), order.end(), less);
        std::int64_t* o = out.data() + b * k * inner + i;
        for (std::size_t j = 0; j < k; ++j) o[j * inner] = static_cast<std::int64_t>(order[j]);
      }
  });
  return Tensor(std::move(out));
}

// The values and indices of the first k of each sorted lane; a 0-d x is handled as [1].
ValuesIndices select_sorted(const Tensor& x, int axis, bool descending, std::int64_t k, std::string_view op) {
  const Tensor x1 = x.ndim() == 0 ? reshape(x, {1}) : x;
  const int rank = static_cast<int>(x1.ndim());
  TG_CHECK(axis >= -rank && axis < rank, "{}: axis {} is out of range for x {} {}", op, axis, x.dtype(),
           shape_str(x.shape()));
  const std::size_t a = normalize_axis(axis, x1.ndim(), op);
  const auto n = static_cast<std::int64_t>(x1.shape()[a]);
  if (k < 0) k = n;  // sort: all of them
  TG_CHECK(k <= n, "{}: k = {} is out of range for axis {} of x {} {} (size {})", op, k, axis, x.dtype(),
           shape_str(x.shape()), n);
  const Tensor indices = sorted_indices(x1, a, descending, static_cast<std::size_t>(k));
  Tensor values = gather(x1, static_cast<int>(a), indices);
  if (x.ndim() == 0) return {reshape(values, {}), reshape(indices, {})};
  return {values, indices};
}

}  // namespace

ValuesIndices sort(const Tensor& x, int axis, bool descending) {
  return select_sorted(x, axis, descending, -1, "sort");
}

ValuesIndices topk(const Tensor& x, std::int64_t k, int axis, bool largest, bool /*sorted*/) {
  TG_CHECK(k >= 0, "topk: k = {} is out of range for x {} {} (k must be >= 0)", k, x.dtype(), shape_str(x.shape()));
  return select_sorted(x, axis, largest, k, "topk");
}

}  // namespace tg
