#pragma once
// Matrix products through BLAS (cblas_sgemm / cblas_dgemm).
#include "autograd/tensor.hpp"

namespace tg {

/// a [M,K] @ b [K,N] → [M,N]; batched: a [...,M,K] @ b [...,K,N] → [...,M,N] with the batch
/// dims broadcast. 1-D operands act as a row (a) or a column (b) vector, as in NumPy.
Tensor matmul(const Tensor& a, const Tensor& b);

/// x [...,in] @ weight[out,in]^T + bias[out] → [...,out], in one GEMM (bias may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

namespace blas {
/// C = alpha * op(A) @ op(B) + beta * C for row-major contiguous matrices (T float or double).
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha,
          const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc);
}  // namespace blas

}  // namespace tg
