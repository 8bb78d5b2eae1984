#include "tapegrad/ops/dropout.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/detail/generator_state.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/kernels/elementwise.hpp"
#include "tapegrad/ops/elementwise.hpp"

namespace tg {

// d dropout(x) = g * mask, mask = [kept] / (1-p)
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  TG_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got {} (x {})", p, shape_str(x.shape()));
  TG_CHECK(is_floating(x.dtype()), "dropout: expected a float32 or float64 tensor, got {} {}", x.dtype(),
           shape_str(x.shape()));
  if (!training || p == 0.0) return x;
  Tensor mask, out;
  dispatch_float(x.dtype(), "dropout", [&](auto t) {
    using T = decltype(t);
    const ArrayRef<T> a = x.array<T>();
    xt::xarray<T> m = xt::xarray<T>::from_shape(a.shape());
    xt::xarray<T> r = xt::xarray<T>::from_shape(a.shape());
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    // One 64-bit draw per element, compared as an integer: cheaper than a uniform double.
    const auto threshold = static_cast<std::uint64_t>(p * 18446744073709551616.0);
    LockedEngine locked(gen);
    kernels::dropout(locked.engine(), threshold, scale, a.data(), m.data(), r.data(), a.size());
    mask = Tensor(std::move(m));
    out = Tensor(std::move(r));
  });
  return record({.name = "dropout", .inputs = {x}, .saved = {mask}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList { return {mul(g, ctx.saved(0))}; });
}

}  // namespace tg
