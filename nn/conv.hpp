#pragma once
// Conv2d: a 2-D convolution layer over NCHW inputs (Keras's Conv2D, PyTorch's Conv2d).
#include <optional>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/conv.hpp"

namespace tg::nn {

/// Options of the Conv2d layer: the op's (stride, padding incl. "valid"/"same", dilation,
/// groups) plus bias, a fused activation and the generator for the initial weights.
struct Conv2dOptions {
  /// Step of the window per axis.
  Size2 stride = 1;
  /// Zero padding per side: sizes, or "valid" / "same" (see tg::Padding).
  Padding padding = 0;
  /// Spacing of the kernel taps per axis (1: adjacent).
  Size2 dilation = 1;
  /// Channel groups, each convolved apart: in_channels and out_channels must divide by it.
  std::int64_t groups = 1;
  /// Learn a bias [out_channels] (starting at zero).
  bool bias = true;
  /// Fused activation, as Conv2D(activation="relu").
  Activation activation = Activation::none;
  Generator* generator = nullptr;  ///< default_generator() if null
  /// Penalty on the weight added to the training loss (Keras's kernel_regularizer), e.g. nn::L2(0.01).
  std::optional<Regularizer> kernel_regularizer = std::nullopt;
  std::optional<Regularizer> bias_regularizer = std::nullopt;  ///< the same for the bias
};

/// x [N, in_channels, H, W] → [N, out_channels, H', W'] (see tg::conv2d for H', W');
/// weight [out_channels, in_channels/groups, kH, kW] starts glorot_uniform, bias zero (Keras's
/// defaults, not PyTorch's).
class Conv2d : public Module {
 public:
  /// kernel_size is one number or {kH, kW}; throws for zero sizes or channels that groups does not divide.
  Conv2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size, Conv2dOptions options = {});
  /// x [N, in_channels, H, W] → [N, out_channels, H', W'] (or one unbatched [in_channels, H, W]), then the
  /// activation; throws for another x.
  Tensor forward(const Tensor& x) override;
  /// With a relu activation, takes a following MaxPool2d and a Flatten(1) after it into one op
  /// (tg::conv2d_relu_max_pool2d, writing the flattened result directly when a Flatten follows).
  Chained forward_chain(const Tensor& x, std::span<const std::shared_ptr<Module>> next) override;
  /// "1, 32, kernel_size=(3, 3), stride=(1, 1)", then padding, dilation, groups, bias, activation if not default.
  std::string extra_repr() const override;

  /// [out_channels, in_channels/groups, kH, kW].
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  ///< undefined without bias
  /// C_in, the channels of the input.
  std::size_t in_channels() const { return in_channels_; }
  /// C_out, the channels of the output.
  std::size_t out_channels() const { return out_channels_; }

 private:
  void check_input(const Tensor& x) const;

  std::size_t in_channels_;
  std::size_t out_channels_;
  Size2 kernel_size_;
  Conv2dOptions options_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace tg::nn
