#include "tapegrad/nn/layernorm.hpp"

#include <fmt/ranges.h>

#include <algorithm>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/norm.hpp"

namespace tg::nn {
LayerNorm::LayerNorm(Shape normalized_shape, LayerNormOptions options)
    : normalized_shape_(std::move(normalized_shape)), options_(options) {
  TG_CHECK(!normalized_shape_.empty() &&
               std::find(normalized_shape_.begin(), normalized_shape_.end(), 0) == normalized_shape_.end(),
           "LayerNorm: normalized_shape must be non-empty without zero sizes, got {}", shape_str(normalized_shape_));
  TG_CHECK(options.eps >= 0, "LayerNorm: eps must not be negative, got {}", options.eps);
  if (options.elementwise_affine) {
    weight_ = register_parameter("weight", ones(normalized_shape_));
    if (options.bias) bias_ = register_parameter("bias", zeros(normalized_shape_));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  const std::size_t k = normalized_shape_.size();
  TG_CHECK(x.ndim() >= k && std::equal(normalized_shape_.begin(), normalized_shape_.end(), x.shape().end() - k),
           "{}: expected input [..., {}], got {}", repr(), fmt::join(normalized_shape_, ", "), shape_str(x.shape()));
  return layer_norm(x, normalized_shape_, weight_, bias_, options_.eps);
}

std::string LayerNorm::extra_repr() const {
  // Python's tuple: (64,) but (4, 5).
  std::string dims = fmt::format("{}", fmt::join(normalized_shape_, ", "));
  if (normalized_shape_.size() == 1) dims += ",";
  return fmt::format("({}), eps={}, elementwise_affine={}", dims, options_.eps, options_.elementwise_affine);
}

GroupNorm::GroupNorm(std::size_t num_groups, std::size_t num_channels, GroupNormOptions options)
    : num_groups_(num_groups), num_channels_(num_channels), options_(options) {
  TG_CHECK(num_groups > 0 && num_channels > 0 && num_channels % num_groups == 0,
           "GroupNorm: num_channels must be a positive multiple of num_groups, got {} channels in {} groups",
           num_channels, num_groups);
  TG_CHECK(options.eps >= 0, "GroupNorm: eps must not be negative, got {}", options.eps);
  if (options.affine) {
    weight_ = register_parameter("weight", ones({num_channels}));
    bias_ = register_parameter("bias", zeros({num_channels}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) {
  TG_CHECK(x.ndim() >= 2 && x.shape(1) == num_channels_, "{}: expected input [N, {}, ...], got {}", repr(),
           num_channels_, shape_str(x.shape()));
  return group_norm(x, num_groups_, weight_, bias_, options_.eps);
}

std::string GroupNorm::extra_repr() const {
  return fmt::format("{}, {}, eps={}, affine={}", num_groups_, num_channels_, options_.eps, options_.affine);
}

}  // namespace tg::nn
