// Masking ops. Each is linear in x with a fixed pattern of zeroed elements, so its backward is
// the same op on g: one kernel when g needs no graph, and differentiable otherwise.
#include "tapegrad/ops/mask.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/detail/map.hpp"

namespace tg {

// d masked_fill(x) = masked_fill(g, mask, 0)
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  TG_CHECK(mask.dtype() == int64, "masked_fill: expected an int64 mask (0/1, as eq or gt give), got {} {} for x {} {}",
           mask.dtype(), shape_str(mask.shape()), x.dtype(), shape_str(x.shape()));
  // The mask in x's dtype keeps nonzero values nonzero, so one same-type map does the work.
  Tensor out = detail::binary_map<detail::SameType>(x, mask.to(x.dtype()), "masked_fill", [value](auto v, auto m) {
    using T = decltype(v);
    return m != T(0) ? static_cast<T>(value) : v;
  });
  return record(
      {.name = "masked_fill", .inputs = {x}, .saved = {mask}}, out,
      [](const BackwardContext& ctx, const Tensor& g) -> TensorList { return {masked_fill(g, ctx.saved(0), 0.0)}; });
}

namespace {

// Zeroes the elements (i, j) of each [M, N] matrix of x where drop(j - i) holds.
template <class Drop>
Tensor triangle(const Tensor& x, std::string_view op, Drop drop) {
  const Shape s = x.shape();
  TG_CHECK(s.size() >= 2, "{}: expected a tensor of rank >= 2 ([..., M, N]), got {} {}", op, x.dtype(), shape_str(s));
  const std::size_t rows = s[s.size() - 2], cols = s.back();
  return dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(s);
    const T* in = x.data<T>();
    T* out = r.data();
    const std::size_t matrices = rows * cols == 0 ? 0 : x.numel() / (rows * cols);
    for (std::size_t m = 0, p = 0; m < matrices; ++m)
      for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j, ++p)
          out[p] = drop(static_cast<std::int64_t>(j) - static_cast<std::int64_t>(i)) ? T(0) : in[p];
    return Tensor(std::move(r));
  });
}

}  // namespace

// d tril(x) = tril(g)
Tensor tril(const Tensor& x, std::int64_t diagonal) {
  Tensor out = triangle(x, "tril", [diagonal](std::int64_t d) { return d > diagonal; });
  return record({.name = "tril", .inputs = {x}}, out,
                [diagonal](const BackwardContext&, const Tensor& g) -> TensorList { return {tril(g, diagonal)}; });
}

// d triu(x) = triu(g)
Tensor triu(const Tensor& x, std::int64_t diagonal) {
  Tensor out = triangle(x, "triu", [diagonal](std::int64_t d) { return d < diagonal; });
  return record({.name = "triu", .inputs = {x}}, out,
                [diagonal](const BackwardContext&, const Tensor& g) -> TensorList { return {triu(g, diagonal)}; });
}

}  // namespace tg
