#pragma once
// Flatten: collapses axes, by default all but the batch axis (Keras's Flatten).
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// x [N, d1, d2, ...] → [N, d1*d2*...] (axes start_dim..end_dim collapsed; negative from the end).
class Flatten : public Module {
 public:
  /// Collapses axes start_dim..end_dim (negative ones count from the end).
  explicit Flatten(int start_dim = 1, int end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  /// x with axes start_dim..end_dim collapsed into one; throws when x lacks them.
  Tensor forward(const Tensor& x) override;
  /// "start_dim=1, end_dim=-1".
  std::string extra_repr() const override;
  /// The first axis collapsed.
  int start_dim() const { return start_dim_; }
  /// The last axis collapsed.
  int end_dim() const { return end_dim_; }

 private:
  int start_dim_;
  int end_dim_;
};

}  // namespace tg::nn
