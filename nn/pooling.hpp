#pragma once
// Pooling layers over NCHW inputs: MaxPool2d, AvgPool2d and GlobalAvgPool2d.
#include <optional>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/pool.hpp"

namespace tg::nn {

/// x [N, C, H, W] → [N, C, H', W']: the maximum of each kernel window (stride defaults to the kernel).
class MaxPool2d : public Module {
 public:
  /// Windows of kernel_size, moved by stride (default: the kernel), padding rows/columns of -inf per side.
  explicit MaxPool2d(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0);
  /// tg::max_pool2d of x [N, C, H, W] or of one unbatched [C, H, W]; throws for another rank.
  Tensor forward(const Tensor& x) override;
  /// "kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)".
  std::string extra_repr() const override;
  /// The op's options (Conv2d reads them to fuse this layer after it).
  const MaxPool2dOptions& options() const { return options_; }

 private:
  MaxPool2dOptions options_;
};

/// x [N, C, H, W] → [N, C, H', W']: the mean of each kernel window (stride defaults to the kernel).
class AvgPool2d : public Module {
 public:
  /// Windows of kernel_size, moved by stride (default: the kernel), zero padding per side.
  explicit AvgPool2d(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                     bool count_include_pad = true);
  /// tg::avg_pool2d of x [N, C, H, W] or of one unbatched [C, H, W]; throws for another rank.
  Tensor forward(const Tensor& x) override;
  /// As MaxPool2d's, then ", count_include_pad=false" when set so.
  std::string extra_repr() const override;

 private:
  AvgPool2dOptions options_;
};

/// x [N, C, H, W] → [N, C]: the mean of each plane (Keras's GlobalAveragePooling2D).
class GlobalAvgPool2d : public Module {
 public:
  /// tg::global_avg_pool2d of x [N, C, H, W]; throws for another rank.
  Tensor forward(const Tensor& x) override;
};

}  // namespace tg::nn
