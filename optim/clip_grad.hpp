#pragma once
// Gradient clipping over a list of parameters (PyTorch's torch.nn.utils.clip_grad_*).
#include <limits>

#include "tapegrad/autograd/tensor.hpp"

namespace tg::optim {

/// The norm of all gradients together (norm_type p > 0, or infinity for the largest |g|);
/// when it exceeds max_norm, every gradient is scaled by max_norm / (norm + 1e-6). Parameters
/// without a gradient are skipped. Returns the norm before clipping. With error_if_nonfinite, a
/// NaN or infinite norm throws instead of scaling.
double clip_grad_norm_(const TensorList& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element into [-clip_value, clip_value].
void clip_grad_value_(const TensorList& params, double clip_value);

}  // namespace tg::optim
