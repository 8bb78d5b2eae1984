#include "tapegrad/nn/flatten.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg::nn {

Tensor Flatten::forward(const Tensor& x) {
  const auto rank = static_cast<int>(x.ndim());
  const int start = start_dim_ < 0 ? start_dim_ + rank : start_dim_;
  const int end = end_dim_ < 0 ? end_dim_ + rank : end_dim_;
  TG_CHECK(start >= 0 && end < rank && start <= end, "{}: expected an input with axes {}..{}, got shape {}", repr(),
           start_dim_, end_dim_, shape_str(x.shape()));
  return flatten(x, start, end);
}

std::string Flatten::extra_repr() const { return fmt::format("start_dim={}, end_dim={}", start_dim_, end_dim_); }

}  // namespace tg::nn
