#pragma once
// Embedding lookup: rows of a table picked by integer indices.
#include <cstdint>
#include <optional>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// indices int64 [...] and weight [V, D] → [..., D]: row weight[i] for each index i (0 <= i < V).
/// The gradient adds each output row back into its table row (repeated indices add up), except
/// at padding_idx (negative counts from V), whose row gets none, as torch's embedding. Twice
/// differentiable in weight.
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<std::int64_t> padding_idx = std::nullopt);

}  // namespace tg
