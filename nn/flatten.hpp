#pragma once
// Flatten: collapses axes, by default all but the batch axis (Keras's Flatten).
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// x [N, d1, d2, ...] → [N, d1*d2*...] (axes start_dim..end_dim collapsed; negative from the end).
class Flatten : public Module {
 public:
  explicit Flatten(int start_dim = 1, int end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int start_dim() const { return start_dim_; }
  int end_dim() const { return end_dim_; }

 private:
  int start_dim_;
  int end_dim_;
};

}  // namespace tg::nn
