#include "tapegrad/nn/conv.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/nn/flatten.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/nn/pooling.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg::nn {

Conv2d::Conv2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size, Conv2dOptions options)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), options_(options) {
  TG_CHECK(in_channels > 0 && out_channels > 0, "Conv2d: channels must be positive, got in {} and out {}", in_channels,
           out_channels);
  TG_CHECK(kernel_size.h > 0 && kernel_size.w > 0, "Conv2d: kernel_size must be positive, got ({}, {})", kernel_size.h,
           kernel_size.w);
  const auto groups = options.groups;
  TG_CHECK(groups > 0 && in_channels % std::size_t(groups) == 0 && out_channels % std::size_t(groups) == 0,
           "Conv2d: groups ({}) must be positive and divide in_channels ({}) and out_channels ({})", groups,
           in_channels, out_channels);
  options_.generator = nullptr;  // only used here; not kept, so copies never point at a dead generator
  Generator& gen = options.generator ? *options.generator : default_generator();
  weight_ = register_parameter("weight", zeros({out_channels, in_channels / std::size_t(groups),
                                                std::size_t(kernel_size.h), std::size_t(kernel_size.w)}));
  init::glorot_uniform_(weight_, gen);
  if (options.bias) bias_ = register_parameter("bias", zeros({out_channels}));
  if (options.kernel_regularizer) add_regularizer(weight_, *options.kernel_regularizer);
  if (options.bias_regularizer && bias_.defined()) add_regularizer(bias_, *options.bias_regularizer);
}

namespace {
tg::Conv2dArgs op_options(const Conv2dOptions& o) {
  return {.stride = o.stride, .padding = o.padding, .dilation = o.dilation, .groups = o.groups};
}
}  // namespace

void Conv2d::check_input(const Tensor& x) const {
  TG_CHECK(x.ndim() == 4 && x.shape(1) == in_channels_, "{}: expected input [N, {}, H, W] or [{}, H, W], got {}",
           repr(), in_channels_, in_channels_, shape_str(x.shape()));
}

Tensor Conv2d::forward(const Tensor& x) {
  // One unbatched image [C, H, W] runs as a batch of one, as in PyTorch.
  if (x.ndim() == 3) return squeeze(forward(unsqueeze(x, 0)), 0);
  check_input(x);
  if (options_.activation == Activation::relu) return conv2d_relu(x, weight_, bias_, op_options(options_));  // fused
  return apply_activation(options_.activation, conv2d(x, weight_, bias_, op_options(options_)));
}

Module::Chained Conv2d::forward_chain(const Tensor& x, std::span<const std::shared_ptr<Module>> next) {
  // Only Conv2d's own forward, MaxPool2d's and Flatten's are known to be what the fused op computes.
  if (!is_exactly<Conv2d>() || options_.activation != Activation::relu || next.empty() ||
      !next[0]->is_exactly<MaxPool2d>() || x.ndim() != 4)
    return Module::forward_chain(x, next);
  const auto& pool = static_cast<const MaxPool2d&>(*next[0]);
  const bool flatten =
      next.size() > 1 && next[1]->is_exactly<Flatten>() && static_cast<const Flatten&>(*next[1]).start_dim() == 1 &&
      (static_cast<const Flatten&>(*next[1]).end_dim() == -1 || static_cast<const Flatten&>(*next[1]).end_dim() == 3);
  check_input(x);
  if (flatten) return {conv2d_relu_max_pool2d_flatten(x, weight_, bias_, op_options(options_), pool.options()), 2};
  return {conv2d_relu_max_pool2d(x, weight_, bias_, op_options(options_), pool.options()), 1};
}

std::string Conv2d::extra_repr() const {
  std::string s = fmt::format("{}, {}, kernel_size=({}, {}), stride=({}, {})", in_channels_, out_channels_,
                              kernel_size_.h, kernel_size_.w, options_.stride.h, options_.stride.w);
  const Padding& p = options_.padding;
  if (p.kind == Padding::Kind::valid)
    s += ", padding=valid";
  else if (p.kind == Padding::Kind::same)
    s += ", padding=same";
  else if (p.size.h != 0 || p.size.w != 0)
    s += fmt::format(", padding=({}, {})", p.size.h, p.size.w);
  if (options_.dilation.h != 1 || options_.dilation.w != 1)
    s += fmt::format(", dilation=({}, {})", options_.dilation.h, options_.dilation.w);
  if (options_.groups != 1) s += fmt::format(", groups={}", options_.groups);
  if (!bias_.defined()) s += ", bias=false";
  if (options_.activation != Activation::none) s += ", activation=" + activation_name(options_.activation);
  return s;
}

