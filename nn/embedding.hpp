#pragma once
// Embedding: a learned table of vectors looked up by integer index (Keras's and PyTorch's Embedding).
#include <cstdint>
#include <optional>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// Options of Embedding.
struct EmbeddingOptions {
  /// An index whose row gets no gradient and starts at zeros (e.g. the padding token); negative
  /// counts from num_embeddings.
  std::optional<std::int64_t> padding_idx = std::nullopt;
  Generator* generator = nullptr;  ///< for the initial weights; default_generator() if null
};

/// indices int64 [...] → [..., embedding_dim]: row weight[i] for each index. The weight
/// [num_embeddings, embedding_dim] starts N(0, 1), as torch.nn.Embedding (padding row zero).
class Embedding : public Module {
 public:
  /// Both sizes positive; padding_idx within [-num_embeddings, num_embeddings) (throws otherwise).
  Embedding(std::size_t num_embeddings, std::size_t embedding_dim, EmbeddingOptions options = {});
  /// indices int64 [...] (each in [0, num_embeddings)) → [..., embedding_dim]; throws otherwise.
  Tensor forward(const Tensor& indices) override;
  /// "10, 3, padding_idx=0", as PyTorch.
  std::string extra_repr() const override;

  /// The table [num_embeddings, embedding_dim].
  const Tensor& weight() const { return weight_; }
  /// The padding row (non-negative), if any.
  std::optional<std::int64_t> padding_idx() const { return padding_idx_; }

 private:
  std::size_t num_embeddings_, embedding_dim_;
  std::optional<std::int64_t> padding_idx_;
  Tensor weight_;
};

}  // namespace tg::nn
