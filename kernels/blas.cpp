// The one translation unit that runs GEMMs: float32 through oneDNN's sgemm (its JIT kernels,
// chosen for the CPU at run time, measured 1.1-3x faster than OpenBLAS's on every shape tapegrad
// makes, most on the thin products of small dense layers: [32, 5408] x [5408, 10] 88 -> 50 us),
// float64 through OpenBLAS's dgemm.
#include "tapegrad/kernels/blas.hpp"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>

#include "tapegrad/kernels/omp_guard.hpp"
#include "tapegrad/kernels/parallel.hpp"

namespace tg::kernels {
namespace {

void call(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  // Empty products (which BLAS defines: C = beta*C) and anything oneDNN declines go to
  // OpenBLAS; nothing here may throw, as it runs inside parallel loops.
  if (m > 0 && n > 0 && k > 0) {
    const OneOpenMPThread one_thread;  // tapegrad splits large products itself
    if (dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', static_cast<dnnl_dim_t>(m), static_cast<dnnl_dim_t>(n),
                   static_cast<dnnl_dim_t>(k), alpha, a, static_cast<dnnl_dim_t>(lda), b, static_cast<dnnl_dim_t>(ldb),
                   beta, c, static_cast<dnnl_dim_t>(ldc)) == dnnl_success)
      return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void call(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Whether the product runs as one call that threads itself: OpenBLAS (float64) with more than one
// thread of its own, as its user (or OPENBLAS_NUM_THREADS) set it. Splitting it over tapegrad's
// threads as well would run threads on threads.
bool threads_itself(double) { return openblas_get_num_threads() > 1; }
bool threads_itself(float) { return false; }  // oneDNN runs on one thread per call here

// C (m x n) split into blocks of rows, or of columns when n is the larger side, one block per
// thread. Below about half a million multiply-adds per thread one call on one thread is faster.
template <class T>
void split_gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
                std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  if (threads_itself(T{})) return call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  constexpr std::size_t min_work = std::size_t{1} << 19;  // multiply-adds per thread
  const std::size_t work = m * n * std::max<std::size_t>(k, 1);
  const bool by_rows = m >= n;
  const std::size_t side = by_rows ? m : n;
  // Blocks of a multiple of 16 rows or columns keep the BLAS kernels on whole register tiles.
  const std::size_t units = (side + 15) / 16;
  const std::size_t per_unit = std::max<std::size_t>(work / std::max<std::size_t>(units, 1), 1);
  const std::size_t min_units = std::max<std::size_t>(min_work / per_unit, 1);
  parallel_for(units, min_units, [&](std::size_t begin, std::size_t end) {
    const std::size_t lo = begin * 16, hi = std::min(end * 16, side);
    if (by_rows) {
      const T* a_rows = trans_a ? a + lo : a + lo * lda;
      call(trans_a, trans_b, hi - lo, n, k, alpha, a_rows, lda, b, ldb, beta, c + lo * ldc, ldc);
    } else {
      const T* b_cols = trans_b ? b + lo * ldb : b + lo;
      call(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, b_cols, ldb, beta, c + lo, ldc);
    }
  });
}

}  // namespace

template <>
void gemm<float>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
                 std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  split_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <>
void gemm<double>(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
                  const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta, double* c,
                  std::size_t ldc) {
  split_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace tg::kernels
