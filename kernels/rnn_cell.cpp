// The LSTM cell kernels of kernels/rnn_cell.hpp for one instruction set (TG_ISA).
#include "tapegrad/kernels/rnn_cell.hpp"

#include <algorithm>

#include "tapegrad/kernels/simd.hpp"

namespace tg::kernels::TG_ISA {
namespace {

using simd::splat;

template <class T>
void gates(const T* x, std::size_t n, std::size_t hs, T* y) {
  const std::size_t w = 4 * hs;
  for (std::size_t r = 0; r < n; ++r, x += w, y += w) {
    simd::map1(x, y, 2 * hs, simd::Sigmoid{}, simd::Sigmoid{});
    simd::map1(x + 2 * hs, y + 2 * hs, hs, simd::Tanh{}, simd::Tanh{});
    simd::map1(x + 3 * hs, y + 3 * hs, hs, simd::Sigmoid{}, simd::Sigmoid{});
  }
}

template <class T>
void gates_backward(const T* g, const T* a, std::size_t n, std::size_t hs, T* d) {
  const std::size_t w = 4 * hs;
  const auto dsig = [](auto dy, auto y) { return dy * (y * (splat<decltype(y)>(1) - y)); };
  const auto dtanh = [](auto dy, auto y) { return dy * (splat<decltype(y)>(1) - y * y); };
  for (std::size_t r = 0; r < n; ++r, g += w, a += w, d += w) {
    simd::map2(g, a, d, 2 * hs, dsig);
    simd::map2(g + 2 * hs, a + 2 * hs, d + 2 * hs, hs, dtanh);
    simd::map2(g + 3 * hs, a + 3 * hs, d + 3 * hs, hs, dsig);
  }
}

template <class T>
void cell(const T* a, const T* cp, std::size_t n, std::size_t hs, T* c) {
  const std::size_t w = 4 * hs;
  for (std::size_t r = 0; r < n; ++r, a += w, c += hs) {
    const T *i = a, *f = a + hs, *gg = a + 2 * hs;
    if (cp) {
      for (std::size_t j = 0; j < hs; ++j) c[j] = f[j] * cp[j] + i[j] * gg[j];
      cp += hs;
    } else {
      for (std::size_t j = 0; j < hs; ++j) c[j] = i[j] * gg[j];
    }
  }
}

template <class T>
void cell_backward(const T* dc, const T* a, const T* cp, std::size_t n, std::size_t hs, T* d_act, T* d_cp) {
  const std::size_t w = 4 * hs;
  for (std::size_t r = 0; r < n; ++r) {
    const T* g = dc + r * hs;
    const T* ar = a + r * w;
    if (d_act) {
      T* dr = d_act + r * w;
      for (std::size_t j = 0; j < hs; ++j) dr[j] = g[j] * ar[2 * hs + j];
      if (cp)
        for (std::size_t j = 0; j < hs; ++j) dr[hs + j] = g[j] * cp[r * hs + j];
      else
        std::fill_n(dr + hs, hs, T(0));
      for (std::size_t j = 0; j < hs; ++j) dr[2 * hs + j] = g[j] * ar[j];
      std::fill_n(dr + 3 * hs, hs, T(0));
    }
    if (d_cp)
      for (std::size_t j = 0; j < hs; ++j) d_cp[r * hs + j] = g[j] * ar[hs + j];
  }
}

template <class T>
void hidden(const T* a, const T* tc, std::size_t n, std::size_t hs, T* h) {
  const std::size_t w = 4 * hs;
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t j = 0; j < hs; ++j) h[r * hs + j] = a[r * w + 3 * hs + j] * tc[r * hs + j];
}

template <class T>
void hidden_backward(const T* dh, const T* a, const T* tc, std::size_t n, std::size_t hs, T* d_act, T* dc) {
  const std::size_t w = 4 * hs;
  if (d_act) {
    std::fill_n(d_act, n * w, T(0));
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t j = 0; j < hs; ++j) d_act[r * w + 3 * hs + j] = dh[r * hs + j] * tc[r * hs + j];
  }
  if (dc)
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t j = 0; j < hs; ++j) {
        const std::size_t k = r * hs + j;
        dc[k] = dh[k] * a[r * w + 3 * hs + j] * (T(1) - tc[k] * tc[k]);
      }
}

}  // namespace

template <class T>
constexpr LstmCell<T> lstm_cell_table{&gates<T>,         &gates_backward<T>, &cell<T>,
                                      &cell_backward<T>, &hidden<T>,         &hidden_backward<T>};

}  // namespace tg::kernels::TG_ISA

namespace tg::kernels {
TG_PUBLISH_KERNELS(LstmCell, lstm_cell_table)
}  // namespace tg::kernels
