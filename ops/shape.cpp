// Shape ops: forward kernel, then the recorded backward right below it.
#include "ops/shape.hpp"

#include <numeric>

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmanipulation.hpp>

#include "autograd/function.hpp"
#include "ops/kernels.hpp"
#include "ops/reduce.hpp"

namespace tg {
namespace {
std::vector<std::int64_t> as_signed(const Shape& s) { return {s.begin(), s.end()}; }

std::size_t product(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), std::size_t{1}, std::multiplies<>());
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
  Tensor out = detail::dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = x.array<T>();
    r.reshape(to);
    return Tensor(std::move(r));
  });
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
  Tensor out = detail::dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::transpose(x.array<T>(), p);
    return Tensor(std::move(r));
  });
  std::vector<int> inverse(n);
  for (std::size_t i = 0; i < n; ++i) inverse[p[i]] = static_cast<int>(i);
  return record({.name = "permute", .inputs = {x}}, out,
                [inverse](const BackwardContext&, const Tensor& g) -> TensorList { return {permute(g, inverse)}; });
}

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  const std::size_t n = x.ndim();
  TG_CHECK(n >= 2 || (axis0 == -2 && axis1 == -1 && n < 2), "transpose: needs two axes, got shape {}",
           shape_str(x.shape()));
  if (n < 2) return x;
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[normalize_axis(axis0, n, "transpose")], perm[normalize_axis(axis1, n, "transpose")]);
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

// d broadcast_to(x) = sum_to(g, x.shape)
Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  const Shape from = x.shape();
  if (from == shape) return x;
  const Shape joint = broadcast_shapes(from, shape, "broadcast_to");
  TG_CHECK(joint == shape, "broadcast_to: shape {} cannot be broadcast to {}", shape_str(from), shape_str(shape));
  Tensor out = detail::dispatch_all(x.dtype(), [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::broadcast(x.array<T>(), shape);
    return Tensor(std::move(r));
  });
  return record({.name = "broadcast_to", .inputs = {x}}, out,
                [from](const BackwardContext&, const Tensor& g) -> TensorList { return {sum_to(g, from)}; });
}

}  // namespace tg
