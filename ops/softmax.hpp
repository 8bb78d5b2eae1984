#pragma once
// softmax and log_softmax over one axis, shifted by the maximum so that logits of ±1e4 stay finite.
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// x [..., C, ...] → same shape: exp(x - max) / Σ exp(x - max) along `axis`. Twice differentiable.
Tensor softmax(const Tensor& x, int axis = -1);

/// x [..., C, ...] → same shape: x - max - log Σ exp(x - max) along `axis`. Twice differentiable.
Tensor log_softmax(const Tensor& x, int axis = -1);

}  // namespace tg
