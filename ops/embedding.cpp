// embedding is index_select on the flattened indices; the padding row's gradient is cut by taking
// the looked-up rows from a detached table where the index is padding_idx (same values, no path).
#include "tapegrad/ops/embedding.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<std::int64_t> padding_idx) {
  TG_CHECK(weight.ndim() == 2, "embedding: expected weight [num_embeddings, embedding_dim], got {}",
           shape_str(weight.shape()));
  TG_CHECK(indices.dtype() == int64, "embedding: expected int64 indices, got {} {}", indices.dtype(),
           shape_str(indices.shape()));
  const auto v = static_cast<std::int64_t>(weight.shape(0));
  const Shape index_shape = indices.shape();
  std::vector<std::int64_t> out_shape(index_shape.begin(), index_shape.end());
  out_shape.push_back(static_cast<std::int64_t>(weight.shape(1)));
  for (std::int64_t i : indices.array<std::int64_t>())
    TG_CHECK(i >= 0 && i < v, "embedding: index {} is out of range for weight {} (0 <= index < {})", i,
             shape_str(weight.shape()), v);
  const Tensor flat = reshape(indices, {-1});
  Tensor rows = index_select(weight, 0, flat);
  if (padding_idx) {
    std::int64_t pad = *padding_idx;
    TG_CHECK(pad >= -v && pad < v, "embedding: padding_idx {} is out of range for {} embeddings", pad, v);
    if (pad < 0) pad += v;
    const Tensor keep = reshape(ne(flat, scalar_tensor(static_cast<double>(pad), int64)), {-1, 1});
    rows = where(keep, rows, index_select(weight.detach(), 0, flat));
  }
  return reshape(rows, out_shape);
}

}  // namespace tg
