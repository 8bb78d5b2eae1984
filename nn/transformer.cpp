#include "tapegrad/nn/transformer.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/ops/elementwise.hpp"

namespace tg::nn {

TransformerEncoderLayer::TransformerEncoderLayer(std::size_t d_model, std::size_t nhead,
                                                 TransformerEncoderLayerOptions options)
    : d_model_(d_model), nhead_(nhead), options_(options) {
  TG_CHECK(options.activation == Activation::relu || options.activation == Activation::gelu,
           "TransformerEncoderLayer: activation must be relu or gelu, got {}", activation_name(options.activation));
  TG_CHECK(options.dim_feedforward > 0, "TransformerEncoderLayer: dim_feedforward must be positive");
  self_attn_ = register_module(
      "self_attn", std::make_shared<MultiheadAttention>(d_model, nhead,
                                                        MultiheadAttentionOptions{.dropout = options.dropout,
                                                                                  .bias = options.bias,
                                                                                  .batch_first = options.batch_first,
                                                                                  .generator = options.generator}));
  const LinearOptions linear{.bias = options.bias, .generator = options.generator};
  linear1_ = register_module("linear1", std::make_shared<Linear>(d_model, options.dim_feedforward, linear));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(options.dropout, options.generator));
  linear2_ = register_module("linear2", std::make_shared<Linear>(options.dim_feedforward, d_model, linear));
  const LayerNormOptions norm{.eps = options.layer_norm_eps, .bias = options.bias};
  norm1_ = register_module("norm1", std::make_shared<LayerNorm>(d_model, norm));
  norm2_ = register_module("norm2", std::make_shared<LayerNorm>(d_model, norm));
  dropout1_ = register_module("dropout1", std::make_shared<Dropout>(options.dropout, options.generator));
  dropout2_ = register_module("dropout2", std::make_shared<Dropout>(options.dropout, options.generator));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src) { return forward(src, EncoderCall{}); }

Tensor TransformerEncoderLayer::feed_forward(const Tensor& x) {
  return (*dropout2_)((*linear2_)((*dropout_)(apply_activation(options_.activation, (*linear1_)(x)))));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const EncoderCall& call) {
  auto attend = [&](const Tensor& x) {
    return (*dropout1_)(self_attn_
                            ->forward(x, x, x,
                                      {.key_padding_mask = call.src_key_padding_mask,
                                       .attn_mask = call.mask,
                                       .is_causal = call.is_causal,
                                       .need_weights = false})
                            .output);
  };
  if (options_.norm_first) {
    const Tensor x = add(src, attend((*norm1_)(src)));
    return add(x, feed_forward((*norm2_)(x)));
  }
  const Tensor x = (*norm1_)(add(src, attend(src)));
  return (*norm2_)(add(x, feed_forward(x)));
}

std::string TransformerEncoderLayer::extra_repr() const {
  return fmt::format(
      "d_model={}, nhead={}, dim_feedforward={}, dropout={}, activation={}, batch_first={}, norm_first={}", d_model_,
      nhead_, options_.dim_feedforward, options_.dropout, activation_name(options_.activation), options_.batch_first,
      options_.norm_first);
}

TransformerEncoder::TransformerEncoder(std::size_t d_model, std::size_t nhead, std::size_t num_layers,
                                       TransformerEncoderLayerOptions layer, TransformerEncoderOptions options) {
  TG_CHECK(num_layers > 0, "TransformerEncoder: num_layers must be positive");
  auto stack = std::make_shared<Sequential>();  // only names the layers "layers.0", "layers.1", ...
  for (std::size_t i = 0; i < num_layers; ++i) {
    layers_.push_back(std::make_shared<TransformerEncoderLayer>(d_model, nhead, layer));
    stack->add(layers_.back());
  }
  register_module("layers", stack);
  if (options.final_norm)
    norm_ = register_module("norm", std::make_shared<LayerNorm>(
                                        d_model, LayerNormOptions{.eps = layer.layer_norm_eps, .bias = layer.bias}));
}

Tensor TransformerEncoder::forward(const Tensor& src) { return forward(src, EncoderCall{}); }

Tensor TransformerEncoder::forward(const Tensor& src, const EncoderCall& call) {
  Tensor x = src;
  for (const auto& layer : layers_) x = layer->forward(x, call);
  return norm_ ? (*norm_)(x) : x;
}

std::string TransformerEncoder::extra_repr() const { return fmt::format("num_layers={}", layers_.size()); }

}  // namespace tg::nn
