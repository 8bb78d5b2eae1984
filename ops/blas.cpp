// The one translation unit that runs GEMMs: float32 through oneDNN's sgemm (its JIT AVX-512
// kernels measured 1.1-3x faster than OpenBLAS's here on every shape tapegrad makes, most on the
// thin products of small dense layers: [32, 5408] x [5408, 10] 88 -> 50 us), float64 through
// OpenBLAS's dgemm.
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>

#include "autograd/parallel.hpp"
#include "ops/linalg.hpp"

// OpenBLAS's own (exported, undocumented in cblas.h) call that stops its worker threads.
extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

namespace tg::blas {
namespace {

// OpenBLAS always runs on one thread here; tapegrad splits a large product across its own
// pool instead. OpenBLAS's workers spin on the CPU after each threaded call, and between two
// GEMMs of a training step they took that CPU from tapegrad's own parallel loops: with 2
// threads a step was slower than with 1.
const bool single_threaded_blas = [] {
  openblas_set_num_threads(1);
  // OpenBLAS's pthread build starts its workers when it loads, and they spin for ~0.1 s before
  // sleeping: on 2 cores that halves tapegrad's second thread for that long (a short program
  // saw no gain from 2 threads). Stopping them (as OpenBLAS does itself around fork) is safe:
  // a later threaded call starts them again. Weak, for builds without a thread server. (It
  // assumes no other thread is inside a threaded OpenBLAS call while tapegrad loads.)
  if (blas_thread_shutdown_) blas_thread_shutdown_();
  return true;
}();

void call(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  // Empty products (which BLAS defines: C = beta*C) and anything oneDNN declines go to
  // OpenBLAS; nothing here may throw, as it runs inside parallel loops.
  if (m > 0 && n > 0 && k > 0) {
    omp_set_num_threads(1);  // one thread per call: tapegrad splits large products itself
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

// C (m x n) split into blocks of rows, or of columns when n is the larger side, one block per
// thread. Below about a million multiply-adds one call on one thread is faster.
template <class T>
void split_gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
                std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  (void)single_threaded_blas;
  constexpr std::size_t min_work = std::size_t{1} << 19;  // multiply-adds per thread
  const std::size_t work = m * n * std::max<std::size_t>(k, 1);
  const bool by_rows = m >= n;
  const std::size_t side = by_rows ? m : n;
  // Blocks of a multiple of 16 rows or columns keep the BLAS kernels on whole register tiles.
  const std::size_t units = (side + 15) / 16;
  const std::size_t grain = std::max<std::size_t>(min_work / std::max<std::size_t>(work / std::max<std::size_t>(units, 1), 1), 1);
  parallel_for(units, grain, [&](std::size_t begin, std::size_t end) {
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

}  // namespace tg::blas
