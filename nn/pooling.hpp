#pragma once
// Pooling layers over NCHW inputs: MaxPool2d, AvgPool2d and GlobalAvgPool2d.
#include <optional>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/pool.hpp"

namespace tg::nn {

/// x [N, C, H, W] → [N, C, H', W']: the maximum of each kernel window (stride defaults to the kernel).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const MaxPool2dOptions& options() const { return options_; }

 private:
  MaxPool2dOptions options_;
};

/// x [N, C, H, W] → [N, C, H', W']: the mean of each kernel window (stride defaults to the kernel).
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0,
                     bool count_include_pad = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

 private:
  AvgPool2dOptions options_;
};

/// x [N, C, H, W] → [N, C]: the mean of each plane (Keras's GlobalAveragePooling2D).
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};

}  // namespace tg::nn
