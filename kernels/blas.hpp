#pragma once
// Matrix products: float32 on oneDNN's sgemm, float64 on OpenBLAS's dgemm, split over tapegrad's
// threads when large.
#include <cstddef>

namespace tg::kernels {

/// C = alpha * op(A) @ op(B) + beta * C for row-major contiguous matrices (T float or double):
/// op(A) [m, k], op(B) [k, n], C [m, n]. Runs inside parallel loops too; never throws.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a, std::size_t lda,
          const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc);

}  // namespace tg::kernels
