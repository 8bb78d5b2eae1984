#pragma once
// Batch normalization.
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

}  // namespace tg
