#pragma once
// Convolution layers: Conv2d over NCHW inputs (Keras's Conv2D, PyTorch's Conv2d), Conv1d over
// NCL inputs, and ConvTranspose2d.
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

/// Options of the Conv1d layer (PyTorch's names).
struct Conv1dOptions {
  std::int64_t stride = 1;         ///< step of the window
  Padding padding = 0;             ///< zero padding per side: one size, or "valid" / "same"
  std::int64_t dilation = 1;       ///< spacing of the kernel taps
  std::int64_t groups = 1;         ///< channel groups: in_channels and out_channels must divide by it
  bool bias = true;                ///< learn a bias [out_channels] (starting at zero)
  Generator* generator = nullptr;  ///< for the initial weights; default_generator() if null
};

/// x [N, in_channels, L] → [N, out_channels, L'] (see tg::conv1d); weight [out_channels,
/// in_channels/groups, K] starts glorot_uniform, bias zero.
class Conv1d : public Module {
 public:
  /// Throws for zero sizes or channels that groups does not divide.
  Conv1d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size, Conv1dOptions options = {});
  /// x [N, in_channels, L] (or unbatched [in_channels, L]) → [N, out_channels, L']; throws for another x.
  Tensor forward(const Tensor& x) override;
  /// "2, 4, kernel_size=(3,), stride=(1,)", then padding, dilation, groups, bias if not default.
  std::string extra_repr() const override;

  const Tensor& weight() const { return weight_; }  ///< [out_channels, in_channels/groups, K]
  const Tensor& bias() const { return bias_; }      ///< [out_channels], undefined without bias

 private:
  std::size_t in_channels_, out_channels_, kernel_size_;
  Conv1dOptions options_;
  Tensor weight_, bias_;
};

/// Options of the ConvTranspose2d layer (PyTorch's names).
struct ConvTranspose2dOptions {
  Size2 stride = 1;                ///< step of the window per axis
  Size2 padding = 0;               ///< cropped from each side of the output
  Size2 output_padding = 0;        ///< added to one side of the output; below max(stride, dilation)
  std::int64_t groups = 1;         ///< channel groups: in_channels and out_channels must divide by it
  bool bias = true;                ///< learn a bias [out_channels] (starting at zero)
  Size2 dilation = 1;              ///< spacing of the kernel taps per axis
  Generator* generator = nullptr;  ///< for the initial weights; default_generator() if null
};

/// x [N, in_channels, H, W] → [N, out_channels, H', W'] (see tg::conv_transpose2d), the layer that
/// upsamples in decoders and GANs; weight [in_channels, out_channels/groups, kH, kW] (PyTorch's
/// layout) starts glorot_uniform, bias zero.
class ConvTranspose2d : public Module {
 public:
  /// Throws for zero sizes or channels that groups does not divide.
  ConvTranspose2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size,
                  ConvTranspose2dOptions options = {});
  /// x [N, in_channels, H, W] (or unbatched [in_channels, H, W]) → [N, out_channels, H', W'].
  Tensor forward(const Tensor& x) override;
  /// "4, 2, kernel_size=(3, 3), stride=(2, 2)", then padding, output_padding, groups, bias, dilation if not default.
  std::string extra_repr() const override;

  const Tensor& weight() const { return weight_; }  ///< [in_channels, out_channels/groups, kH, kW]
  const Tensor& bias() const { return bias_; }      ///< [out_channels], undefined without bias

 private:
  std::size_t in_channels_, out_channels_;
  Size2 kernel_size_;
  ConvTranspose2dOptions options_;
  Tensor weight_, bias_;
};

}  // namespace tg::nn
