#pragma once
// Per-sample normalization layers: LayerNorm (over trailing axes) and GroupNorm (over groups of
// channels), PyTorch's parameter names and defaults.
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// Options of LayerNorm.
struct LayerNormOptions {
  double eps = 1e-5;               ///< added to the variance before the square root
  bool elementwise_affine = true;  ///< learn weight (starts at 1) and bias (starts at 0) of normalized_shape
  bool bias = true;                ///< with elementwise_affine: learn the bias too
};

/// x [..., *normalized_shape] → same shape: each sample's trailing normalized_shape block normalized
/// (mean 0, biased variance 1), then · weight + bias. Parameters: weight, bias [normalized_shape].
class LayerNorm : public Module {
 public:
  /// Normalizes the trailing axes of this shape (non-empty, no zero size; throws otherwise).
  explicit LayerNorm(Shape normalized_shape, LayerNormOptions options = {});
  /// Normalizes the last axis of this size.
  explicit LayerNorm(std::size_t normalized_size, LayerNormOptions options = {})
      : LayerNorm(Shape{normalized_size}, options) {}
  /// x whose last axes are normalized_shape → the same shape; throws for another x.
  Tensor forward(const Tensor& x) override;
  /// "(64,), eps=1e-05, elementwise_affine=true".
  std::string extra_repr() const override;

  /// The trailing shape normalized over.
  const Shape& normalized_shape() const { return normalized_shape_; }
  /// Scale [normalized_shape], starting at 1; undefined without elementwise_affine.
  const Tensor& weight() const { return weight_; }
  /// Shift [normalized_shape], starting at 0; undefined without elementwise_affine or bias.
  const Tensor& bias() const { return bias_; }

 private:
  Shape normalized_shape_;
  LayerNormOptions options_;
  Tensor weight_, bias_;
};

/// Options of GroupNorm.
struct GroupNormOptions {
  double eps = 1e-5;   ///< added to the variance before the square root
  bool affine = true;  ///< learn a per-channel weight (starts at 1) and bias (starts at 0)
};

/// x [N, C, ...] → same shape: the C channels in num_groups groups, each group of each sample
/// normalized, then a per-channel weight and bias [C].
class GroupNorm : public Module {
 public:
  /// num_channels must be a positive multiple of num_groups (throws otherwise).
  GroupNorm(std::size_t num_groups, std::size_t num_channels, GroupNormOptions options = {});
  /// x [N, num_channels, ...] → the same shape; throws for another x.
  Tensor forward(const Tensor& x) override;
  /// "4, 32, eps=1e-05, affine=true".
  std::string extra_repr() const override;

  /// Scale [C], starting at 1; undefined without affine.
  const Tensor& weight() const { return weight_; }
  /// Shift [C], starting at 0; undefined without affine.
  const Tensor& bias() const { return bias_; }

 private:
  std::size_t num_groups_, num_channels_;
  GroupNormOptions options_;
  Tensor weight_, bias_;
};

}  // namespace tg::nn
