#pragma once
// Loss functions with PyTorch's reductions.
#include <cstdint>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// How a loss combines its per-element values: their mean, their sum, or none (kept per element).
enum class Reduction : std::uint8_t { mean, sum, none };

/// Options of cross_entropy: reduction and label smoothing ε in [0, 1] (the target becomes
/// (1-ε)·target + ε/C, as in PyTorch).
struct CrossEntropyOptions {
  /// How the per-sample losses combine (mean by default).
  Reduction reduction = Reduction::mean;
  /// ε in [0, 1]; 0 (the default) leaves the target as it is.
  double label_smoothing = 0.0;
};

/// Options of the other losses.
struct LossOptions {
  /// How the per-element losses combine (mean by default).
  Reduction reduction = Reduction::mean;
};

/// Cross-entropy on logits [N,C] (log_softmax fused in; stable for any logits) → scalar, or [N]
/// with Reduction::none. The target is either int64 class indices [N] in [0, C), or float
/// probabilities [N,C] (e.g. one-hot; Keras's categorical_crossentropy on logits), chosen by its
/// dtype. Differentiable in the logits (twice) and in probability targets.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options = {});

/// Negative log-likelihood: log_probs [N,C], int64 target [N] in [0, C) → mean/sum of
/// -log_probs[i, target[i]], or [N] with Reduction::none.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const LossOptions& options = {});

/// Mean squared error: input and target of the same shape → scalar, or that shape with none.
Tensor mse_loss(const Tensor& input, const Tensor& target, const LossOptions& options = {});

/// Binary cross-entropy on logits (sigmoid fused in, stable for any logits): logits and float
/// target in [0, 1] of the same shape → scalar, or that shape with none. Differentiable in both.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const LossOptions& options = {});

/// labels [...] int64 in [0, num_classes) → one-hot [..., num_classes] of `dtype` (Keras's
/// to_categorical). Not differentiable.
Tensor one_hot(const Tensor& labels, std::size_t num_classes, Dtype dtype = float32);

}  // namespace tg
