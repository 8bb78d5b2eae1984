#pragma once
// Sorting along an axis, PyTorch style: sort and topk return the values and their int64
// indices. NaN counts as larger than every number (it sorts last ascending, first descending,
// and is picked first by topk with largest), as in PyTorch.
#include <cstdint>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// What sort and topk return: the selected values, and where each came from along the axis.
struct ValuesIndices {
  Tensor values;   ///< x's dtype; differentiable (the gradient goes back through `indices`)
  Tensor indices;  ///< int64, values.shape()
};

/// x [..., N, ...] sorted along `axis`: values and indices of x's shape. Stable (equal values
/// keep their order, as torch.sort(stable=True)), also when descending. Any dtype; a 0-d tensor
/// is its own sort. The gradient scatters g back through the indices; twice differentiable.
ValuesIndices sort(const Tensor& x, int axis = -1, bool descending = false);

/// The k largest (largest = true) or smallest elements along `axis`: x [..., N, ...] → values
/// and indices [..., k, ...], in sorted order (sorted = false gives the same order, which
/// PyTorch also permits). Ties keep their order along the axis. 0 <= k <= N, else an error.
/// The gradient scatters g back through the indices; twice differentiable.
ValuesIndices topk(const Tensor& x, std::int64_t k, int axis = -1, bool largest = true, bool sorted = true);

}  // namespace tg
