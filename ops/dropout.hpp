#pragma once
// Dropout with inverted scaling.
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// x [any] → [same]: in training, each element is zeroed with probability p and the kept ones
/// are scaled by 1/(1-p), so the expectation is unchanged; when not training, x itself. The mask
/// comes from `gen` (reproducible from its seed). p must be in [0, 1).
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace tg
