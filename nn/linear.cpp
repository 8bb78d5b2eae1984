#include "tapegrad/nn/linear.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/ops/linalg.hpp"

namespace tg::nn {

Linear::Linear(std::size_t in_features, std::size_t out_features, LinearOptions options)
    : in_features_(in_features), out_features_(out_features), activation_(options.activation) {
  TG_CHECK(in_features > 0 && out_features > 0, "Linear: in_features and out_features must be positive, got {} and {}",
           in_features, out_features);
  Generator& gen = options.generator ? *options.generator : default_generator();
  weight_ = register_parameter("weight", zeros({out_features, in_features}));
  init::glorot_uniform_(weight_, gen);
  if (options.bias) bias_ = register_parameter("bias", zeros({out_features}));
  if (options.kernel_regularizer) add_regularizer(weight_, *options.kernel_regularizer);
  if (options.bias_regularizer && bias_.defined()) add_regularizer(bias_, *options.bias_regularizer);
}

Tensor Linear::forward(const Tensor& x) { return apply_activation(activation_, forward_logits_unchecked(x)); }

Tensor Linear::forward_logits(const Tensor& x) {
  TG_CHECK(has_logits(), "Linear: forward_logits needs a softmax activation, the layer has {}",
           activation_name(activation_));
  return forward_logits_unchecked(x);
}

Tensor Linear::forward_logits_unchecked(const Tensor& x) const {
  // Any leading axes, as torch.nn.Linear and Keras's Dense: [..., in] → [..., out].
  TG_CHECK(x.ndim() >= 1 && x.shape(-1) == in_features_, "Linear({} -> {}): expected input [..., {}], got {}",
           in_features_, out_features_, in_features_, shape_str(x.shape()));
  return linear(x, weight_, bias_);
}

std::string Linear::extra_repr() const {
  std::string s = fmt::format("in_features={}, out_features={}, bias={}", in_features_, out_features_, bias_.defined());
  if (activation_ != Activation::none) s += ", activation=" + activation_name(activation_);
  return s;
}

}  // namespace tg::nn
