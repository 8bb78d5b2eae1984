#pragma once
// MultiheadAttention: PyTorch's layer, parameter names and masks (torch.nn.MultiheadAttention).
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// Options of MultiheadAttention (PyTorch's names and defaults).
struct MultiheadAttentionOptions {
  double dropout = 0.0;            ///< dropout on the attention weights, in training
  bool bias = true;                ///< learn in_proj_bias and out_proj.bias
  std::size_t kdim = 0;            ///< features of key; 0 means embed_dim
  std::size_t vdim = 0;            ///< features of value; 0 means embed_dim
  bool batch_first = false;        ///< inputs [N, L, E] (true) or [L, N, E] (false, PyTorch's default)
  Generator* generator = nullptr;  ///< for the initial weights and dropout; default_generator() if null
};

/// The masks and choices of one MultiheadAttention call.
struct AttentionCall {
  /// [N, S]: keys to ignore per sample; int64 nonzero ignores, a float mask is added to the scores.
  Tensor key_padding_mask = {};
  /// [L, S] or [N * num_heads, L, S]: int64 nonzero forbids a (query, key) pair, a float mask is added.
  Tensor attn_mask = {};
  bool is_causal = false;            ///< also forbid each query the keys after it
  bool need_weights = true;          ///< return the attention weights
  bool average_attn_weights = true;  ///< weights averaged over heads [N, L, S], else [N, num_heads, L, S]
};

/// What MultiheadAttention computes.
struct AttentionOutput {
  Tensor output;   ///< as the query: [N, L, E] (batch_first), [L, N, E] or unbatched [L, E]
  Tensor weights;  ///< [N, L, S] or [N, num_heads, L, S] (no N unbatched); undefined without need_weights
};

/// Attention from queries to keys in num_heads heads of embed_dim / num_heads features:
/// out_proj(concat_h softmax(q_h k_hᵀ / sqrt(d) + mask) v_h) with q, k, v linear projections of
/// query, key and value. Parameters: in_proj_weight [3E, E] and in_proj_bias [3E] (or
/// q_proj_weight, k_proj_weight, v_proj_weight when kdim or vdim differ from E), out_proj.weight
/// [E, E], out_proj.bias [E]; projections start glorot_uniform, biases zero.
class MultiheadAttention : public Module {
 public:
  /// embed_dim must be a positive multiple of num_heads (throws otherwise).
  MultiheadAttention(std::size_t embed_dim, std::size_t num_heads, MultiheadAttentionOptions options = {});
  /// Self-attention of x without masks: forward(x, x, x).output.
  Tensor forward(const Tensor& x) override;
  /// query [N, L, E], key [N, S, kdim], value [N, S, vdim] (batch_first; [L, N, E] ... otherwise;
  /// [L, E] ... unbatched) → the output and (with need_weights) the attention weights.
  AttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionCall& call = {});
  /// "embed_dim=64, num_heads=4, batch_first=true", with dropout, bias=false, kdim, vdim when set.
  std::string extra_repr() const override;

  std::size_t embed_dim() const { return embed_dim_; }  ///< E
  std::size_t num_heads() const { return num_heads_; }  ///< heads of E / num_heads features
  /// The output projection.
  const std::shared_ptr<Linear>& out_proj() const { return out_proj_; }

 private:
  std::size_t embed_dim_, num_heads_, kdim_, vdim_;
  MultiheadAttentionOptions options_;
  Tensor in_proj_weight_, q_proj_weight_, k_proj_weight_, v_proj_weight_, in_proj_bias_;
  std::shared_ptr<Linear> out_proj_;
};

}  // namespace tg::nn
