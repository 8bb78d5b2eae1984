#include "tapegrad/nn/batchnorm.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/norm.hpp"

namespace tg::nn {

BatchNormBase::BatchNormBase(std::size_t num_features, BatchNormOptions options, std::string expected_shape)
    : num_features_(num_features), options_(options), expected_shape_(std::move(expected_shape)) {
  TG_CHECK(num_features > 0, "BatchNorm: num_features must be positive, got {}", num_features);
  TG_CHECK(options.eps > 0, "BatchNorm: eps must be > 0, got {}", options.eps);
  TG_CHECK(options.momentum >= 0 && options.momentum <= 1, "BatchNorm: momentum must be in [0, 1], got {}",
           options.momentum);
  if (options.affine) {
    weight_ = register_parameter("weight", ones({num_features}));
    bias_ = register_parameter("bias", zeros({num_features}));
  }
  if (options.track_running_stats) {
    running_mean_ = register_buffer("running_mean", zeros({num_features}));
    running_var_ = register_buffer("running_var", ones({num_features}));
    num_batches_tracked_ = register_buffer("num_batches_tracked", zeros({}, int64));
  }
}

Tensor BatchNormBase::forward(const Tensor& x) {
  TG_CHECK(accepts(x) && x.shape(1) == num_features_, "{}: expected input {}, got {}", repr(),
           fmt::format(fmt::runtime(expected_shape_), num_features_), shape_str(x.shape()));
  const bool use_batch_stats = is_training() || !options_.track_running_stats;
  if (is_training() && options_.track_running_stats) {
    NoGradGuard no_grad;
    num_batches_tracked_.mutable_array<std::int64_t>()() += 1;
  }
  // Without running statistics the op normalizes by the batch's in both modes.
  const Tensor mean = options_.track_running_stats ? running_mean_ : Tensor();
  const Tensor var = options_.track_running_stats ? running_var_ : Tensor();
  return batch_norm(x, mean, var, weight_, bias_,
                    {.training = use_batch_stats, .momentum = options_.momentum, .eps = options_.eps});
}

std::string BatchNormBase::extra_repr() const {
  return fmt::format("{}, eps={}, momentum={}, affine={}, track_running_stats={}", num_features_, options_.eps,
                     options_.momentum, options_.affine, options_.track_running_stats);
}

BatchNorm1d::BatchNorm1d(std::size_t num_features, BatchNormOptions options)
    : BatchNormBase(num_features, options, "[N, {0}] or [N, {0}, L]") {}
bool BatchNorm1d::accepts(const Tensor& x) const { return x.ndim() == 2 || x.ndim() == 3; }

BatchNorm2d::BatchNorm2d(std::size_t num_features, BatchNormOptions options)
    : BatchNormBase(num_features, options, "[N, {0}, H, W]") {}
bool BatchNorm2d::accepts(const Tensor& x) const { return x.ndim() == 4; }

}  // namespace tg::nn
