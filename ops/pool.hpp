#pragma once
// 2-D pooling (NCHW): max (routing the gradient to the argmax), average and global average.
#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/ops/window.hpp"

namespace tg {

/// Options of max_pool2d: window size, stride (defaults to the kernel) and padding per side
/// (at most half the kernel, as in PyTorch; max pooling pads with -inf).
struct MaxPool2dOptions {
  /// Window size (kH, kW).
  Size2 kernel;
  /// Step of the window; unset: the kernel size.
  OptionalSize2 stride = std::nullopt;
  /// Rows/columns of -inf added on each side, at most half the kernel.
  Size2 padding = 0;
};

/// Options of avg_pool2d; count_include_pad (PyTorch's default) divides by the full window
/// area kH*kW, otherwise by the number of non-padding elements in the window.
struct AvgPool2dOptions {
  /// Window size (kH, kW).
  Size2 kernel;
  /// Step of the window; unset: the kernel size.
  OptionalSize2 stride = std::nullopt;
  /// Rows/columns of zeros added on each side, at most half the kernel.
  Size2 padding = 0;
  /// Divide by kH*kW, padding included (the default); else by the non-padding elements.
  bool count_include_pad = true;
};

/// x [N,C,H,W] → [N,C,H',W'], H' = (H + 2*pad - kH) / stride + 1: the maximum of each window; the
/// gradient goes to the (first) maximal element. Twice differentiable.
Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& options);

/// Like max_pool2d, also returning the int64 argmax of each window as a flat index h*W + w into
/// its input plane (PyTorch's return_indices): {values [N,C,H',W'], indices [N,C,H',W']}.
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, const MaxPool2dOptions& options);

/// x [N,C,H,W] → [N,C,H',W']: the mean of each window. Twice differentiable.
Tensor avg_pool2d(const Tensor& x, const AvgPool2dOptions& options);

/// x [N,C,H,W] → [N,C]: the mean over each plane (Keras GlobalAveragePooling2D).
Tensor global_avg_pool2d(const Tensor& x);

}  // namespace tg
