#include "tapegrad/nn/pooling.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg::nn {
namespace {
void check_nchw(const Module& m, const Tensor& x) {
  TG_CHECK(x.ndim() == 4, "{}: expected input [N, C, H, W], got {}", m.repr(), shape_str(x.shape()));
}
// pool(x) on [N, C, H, W], or on one unbatched [C, H, W] as a batch of one, as in PyTorch.
template <class Pool>
Tensor pool_batched_or_not(const Module& m, const Tensor& x, Pool pool) {
  if (x.ndim() == 3) return squeeze(pool(unsqueeze(x, 0)), 0);
  TG_CHECK(x.ndim() == 4, "{}: expected input [N, C, H, W] or [C, H, W], got {}", m.repr(), shape_str(x.shape()));
  return pool(x);
}
std::string window_repr(Size2 kernel, const std::optional<Size2>& stride, Size2 padding) {
  const Size2 s = stride.value_or(kernel);
  return fmt::format("kernel_size=({}, {}), stride=({}, {}), padding=({}, {})", kernel.h, kernel.w, s.h, s.w, padding.h,
                     padding.w);
}
}  // namespace

MaxPool2d::MaxPool2d(Size2 kernel_size, std::optional<Size2> stride, Size2 padding)
    : options_{.kernel = kernel_size, .stride = stride, .padding = padding} {}

Tensor MaxPool2d::forward(const Tensor& x) {
  return pool_batched_or_not(*this, x, [this](const Tensor& b) { return max_pool2d(b, options_); });
}

std::string MaxPool2d::extra_repr() const { return window_repr(options_.kernel, options_.stride, options_.padding); }

AvgPool2d::AvgPool2d(Size2 kernel_size, std::optional<Size2> stride, Size2 padding, bool count_include_pad)
    : options_{.kernel = kernel_size, .stride = stride, .padding = padding, .count_include_pad = count_include_pad} {}

Tensor AvgPool2d::forward(const Tensor& x) {
  return pool_batched_or_not(*this, x, [this](const Tensor& b) { return avg_pool2d(b, options_); });
}

std::string AvgPool2d::extra_repr() const {
  std::string s = window_repr(options_.kernel, options_.stride, options_.padding);
  if (!options_.count_include_pad) s += ", count_include_pad=false";
  return s;
}

Tensor GlobalAvgPool2d::forward(const Tensor& x) {
  check_nchw(*this, x);
  return global_avg_pool2d(x);
}

}  // namespace tg::nn
