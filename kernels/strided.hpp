#pragma once
// Elements of a strided view (a transpose, a broadcast with stride 0, a slice with a step) gathered
// into row-major order, and written back. Adjacent axes that the view steps over contiguously are
// merged first, so the common views are a few long runs: a copy per run when the innermost
// stride is 1, a fill when it is 0, else a strided loop.
#include <algorithm>
#include <cstddef>
#include <vector>

namespace tg::kernels {

/// The view's axes after merging (size-1 axes dropped) with their element strides; empty for a
/// view of one element.
struct StridedRuns {
  std::vector<std::size_t> sizes, strides;
};

inline StridedRuns strided_runs(const std::vector<std::size_t>& shape, const std::vector<std::size_t>& strides) {
  StridedRuns r;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!r.sizes.empty() && r.strides.back() == strides[i] * shape[i]) {
      r.sizes.back() *= shape[i];  // the previous axis steps over exactly this one: one axis
      r.strides.back() = strides[i];
    } else {
      r.sizes.push_back(shape[i]);
      r.strides.push_back(strides[i]);
    }
  }
  return r;
}

/// Calls run(view_offset, row_offset, n, stride) for every innermost run of the view: n
/// elements at view_offset + k * stride in the strided storage, row_offset + k in row-major order.
template <class Run>
void for_each_run(const std::vector<std::size_t>& shape, const std::vector<std::size_t>& strides, Run run) {
  std::size_t total = 1;
  for (std::size_t d : shape) total *= d;
  if (total == 0) return;
  const StridedRuns r = strided_runs(shape, strides);
  if (r.sizes.empty()) {
    run(std::size_t{0}, std::size_t{0}, std::size_t{1}, std::size_t{1});
    return;
  }
  const std::size_t d = r.sizes.size(), inner = r.sizes[d - 1], inner_stride = r.strides[d - 1];
  std::vector<std::size_t> index(d - 1, 0);
  std::size_t offset = 0;
  for (std::size_t o = 0; o < total; o += inner) {
    run(offset, o, inner, inner_stride);
    for (std::size_t k = d - 1; k-- > 0;) {  // the next run: an odometer over the outer axes
      offset += r.strides[k];
      if (++index[k] < r.sizes[k]) break;
      offset -= r.strides[k] * r.sizes[k];
      index[k] = 0;
    }
  }
}

/// dst (row-major, `shape`) ← the view of src with element `strides`.
template <class T>
void strided_gather(const T* src, const std::vector<std::size_t>& shape, const std::vector<std::size_t>& strides,
                    T* dst) {
  for_each_run(shape, strides, [&](std::size_t from, std::size_t to, std::size_t n, std::size_t stride) {
    if (stride == 1)
      std::copy_n(src + from, n, dst + to);
    else if (stride == 0)
      std::fill_n(dst + to, n, src[from]);
    else
      for (std::size_t j = 0; j < n; ++j) dst[to + j] = src[from + j * stride];
  });
}

/// The view of dst with element `strides` ← src (row-major, `shape`); no two of the view's
/// elements may share a place (the caller refuses broadcast views).
template <class T>
void strided_scatter(const T* src, const std::vector<std::size_t>& shape, const std::vector<std::size_t>& strides,
                     T* dst) {
  for_each_run(shape, strides, [&](std::size_t to, std::size_t from, std::size_t n, std::size_t stride) {
    if (stride == 1)
      std::copy_n(src + from, n, dst + to);
    else
      for (std::size_t j = 0; j < n; ++j) dst[to + j * stride] = src[from + j];
  });
}

}  // namespace tg::kernels
