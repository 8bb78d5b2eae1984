#pragma once
// Differentiable shape ops. Results own their data (no views), so in-place changes never alias.
#include <cstdint>
#include <vector>

#include "tapegrad/autograd/broadcast.hpp"  // broadcast_to
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// Same elements in a new shape; one entry may be -1 (inferred).
Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape);
/// Collapses axes start_axis..end_axis into one.
Tensor flatten(const Tensor& x, int start_axis = 0, int end_axis = -1);
/// Reorders axes: result axis i is input axis perm[i].
Tensor permute(const Tensor& x, const std::vector<int>& perm);
/// Swaps two axes (default: the last two, so a 1-D tensor needs explicit axes, as in PyTorch).
Tensor transpose(const Tensor& x, int axis0 = -2, int axis1 = -1);
/// Drops size-1 axes (all of them, or the one given).
Tensor squeeze(const Tensor& x);
/// Drops axis `axis`; throws tg::Error unless its size is 1 (PyTorch would leave it).
Tensor squeeze(const Tensor& x, int axis);
/// Inserts a size-1 axis at `axis` (in the result's numbering).
Tensor unsqueeze(const Tensor& x, int axis);
/// Joins tensors along an existing axis.
Tensor concat(const TensorList& xs, int axis = 0);
/// Joins tensors along a new axis.
Tensor stack(const TensorList& xs, int axis = 0);
/// Elements start, start+step, ... below stop along `axis` (negative start/stop count from
/// the end, as in Python).
Tensor slice(const Tensor& x, int axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1);
/// Rows (along `axis`) picked by the int64 `index` (1-D); repeated indices add up in backward.
Tensor index_select(const Tensor& x, int axis, const Tensor& index);
/// out[i][j] = x[i][index[i][j]] along `axis` (index int64, same rank as x).
Tensor gather(const Tensor& x, int axis, const Tensor& index);

}  // namespace tg
