#pragma once
// The Transformer encoder: TransformerEncoderLayer and a stack of them, TransformerEncoder, with
// PyTorch's structure and parameter names (torch.nn.TransformerEncoderLayer / TransformerEncoder),
// post-norm (the default) or pre-norm (norm_first).
#include <vector>

#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/attention.hpp"
#include "tapegrad/nn/dropout.hpp"
#include "tapegrad/nn/layernorm.hpp"
#include "tapegrad/nn/linear.hpp"

namespace tg::nn {

/// Options of TransformerEncoderLayer (PyTorch's names and defaults).
struct TransformerEncoderLayerOptions {
  std::size_t dim_feedforward = 2048;        ///< hidden features of the feed-forward block
  double dropout = 0.1;                      ///< after attention, inside and after the feed-forward block
  Activation activation = Activation::relu;  ///< of the feed-forward block: relu or gelu
  double layer_norm_eps = 1e-5;              ///< eps of norm1 and norm2
  bool batch_first = false;                  ///< inputs [N, S, E] (true) or [S, N, E] (false, PyTorch's default)
  /// Pre-norm: x + attn(norm1(x)), then x + ff(norm2(x)); else post-norm: norm1(x + attn(x)), ...
  bool norm_first = false;
  bool bias = true;                ///< biases in the linear layers, the attention and the norms
  Generator* generator = nullptr;  ///< for the initial weights and dropout; default_generator() if null
};

/// The masks of one encoder call (see AttentionCall).
struct EncoderCall {
  Tensor mask = {};                  ///< attn_mask of the self-attention: [S, S] or [N * nhead, S, S]
  Tensor src_key_padding_mask = {};  ///< [N, S]: positions every query ignores
  bool is_causal = false;            ///< each position sees only itself and earlier ones
};

/// Self-attention and a feed-forward block, each with a residual connection, dropout and a
/// LayerNorm. Children: self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2.
class TransformerEncoderLayer : public Module {
 public:
  /// d_model must be a positive multiple of nhead; activation relu or gelu (throws otherwise).
  TransformerEncoderLayer(std::size_t d_model, std::size_t nhead, TransformerEncoderLayerOptions options = {});
  /// src [N, S, d_model] (batch_first), [S, N, d_model] or unbatched [S, d_model] → the same shape.
  Tensor forward(const Tensor& src) override;
  /// The same with masks.
  Tensor forward(const Tensor& src, const EncoderCall& call);
  /// "d_model=64, nhead=4, dim_feedforward=128, ...".
  std::string extra_repr() const override;

  /// The self-attention block.
  const std::shared_ptr<MultiheadAttention>& self_attn() const { return self_attn_; }

 private:
  Tensor feed_forward(const Tensor& x);
  std::size_t d_model_, nhead_;
  TransformerEncoderLayerOptions options_;
  std::shared_ptr<MultiheadAttention> self_attn_;
  std::shared_ptr<Linear> linear1_, linear2_;
  std::shared_ptr<Dropout> dropout_, dropout1_, dropout2_;
  std::shared_ptr<LayerNorm> norm1_, norm2_;
};

/// Options of TransformerEncoder.
struct TransformerEncoderOptions {
  /// A final LayerNorm ("norm") after the last layer, as pre-norm models need.
  bool final_norm = false;
};

/// num_layers TransformerEncoderLayers applied in turn (children layers.0, layers.1, ...), then
/// optionally a LayerNorm (child norm). Each layer is initialized on its own (PyTorch copies the
/// first layer's initial weights to all; weights saved by either load into the other by name).
class TransformerEncoder : public Module {
 public:
  /// num_layers >= 1 layers, each TransformerEncoderLayer(d_model, nhead, layer).
  TransformerEncoder(std::size_t d_model, std::size_t nhead, std::size_t num_layers,
                     TransformerEncoderLayerOptions layer = {}, TransformerEncoderOptions options = {});
  /// src as TransformerEncoderLayer takes it → the same shape.
  Tensor forward(const Tensor& src) override;
  /// The same with masks, given to every layer.
  Tensor forward(const Tensor& src, const EncoderCall& call);
  /// "num_layers=2".
  std::string extra_repr() const override;

  /// The layers, in order.
  const std::vector<std::shared_ptr<TransformerEncoderLayer>>& layers() const { return layers_; }

 private:
  std::vector<std::shared_ptr<TransformerEncoderLayer>> layers_;
  std::shared_ptr<LayerNorm> norm_;
};

}  // namespace tg::nn
