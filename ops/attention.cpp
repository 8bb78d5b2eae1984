// Attention composed from matmul, softmax and dropout: each has its own fused backward, so the
// composition is differentiable to any order without a kernel of its own.
#include "tapegrad/ops/attention.hpp"

#include <cmath>
#include <limits>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/dropout.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/shape.hpp"
#include "tapegrad/ops/softmax.hpp"

namespace tg {

Tensor additive_mask(const Tensor& mask, Dtype dtype, std::string_view what) {
  if (is_floating(mask.dtype())) return mask.dtype() == dtype ? mask : mask.to(dtype);
  TG_CHECK(mask.dtype() == int64, "{}: expected a float or int64 mask, got {} {}", what, mask.dtype(),
           shape_str(mask.shape()));
  return where(mask, full({}, -std::numeric_limits<double>::infinity(), dtype), zeros({}, dtype));
}

Tensor causal_mask(std::size_t l, std::size_t s, Dtype dtype) {
  return dispatch_float(dtype, "causal_mask", [&](auto tag) {
    using T = decltype(tag);
    xt::xarray<T> m = xt::zeros<T>({l, s});
    for (std::size_t i = 0; i < l; ++i)
      for (std::size_t j = i + 1; j < s; ++j) m(i, j) = -std::numeric_limits<T>::infinity();
    return Tensor(std::move(m));
  });
}

Attention scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionArgs& args) {
  TG_CHECK(q.ndim() >= 2 && k.ndim() >= 2 && v.ndim() >= 2,
           "scaled_dot_product_attention: expected q [..., L, E], k [..., S, E], v [..., S, Ev], got {}, {}, {}",
           shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  TG_CHECK(
      q.shape(-1) == k.shape(-1) && k.shape(-2) == v.shape(-2),
      "scaled_dot_product_attention: q {}, k {} and v {} do not fit (q [..., L, E], k [..., S, E], v [..., S, Ev])",
      shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  TG_CHECK(is_floating(q.dtype()) && q.dtype() == k.dtype() && k.dtype() == v.dtype(),
           "scaled_dot_product_attention: expected q, k and v of one float dtype, got {}, {} and {}", q.dtype(),
           k.dtype(), v.dtype());
  TG_CHECK(args.dropout_p >= 0 && args.dropout_p < 1,
           "scaled_dot_product_attention: dropout_p must be in [0, 1), got {}", args.dropout_p);
  const double scale = args.scale ? *args.scale : 1.0 / std::sqrt(static_cast<double>(q.shape(-1)));
  Tensor scores = mul(matmul(q, transpose(k, -2, -1)), scale);
  if (args.attn_mask.defined())
    scores = add(scores, additive_mask(args.attn_mask, q.dtype(), "scaled_dot_product_attention"));
  if (args.is_causal) scores = add(scores, causal_mask(q.shape(-2), k.shape(-2), q.dtype()));
  Tensor weights = softmax(scores, -1);
  if (args.training && args.dropout_p > 0)
    weights = dropout(weights, args.dropout_p, true, args.generator ? *args.generator : default_generator());
  return {matmul(weights, v), weights};
}

}  // namespace tg
