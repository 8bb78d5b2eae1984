#pragma once
// Dropout layer: zeroes random elements in training, the identity in evaluation.
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// x [any] → [same]: in train mode each element is zeroed with probability p and the others
/// scaled by 1/(1-p); in eval mode x. The masks come from `generator` (default_generator() if
/// null), which must outlive the layer.
class Dropout : public Module {
 public:
  /// p in [0, 1) (throws otherwise); generator: the masks' source, default_generator() if null.
  explicit Dropout(double p = 0.5, Generator* generator = nullptr);
  /// x with dropout applied in train mode, x itself in eval mode.
  Tensor forward(const Tensor& x) override;
  /// "p=0.5".
  std::string extra_repr() const override;
  /// The probability of zeroing an element.
  double p() const { return p_; }

 private:
  double p_;
  Generator* generator_;
};

}  // namespace tg::nn
