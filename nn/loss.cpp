#include "tapegrad/nn/loss.hpp"

#include <fmt/format.h>

#include "tapegrad/autograd/check.hpp"

namespace tg::nn {

std::string reduction_name(Reduction r) {
  switch (r) {
    case Reduction::mean:
      return "mean";
    case Reduction::sum:
      return "sum";
    case Reduction::none:
      return "none";
  }
  return "?";
}

std::string Loss::repr() const { return name() + "(" + extra_repr() + ")"; }

CrossEntropyLoss::CrossEntropyLoss(CrossEntropyOptions options) : options_(options) {
  TG_CHECK(options.label_smoothing >= 0 && options.label_smoothing <= 1,
           "CrossEntropyLoss: label_smoothing must be in [0, 1], got {}", options.label_smoothing);
}
Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target) const {
  return cross_entropy(input, target, options_);
}
std::string CrossEntropyLoss::extra_repr() const {
  std::string s = "reduction=" + reduction_name(options_.reduction);
  if (options_.label_smoothing != 0) s += fmt::format(", label_smoothing={}", options_.label_smoothing);
  return s;
}

Tensor NLLLoss::forward(const Tensor& input, const Tensor& target) const { return nll_loss(input, target, options_); }
std::string NLLLoss::extra_repr() const { return "reduction=" + reduction_name(options_.reduction); }

Tensor MSELoss::forward(const Tensor& input, const Tensor& target) const { return mse_loss(input, target, options_); }
std::string MSELoss::extra_repr() const { return "reduction=" + reduction_name(options_.reduction); }

Tensor BCEWithLogitsLoss::forward(const Tensor& input, const Tensor& target) const {
  return binary_cross_entropy_with_logits(input, target, options_);
}
std::string BCEWithLogitsLoss::extra_repr() const { return "reduction=" + reduction_name(options_.reduction); }

}  // namespace tg::nn
