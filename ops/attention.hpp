#pragma once
// Scaled dot-product attention, the core of nn::MultiheadAttention.
#include <optional>
#include <string_view>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// Options of scaled_dot_product_attention.
struct AttentionArgs {
  /// Broadcastable to the scores [..., L, S]: a float mask is added to them (-inf forbids a
  /// pair), an int64 mask forbids the pairs where it is nonzero. Undefined: none.
  Tensor attn_mask = {};
  bool is_causal = false;  ///< forbid each query l the keys s > l (with any attn_mask)
  double dropout_p = 0.0;  ///< dropout on the attention weights, in training only
  bool training = false;   ///< apply dropout_p
  /// Source of the dropout masks; default_generator() if null.
  Generator* generator = nullptr;
  /// Factor of the scores; 1/sqrt(E) when not given.
  std::optional<double> scale = std::nullopt;
};

/// What scaled_dot_product_attention computes.
struct Attention {
  Tensor output;   ///< [..., L, Ev]
  Tensor weights;  ///< [..., L, S]: softmax of the scores (after dropout: what multiplies v)
};

/// q [..., L, E], k [..., S, E], v [..., S, Ev] (leading axes broadcast) →
/// softmax(q kᵀ · scale + mask) v. A query whose keys are all forbidden gets NaN, as in PyTorch.
/// Twice differentiable in q, k and v.
Attention scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                       const AttentionArgs& args = {});

/// An int64 mask (nonzero forbids) as the float mask that adds -inf there and 0 elsewhere, in
/// `dtype`; a float mask converted to `dtype`. `what` names the mask in errors.
Tensor additive_mask(const Tensor& mask, Dtype dtype, std::string_view what);

/// [L, S] in `dtype`: -inf where s > l (a query may not see later keys), else 0.
Tensor causal_mask(std::size_t l, std::size_t s, Dtype dtype = float32);

}  // namespace tg
