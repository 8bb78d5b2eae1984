#pragma once
// Batch normalization layers with running statistics (PyTorch's BatchNorm1d / BatchNorm2d).
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// Options of BatchNorm1d and BatchNorm2d (PyTorch's names and defaults; Keras's
/// BatchNormalization uses momentum 0.01 in this convention and eps 1e-3).
struct BatchNormOptions {
  /// Added to the variance before the square root.
  double eps = 1e-5;
  double momentum = 0.1;            ///< running = (1 - momentum)·running + momentum·batch statistic
  bool affine = true;               ///< learn a per-channel weight (scale, starts at 1) and bias (starts at 0)
  bool track_running_stats = true;  ///< keep running statistics for eval mode; else batch statistics always
};

/// Shared implementation: parameters weight, bias [C]; buffers running_mean [C] (zeros),
/// running_var [C] (ones) and num_batches_tracked (int64 0-d, counts training batches).
class BatchNormBase : public Module {
 public:
  /// Normalizes per channel: by the batch in training (or without running statistics), else by the running ones.
  Tensor forward(const Tensor& x) override;
  /// "32, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true".
  std::string extra_repr() const override;
  /// C, the number of channels.
  std::size_t num_features() const { return num_features_; }
  /// Per-channel scale [C], starting at 1; undefined without affine.
  const Tensor& weight() const { return weight_; }
  /// Per-channel shift [C], starting at 0; undefined without affine.
  const Tensor& bias() const { return bias_; }
  /// Running mean [C]; undefined without track_running_stats.
  const Tensor& running_mean() const { return running_mean_; }
  /// Running unbiased variance [C]; undefined without track_running_stats.
  const Tensor& running_var() const { return running_var_; }
  /// Training batches seen (int64 0-d); undefined without track_running_stats.
  const Tensor& num_batches_tracked() const { return num_batches_tracked_; }

 protected:
  /// `expected_shape` names the accepted input in errors, formatted with num_features ("[N, {0}, H, W]").
  BatchNormBase(std::size_t num_features, BatchNormOptions options, std::string expected_shape);
  /// Whether `x` has the rank this layer normalizes.
  virtual bool accepts(const Tensor& x) const = 0;

 private:
  std::size_t num_features_;
  BatchNormOptions options_;
  std::string expected_shape_;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

/// x [N, C] or [N, C, L] → same shape, normalized per channel C.
class BatchNorm1d : public BatchNormBase {
 public:
  /// Over num_features channels; throws for 0 channels, eps <= 0 or momentum outside [0, 1].
  explicit BatchNorm1d(std::size_t num_features, BatchNormOptions options = {});

 protected:
  bool accepts(const Tensor& x) const override;
};

/// x [N, C, H, W] → same shape, normalized per channel C.
class BatchNorm2d : public BatchNormBase {
 public:
  /// Over num_features channels; throws for 0 channels, eps <= 0 or momentum outside [0, 1].
  explicit BatchNorm2d(std::size_t num_features, BatchNormOptions options = {});

 protected:
  bool accepts(const Tensor& x) const override;
};

}  // namespace tg::nn
