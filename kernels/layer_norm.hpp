#pragma once
// Layer normalization over the rows of a [rows, m] array: per-row statistics and the affine
// transform in one pass each way. kernels/layer_norm.cpp compiles them once per instruction set;
// these functions run the active level's. Rows are split across threads.
#include <cstddef>

#include "tapegrad/kernels/cpu.hpp"

namespace tg::kernels {

/// The functions one instruction set's kernels/layer_norm.cpp provides.
template <class T>
struct LayerNorm {
  void (*forward)(const T* x, const T* weight, const T* bias, std::size_t rows, std::size_t m, double eps, T* y,
                  T* mean, T* rstd);
  void (*backward)(const T* g, const T* x, const T* weight, const T* mean, const T* rstd, std::size_t rows,
                   std::size_t m, T* dx);
};
TG_DECLARE_KERNEL_TABLE(LayerNorm)

/// Per row r of x [rows, m]: mean[r], rstd[r] = 1/sqrt(biased variance + eps) (two passes), and
/// y = (x - mean)·rstd·weight + bias (weight and bias [m], either may be null: 1 and 0).
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, std::size_t rows, std::size_t m, double eps, T* y,
                        T* mean, T* rstd) {
  active_table<LayerNorm<T>>().forward(x, weight, bias, rows, m, eps, y, mean, rstd);
}

/// dx [rows, m] of layer_norm_forward for the incoming gradient g, per row with xhat =
/// (x - mean)·rstd and d = g·weight: dx = rstd·(d - mean(d) - xhat·mean(d·xhat)).
template <class T>
void layer_norm_backward(const T* g, const T* x, const T* weight, const T* mean, const T* rstd, std::size_t rows,
                         std::size_t m, T* dx) {
  active_table<LayerNorm<T>>().backward(g, x, weight, mean, rstd, rows, m, dx);
}

}  // namespace tg::kernels
