#pragma once
// Matrix products (kernels/blas.hpp).
#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// a [M,K] @ b [K,N] → [M,N]; batched: a [...,M,K] @ b [...,K,N] → [...,M,N] with the batch
/// dims broadcast. 1-D operands act as a row (a) or a column (b) vector, as in NumPy.
Tensor matmul(const Tensor& a, const Tensor& b);

/// x [...,in] @ weight[out,in]^T + bias[out] → [...,out], in one GEMM (bias may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

}  // namespace tg
