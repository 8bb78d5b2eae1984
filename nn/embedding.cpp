#include "tapegrad/nn/embedding.hpp"

#include <xtensor/xview.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/ops/embedding.hpp"

namespace tg::nn {

Embedding::Embedding(std::size_t num_embeddings, std::size_t embedding_dim, EmbeddingOptions options)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  TG_CHECK(num_embeddings > 0 && embedding_dim > 0,
           "Embedding: num_embeddings and embedding_dim must be positive, got {} and {}", num_embeddings,
           embedding_dim);
  const auto n = static_cast<std::int64_t>(num_embeddings);
  if (options.padding_idx) {
    const std::int64_t p = *options.padding_idx;
    TG_CHECK(p >= -n && p < n, "Embedding: padding_idx must be within [{}, {}), got {}", -n, n, p);
    padding_idx_ = p < 0 ? p + n : p;
  }
  Tensor table = zeros({num_embeddings, embedding_dim});
  init::normal_(table, 0.0, 1.0, options.generator ? *options.generator : default_generator());
  if (padding_idx_) xt::view(table.mutable_array<float>(), static_cast<std::size_t>(*padding_idx_)) = 0.0f;
  weight_ = register_parameter("weight", table);
}

Tensor Embedding::forward(const Tensor& indices) {
  TG_CHECK(indices.dtype() == int64, "{}: expected int64 indices, got {} {}", repr(), indices.dtype(),
           shape_str(indices.shape()));
  return embedding(indices, weight_, padding_idx_);
}

std::string Embedding::extra_repr() const {
  std::string s = fmt::format("{}, {}", num_embeddings_, embedding_dim_);
  if (padding_idx_) s += fmt::format(", padding_idx={}", *padding_idx_);
  return s;
}

}  // namespace tg::nn