namespace {
// The checks Conv1d and ConvTranspose2d share with Conv2d: positive sizes, groups dividing both.
void check_channels(std::string_view layer, std::size_t in, std::size_t out, std::int64_t groups) {
  TG_CHECK(in > 0 && out > 0, "{}: channels must be positive, got in {} and out {}", layer, in, out);
  TG_CHECK(groups > 0 && in % std::size_t(groups) == 0 && out % std::size_t(groups) == 0,
           "{}: groups ({}) must be positive and divide in_channels ({}) and out_channels ({})", layer, groups, in,
           out);
}
}  // namespace

Conv1d::Conv1d(std::size_t in_channels, std::size_t out_channels, std::size_t kernel_size, Conv1dOptions options)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), options_(options) {
  check_channels("Conv1d", in_channels, out_channels, options.groups);
  TG_CHECK(kernel_size > 0, "Conv1d: kernel_size must be positive");
  options_.generator = nullptr;  // not kept: copies never point at a dead generator
  weight_ = register_parameter("weight", zeros({out_channels, in_channels / std::size_t(options.groups), kernel_size}));
  init::glorot_uniform_(weight_, options.generator ? *options.generator : default_generator());
  if (options.bias) bias_ = register_parameter("bias", zeros({out_channels}));
}

Tensor Conv1d::forward(const Tensor& x) {
  if (x.ndim() == 2) return squeeze(forward(unsqueeze(x, 0)), 0);  // unbatched, as PyTorch
  TG_CHECK(x.ndim() == 3 && x.shape(1) == in_channels_, "{}: expected input [N, {}, L] or [{}, L], got {}", repr(),
           in_channels_, in_channels_, shape_str(x.shape()));
  return conv1d(x, weight_, bias_,
                {.stride = options_.stride,
                 .padding = options_.padding,
                 .dilation = options_.dilation,
                 .groups = options_.groups});
}

std::string Conv1d::extra_repr() const {
  std::string s = fmt::format("{}, {}, kernel_size=({},), stride=({},)", in_channels_, out_channels_, kernel_size_,
                              options_.stride);
  const Padding& p = options_.padding;
  if (p.kind != Padding::Kind::explicit_size)
    s += p.kind == Padding::Kind::valid ? ", padding=valid" : ", padding=same";
  else if (p.size.w != 0)
    s += fmt::format(", padding=({},)", p.size.w);
  if (options_.dilation != 1) s += fmt::format(", dilation=({},)", options_.dilation);
  if (options_.groups != 1) s += fmt::format(", groups={}", options_.groups);
  if (!bias_.defined()) s += ", bias=false";
  return s;
}

ConvTranspose2d::ConvTranspose2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size,
                                 ConvTranspose2dOptions options)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), options_(options) {
  check_channels("ConvTranspose2d", in_channels, out_channels, options.groups);
  TG_CHECK(kernel_size.h > 0 && kernel_size.w > 0, "ConvTranspose2d: kernel_size must be positive, got ({}, {})",
           kernel_size.h, kernel_size.w);
  options_.generator = nullptr;
  weight_ = register_parameter("weight", zeros({in_channels, out_channels / std::size_t(options.groups),
                                                std::size_t(kernel_size.h), std::size_t(kernel_size.w)}));
  init::glorot_uniform_(weight_, options.generator ? *options.generator : default_generator());
  if (options.bias) bias_ = register_parameter("bias", zeros({out_channels}));
}

Tensor ConvTranspose2d::forward(const Tensor& x) {
  if (x.ndim() == 3) return squeeze(forward(unsqueeze(x, 0)), 0);
  TG_CHECK(x.ndim() == 4 && x.shape(1) == in_channels_, "{}: expected input [N, {}, H, W] or [{}, H, W], got {}",
           repr(), in_channels_, in_channels_, shape_str(x.shape()));
  return conv_transpose2d(x, weight_, bias_,
                          {.stride = options_.stride,
                           .padding = options_.padding,
                           .output_padding = options_.output_padding,
                           .dilation = options_.dilation,
                           .groups = options_.groups});
}

std::string ConvTranspose2d::extra_repr() const {
  const auto& o = options_;
  std::string s = fmt::format("{}, {}, kernel_size=({}, {}), stride=({}, {})", in_channels_, out_channels_,
                              kernel_size_.h, kernel_size_.w, o.stride.h, o.stride.w);
  if (o.padding.h != 0 || o.padding.w != 0) s += fmt::format(", padding=({}, {})", o.padding.h, o.padding.w);
  if (o.output_padding.h != 0 || o.output_padding.w != 0)
    s += fmt::format(", output_padding=({}, {})", o.output_padding.h, o.output_padding.w);
  if (o.groups != 1) s += fmt::format(", groups={}", o.groups);
  if (!bias_.defined()) s += ", bias=false";
  if (o.dilation.h != 1 || o.dilation.w != 1) s += fmt::format(", dilation=({}, {})", o.dilation.h, o.dilation.w);
  return s;
}

}  // namespace tg::nn
