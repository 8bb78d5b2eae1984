#pragma once
// Linear: the fully connected layer (Keras's Dense).
#include <optional>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// Options of Linear.
struct LinearOptions {
  bool bias = true;                          ///< add a learned bias
  Activation activation = Activation::none;  ///< fused activation, as Dense(activation=...)
  Generator* generator = nullptr;            ///< for the initial weights; default_generator() if null
  /// Penalty on the weight added to the training loss (Keras's kernel_regularizer), e.g. nn::L2(0.01).
  std::optional<Regularizer> kernel_regularizer = std::nullopt;
  std::optional<Regularizer> bias_regularizer = std::nullopt;  ///< the same for the bias
};

/// x [..., in_features] @ weight[out, in]^T + bias[out] → [..., out_features], then the activation.
/// The weight starts glorot_uniform and the bias zero (Keras's defaults, not PyTorch's).
class Linear : public Module {
 public:
  /// The weight starts glorot_uniform from options.generator (default_generator() if null), the bias zero.
  Linear(std::size_t in_features, std::size_t out_features, LinearOptions options = {});
  /// x [..., in_features] (any leading axes) → [..., out_features], then the activation; throws for another x.
  Tensor forward(const Tensor& x) override;
  /// With a softmax activation: the logits are forward's without it.
  bool has_logits() const override { return is_exactly<Linear>() && activation_ == Activation::softmax; }
  /// x @ weight^T + bias without the softmax; throws unless has_logits().
  Tensor forward_logits(const Tensor& x) override;
  /// "in_features=784, out_features=10, bias=true", then ", activation=relu" when one is fused.
  std::string extra_repr() const override;

  const Tensor& weight() const { return weight_; }  ///< [out_features, in_features]
  const Tensor& bias() const { return bias_; }      ///< [out_features], undefined without bias
  /// The size of an input row.
  std::size_t in_features() const { return in_features_; }
  Activation activation() const { return activation_; }  ///< the fused activation
  /// The size of an output row.
  std::size_t out_features() const { return out_features_; }

 private:
  Tensor forward_logits_unchecked(const Tensor& x) const;  // x @ weight^T + bias
  std::size_t in_features_;
  std::size_t out_features_;
  Activation activation_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace tg::nn
