#pragma once
// Normalization: batch_norm (per channel over the batch), layer_norm (per sample over trailing
// axes) and group_norm (per sample over groups of channels).
#include <cstdint>
#include <vector>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// Arguments of the batch_norm op (nn::BatchNormOptions configures the layers). In training the batch statistics
/// normalize (biased variance) and the running statistics are updated in place: running = (1-momentum)·running +
/// momentum·batch, with the unbiased variance, as PyTorch. In evaluation the running statistics normalize.
struct BatchNormArgs {
  /// Normalize by the batch statistics and update the running ones; else use the running ones.
  bool training = false;
  /// Weight of the batch statistic in the running update.
  double momentum = 0.1;
  /// Added to the variance before the square root.
  double eps = 1e-5;
};

/// x [N,C] or [N,C,...] (e.g. [N,C,H,W]); running_mean, running_var, weight, bias [C] (each may
/// be undefined, except the running statistics in evaluation) → x's shape:
/// (x - mean) / sqrt(var + eps) * weight + bias per channel. Differentiable (twice) in x,
/// weight and bias.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, const BatchNormArgs& options = {});

/// x [..., *normalized_shape] → x's shape: each sample's trailing block (the last
/// normalized_shape.size() axes) normalized to mean 0 and variance 1 (biased, + eps), then
/// · weight + bias (both normalized_shape; either may be undefined), as torch's layer_norm.
/// Twice differentiable in x, weight and bias.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);

/// x [N, C, ...] → x's shape: the C channels split into num_groups groups, each group of each
/// sample normalized over its channels and the remaining axes (biased variance, + eps), then
/// · weight[c] + bias[c] ([C] each, either may be undefined), as torch's group_norm. C must be
/// a multiple of num_groups. Twice differentiable in x, weight and bias.
Tensor group_norm(const Tensor& x, std::size_t num_groups, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);

}  // namespace tg
