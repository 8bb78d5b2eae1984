#pragma once
// 2-D convolution (NCHW): a direct SIMD kernel when the input has few taps (C_in*kH*kW <= 32 at
// unit stride), else oneDNN's kernels in float32, else im2col + one BLAS GEMM per group for a
// whole batch chunk (float64, and whatever oneDNN has no kernel for).
#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/ops/pool.hpp"
#include "tapegrad/ops/window.hpp"

namespace tg {

/// Arguments of the conv2d op (nn::Conv2dOptions configures the layer): stride, zero padding (sizes or "valid"/"same")
/// and dilation per axis, and the number of channel groups.
struct Conv2dArgs {
  /// Step of the window per axis.
  Size2 stride = 1;
  /// Zero padding per side: sizes, or "valid" / "same" (see tg::Padding).
  Padding padding = 0;
  /// Spacing of the kernel taps per axis (1: adjacent).
  Size2 dilation = 1;
  /// Channel groups, each convolved apart: C_in and C_out must divide by it.
  std::int64_t groups = 1;
};

/// x [N,C_in,H,W], weight [C_out,C_in/groups,kH,kW], bias [C_out] (may be undefined) →
/// [N,C_out,H',W'] with H' = (H + pad_top + pad_bottom - dilation*(kH-1) - 1) / stride + 1.
/// Cross-correlation, as PyTorch's conv2d. Twice differentiable.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, const Conv2dArgs& options = {});

/// relu(conv2d(x, weight, bias)) as one op (Keras's Conv2D(activation="relu")): the activation is
/// applied as the output is written and folded into the backward, saving a pass over the
/// activations each way. Same values and gradients as the two ops. Twice differentiable.
Tensor conv2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, const Conv2dArgs& options = {});

/// max_pool2d(conv2d_relu(x, weight, bias, conv), pool) as one op, the Conv2D(relu) →
/// MaxPooling2D pair of most CNNs (nn::Sequential uses it for that pair): with 2x2 windows at
/// stride 2 after a first layer (few input taps), each activation plane is pooled while it is
/// in cache and the weight gradient is made from the pooled gradient, so the full-size
/// activation and its gradient never go to memory. Other configurations run the two ops.
/// Same values and gradients as the two ops. Twice differentiable.
Tensor conv2d_relu_max_pool2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& conv,
                              const MaxPool2dOptions& pool);

/// flatten(conv2d_relu_max_pool2d(...), 1) → [N, C_out*H'*W'] as one op, written flattened
/// directly: a reshape copies (a Tensor owns its array), and at batch 128 that copy each way was
/// ~4% of a training step (nn::Conv2d uses it when a Flatten follows its MaxPool2d).
Tensor conv2d_relu_max_pool2d_flatten(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dArgs& conv,
                                      const MaxPool2dOptions& pool);

/// The gradient of conv2d with respect to its input (a transposed convolution):
/// grad_out [N,C_out,H',W'], weight [C_out,C_in/groups,kH,kW] → [N,C_in,H,W] where input_shape is
/// [N,C_in,H,W]. Linear in grad_out and weight, and differentiable in both.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape,
                             const Conv2dArgs& options = {});

/// The gradient of conv2d with respect to its weight: grad_out [N,C_out,H',W'], x [N,C_in,H,W]
/// → [C_out,C_in/groups,kH,kW] (= weight_shape). Differentiable in grad_out and x.
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dArgs& options = {});

/// Arguments of the conv1d op (nn::Conv1dOptions configures the layer).
struct Conv1dArgs {
  std::int64_t stride = 1;  ///< step of the window
  /// Zero padding per side: one size, or "valid" / "same" (a Padding of two sizes is refused).
  Padding padding = 0;
  std::int64_t dilation = 1;  ///< spacing of the kernel taps
  std::int64_t groups = 1;    ///< channel groups, each convolved apart
};

/// x [N,C_in,L], weight [C_out,C_in/groups,K], bias [C_out] (may be undefined) → [N,C_out,L'] with
/// L' = (L + 2·padding - dilation·(K-1) - 1) / stride + 1: conv2d over a height of 1, as
/// PyTorch's conv1d. Twice differentiable.
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, const Conv1dArgs& options = {});

/// Arguments of the conv_transpose2d op (nn::ConvTranspose2dOptions configures the layer).
struct ConvTranspose2dArgs {
  Size2 stride = 1;          ///< step of the window per axis (of the convolution it transposes)
  Size2 padding = 0;         ///< zero padding per side of that convolution's input: cropped from the output
  Size2 output_padding = 0;  ///< added to one side of the output; below max(stride, dilation) per axis
  Size2 dilation = 1;        ///< spacing of the kernel taps per axis
  std::int64_t groups = 1;   ///< channel groups, each convolved apart
};

/// x [N,C_in,H,W], weight [C_in,C_out/groups,kH,kW], bias [C_out] (may be undefined) →
/// [N,C_out,H',W'] with H' = (H-1)·stride - 2·padding + dilation·(kH-1) + output_padding + 1: the
/// gradient of conv2d with respect to its input, as PyTorch's conv_transpose2d. Twice differentiable.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {},
                        const ConvTranspose2dArgs& options = {});

}  // namespace tg
