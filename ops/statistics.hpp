#pragma once
// Differentiable statistics with PyTorch's semantics: logsumexp, var and std (with PyTorch's
// `correction`), the vector p-norm (torch.linalg.vector_norm) and cumsum. Axes are as in
// ops/reduce.hpp: negative ones count from the end, and an empty list reduces over no axis
// (norm's default {} is the exception: all elements, as vector_norm's dim=None).
#include <concepts>
#include <cstdint>

#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/ops/reduce.hpp"

namespace tg {

/// log Σ exp(x) over `axes`, computed shifted by the maximum (stable): x [...] → the reduced
/// shape (float only). A slice of -inf gives -inf, one with +inf gives inf, NaN gives NaN; an
/// empty slice gives -inf. The gradient is g * softmax(x) over the slice; twice differentiable.
Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdims = false);

/// The variance over `axes`, Σ (x - mean)² / max(0, N - correction) with N the slice's size:
/// correction 1 is the unbiased estimate, 0 the population variance. x [...] → the reduced
/// shape (float only). When N - correction <= 0 the result is inf, or NaN for 0/0, as
/// PyTorch; the gradient is g * 2 (x - mean) / (N - correction), unclamped, as PyTorch's. Twice
/// differentiable.
Tensor var(const Tensor& x, const Axes& axes, std::int64_t correction = 1, bool keepdims = false);
/// sqrt(var(x, axes, correction, keepdims)). Under `using namespace tg`, call it tg::std (a bare
/// std( is ambiguous with the namespace; std:: names still work). The gradient is 0 where the result is 0 (PyTorch's
/// choice, not NaN). Twice differentiable.
Tensor std(const Tensor& x, const Axes& axes, std::int64_t correction = 1, bool keepdims = false);

// The all-elements forms with a correction are templates without a default, so that
// var(x, {1}) still means axis 1: a braced list cannot deduce I, which leaves the Axes overload.

namespace detail {
/// var (std when `root`) of all elements with `correction`: the templates below.
Tensor variance_of_all(const Tensor& x, std::int64_t correction, bool root);
}  // namespace detail

/// The unbiased variance of all elements → 0-d tensor (see var above).
Tensor var(const Tensor& x);
/// The variance of all elements with `correction` → 0-d tensor (see var above).
template <std::integral I>
Tensor var(const Tensor& x, I correction) {
  return detail::variance_of_all(x, static_cast<std::int64_t>(correction), false);
}
/// The unbiased standard deviation of all elements → 0-d tensor (see std above).
Tensor std(const Tensor& x);
/// The standard deviation of all elements with `correction` → 0-d tensor (see std above).
template <std::integral I>
Tensor std(const Tensor& x, I correction) {
  return detail::variance_of_all(x, static_cast<std::int64_t>(correction), true);
}

/// The vector p-norm over `axes` (all elements when empty), as torch.linalg.vector_norm: p = 2
/// (√Σx²), 1 (Σ|x|), inf (max |x|), -inf (min |x|), 0 (the count of nonzeros), otherwise
/// (Σ|x|^p)^(1/p). x [...] → the reduced shape (float only). Gradients as PyTorch's: 0 at a zero
/// norm for p = 2 (not NaN), shared evenly between tied maxima for inf, 0 for p = 0. Twice
/// differentiable (p = ±inf: piecewise). ±inf over an empty slice is an error (no identity).
Tensor norm(const Tensor& x, double p = 2.0, const Axes& axes = {}, bool keepdims = false);

/// Running sum along `axis`: out[..., i, ...] = Σ_{j <= i} x[..., j, ...], same shape and dtype
/// (float or int64; a 0-d tensor takes axis 0 or -1). The gradient is the reversed running sum of
/// g; twice differentiable.
Tensor cumsum(const Tensor& x, int axis);

}  // namespace tg
