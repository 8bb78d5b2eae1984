#pragma once
// Pooling kernels over NCHW planes: max pooling (value and argmax in one pass; a SIMD kernel for
// the common 2x2 stride-2 case), its scatter and gather, and average pooling with its adjoint.
// kernels/pool.cpp compiles them once per instruction set; these functions run the active
// level's. Planes are split across threads.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "tapegrad/kernels/cpu.hpp"

namespace tg::kernels {

/// Resolved sizes of one pooling (checked by the op): padding at most half the kernel, and the
/// kernel within the padded input.
struct PoolGeometry {
  std::size_t n, c, h, w;  // input
  std::size_t kh, kw, sh, sw, ph, pw;
  std::size_t oh, ow;
  std::size_t planes() const { return n * c; }
  std::size_t in_plane() const { return h * w; }
  std::size_t out_plane() const { return oh * ow; }
  /// Input rows [begin, end) of window row r, clipped to the input.
  std::pair<std::size_t, std::size_t> rows(std::size_t r) const { return clip(r * sh, ph, kh, h); }
  /// Input columns [begin, end) of window column q, clipped to the input.
  std::pair<std::size_t, std::size_t> cols(std::size_t q) const { return clip(q * sw, pw, kw, w); }
  static std::pair<std::size_t, std::size_t> clip(std::size_t start, std::size_t pad, std::size_t k, std::size_t in) {
    const std::size_t begin = start >= pad ? start - pad : 0;
    const std::size_t end = std::min(start + k - pad, in);  // start + k > pad: pad <= k/2
    return {begin, end};
  }
};

/// The functions one instruction set's kernels/pool.cpp provides.
template <class T>
struct Pooling {
  void (*max_pool)(const T* x, const PoolGeometry& g, T* values, std::int64_t* indices);
  void (*max_pool_backward)(const T* gy, const std::int64_t* indices, const PoolGeometry& g, T* dx);
  void (*max_pool_gather)(const T* x, const std::int64_t* indices, const PoolGeometry& g, T* out);
  void (*avg_pool)(const T* x, const PoolGeometry& g, bool count_include_pad, T* y);
  void (*avg_pool_backward)(const T* gy, const PoolGeometry& g, bool count_include_pad, T* dx);
};
TG_DECLARE_KERNEL_TABLE(Pooling)

/// values and indices [N,C,H',W'] of x [N,C,H,W]: each window's maximum and its flat index
/// (h*W + w) in its plane. NaN wins (the last NaN, as PyTorch's CPU kernel); ties go to the first maximum
/// in scan order.
template <class T>
void max_pool2d(const T* x, const PoolGeometry& g, T* values, std::int64_t* indices) {
  active_table<Pooling<T>>().max_pool(x, g, values, indices);
}

/// dx [N,C,H,W] = gy [N,C,H',W'] scattered (added) to the argmax `indices` of max_pool2d, zero
/// elsewhere.
template <class T>
void max_pool2d_backward(const T* gy, const std::int64_t* indices, const PoolGeometry& g, T* dx) {
  active_table<Pooling<T>>().max_pool_backward(gy, indices, g, dx);
}

/// out [N,C,H',W'] = x [N,C,H,W] read at `indices` (flat per plane): the adjoint of the scatter.
template <class T>
void max_pool2d_gather(const T* x, const std::int64_t* indices, const PoolGeometry& g, T* out) {
  active_table<Pooling<T>>().max_pool_gather(x, indices, g, out);
}

/// y [N,C,H',W'] = each window's mean; the divisor counts padding when count_include_pad.
template <class T>
void avg_pool2d(const T* x, const PoolGeometry& g, bool count_include_pad, T* y) {
  active_table<Pooling<T>>().avg_pool(x, g, count_include_pad, y);
}

/// dx [N,C,H,W] = the adjoint of avg_pool2d applied to gy: each window's gradient spread evenly
/// over it.
template <class T>
void avg_pool2d_backward(const T* gy, const PoolGeometry& g, bool count_include_pad, T* dx) {
  active_table<Pooling<T>>().avg_pool_backward(gy, g, count_include_pad, dx);
}

}  // namespace tg::kernels
