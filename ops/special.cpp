// Special functions: a scalar forward per element, and a backward built from differentiable ops
// (it is short, so there is no fused kernel and create_graph needs nothing extra).
#include "tapegrad/ops/special.hpp"

#include <cmath>
#include <numbers>

#include "tapegrad/autograd/function.hpp"
#include "tapegrad/ops/detail/map.hpp"
#include "tapegrad/ops/elementwise.hpp"

namespace tg {

using detail::unary_float;

// d sin(x) = g*cos(x)
Tensor sin(const Tensor& x) {
  Tensor out = unary_float(x, "sin", [](auto v) { return std::sin(v); });
  return record({.name = "sin", .inputs = {x}, .saved = {x}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList { return {mul(g, cos(ctx.saved(0)))}; });
}

// d cos(x) = -g*sin(x)
Tensor cos(const Tensor& x) {
  Tensor out = unary_float(x, "cos", [](auto v) { return std::cos(v); });
  return record(
      {.name = "cos", .inputs = {x}, .saved = {x}}, out,
      [](const BackwardContext& ctx, const Tensor& g) -> TensorList { return {mul(g, neg(sin(ctx.saved(0))))}; });
}

// d erf(x) = g * 2/√π * exp(-x²)
Tensor erf(const Tensor& x) {
  Tensor out = unary_float(x, "erf", [](auto v) { return std::erf(v); });
  return record({.name = "erf", .inputs = {x}, .saved = {x}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& s = ctx.saved(0);
                  return {mul(g, mul(exp(neg(mul(s, s))), std::numbers::inv_sqrtpi * 2.0))};
                });
}

}  // namespace tg
