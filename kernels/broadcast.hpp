#pragma once
// Two operands broadcast onto an output, as a plan of merged axes, and the loop over its rows.
// Adjacent axes that both operands step over alike are merged, so that a scalar operand or a
// bias [C] onto [N, C] becomes one or a few long contiguous rows.
#include <algorithm>
#include <cstddef>
#include <vector>

namespace tg::kernels {

/// The output's axes after merging (at least one) and each operand's element strides along
/// them, 0 where it is broadcast. The innermost strides are 0 or 1.
struct BroadcastPlan {
  std::vector<std::size_t> dims, stride_a, stride_b;
};

/// The plan for operands of shapes a and b broadcast to out (which the caller has checked).
inline BroadcastPlan broadcast_plan(const std::vector<std::size_t>& a, const std::vector<std::size_t>& b,
                                    const std::vector<std::size_t>& out) {
  const std::size_t n = out.size();
  // Contiguous strides of each operand, aligned to the output's axes; 0 where broadcast.
  auto strides = [n, &out](const std::vector<std::size_t>& s) {
    std::vector<std::size_t> st(n, 0);
    std::size_t step = 1;
    for (std::size_t i = s.size(); i-- > 0;) {
      const std::size_t o = i + (n - s.size());
      st[o] = s[i] == out[o] ? step : 0;
      step *= s[i];
    }
    return st;
  };
  const std::vector<std::size_t> sa = strides(a), sb = strides(b);
  BroadcastPlan p;
  for (std::size_t i = 0; i < n; ++i) {
    if (out[i] == 1) continue;  // size-1 axes take no part in the walk
    if (!p.dims.empty() && p.stride_a.back() == sa[i] * out[i] && p.stride_b.back() == sb[i] * out[i]) {
      // The previous axis steps over exactly this one in both operands: merge them.
      p.dims.back() *= out[i];
      p.stride_a.back() = sa[i];
      p.stride_b.back() = sb[i];
      continue;
    }
    p.dims.push_back(out[i]);
    p.stride_a.push_back(sa[i]);
    p.stride_b.push_back(sb[i]);
  }
  if (p.dims.empty()) p = {{1}, {0}, {0}};
  return p;
}

/// row(a_row, b_row, r) for every innermost row r of the plan (r counts rows in the output's
/// order: its row starts at r * dims.back()). A and B may be const or not.
template <class A, class B, class Row>
void for_each_row(const BroadcastPlan& p, A* pa, B* pb, Row row) {
  const std::size_t rank = p.dims.size();
  if (rank == 1) {
    row(pa, pb, std::size_t{0});
    return;
  }
  // Odometer over the outer axes, carrying each operand's offset.
  std::vector<std::size_t> coord(rank - 1, 0);
  std::size_t oa = 0, ob = 0, rows = 1;
  for (std::size_t d = 0; d + 1 < rank; ++d) rows *= p.dims[d];
  for (std::size_t r = 0; r < rows; ++r) {
    row(pa + oa, pb + ob, r);
    for (std::size_t d = rank - 1; d-- > 0;) {
      oa += p.stride_a[d];
      ob += p.stride_b[d];
      if (++coord[d] < p.dims[d]) break;
      oa -= p.dims[d] * p.stride_a[d];
      ob -= p.dims[d] * p.stride_b[d];
      coord[d] = 0;
    }
  }
}

/// pr[...] = f(pa[...], pb[...]) over the plan, one scalar call per element (any element types;
/// the SIMD maps of float types are kernels/elementwise.hpp's binary).
template <class T, class R, class F>
void broadcast_map(const BroadcastPlan& p, const T* pa, const T* pb, R* pr, F f) {
  const std::size_t inner = p.dims.back(), ia = p.stride_a.back(), ib = p.stride_b.back();
  for_each_row(p, pa, pb, [&](const T* ra, const T* rb, std::size_t r) {
    R* out = pr + r * inner;
    for (std::size_t i = 0; i < inner; ++i) out[i] = static_cast<R>(f(ra[i * ia], rb[i * ib]));
  });
}

/// out = in (of shape `from`) summed over the axes where `to` broadcasts to it: the adjoint of
/// broadcasting `to` onto `from`. out has `to`'s elements.
template <class T>
void sum_to(const T* in, const std::vector<std::size_t>& from, const std::vector<std::size_t>& to, T* out) {
  std::size_t size = 1;
  for (std::size_t d : to) size *= d;
  std::fill_n(out, size, T(0));
  // The plan of `to` broadcast onto `from`: each input row adds into its place in out.
  const BroadcastPlan p = broadcast_plan(from, to, from);
  const std::size_t inner = p.dims.back(), ib = p.stride_b.back();
  for_each_row(p, in, out, [&](const T* ra, T* rb, std::size_t) {
    if (ib == 1)
      for (std::size_t i = 0; i < inner; ++i) rb[i] += ra[i];
    else
      for (std::size_t i = 0; i < inner; ++i) *rb += ra[i];
  });
}

}  // namespace tg::kernels
