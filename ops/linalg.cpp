// Matrix products: every one is a single internal op, C = op(A) @ op(B) over broadcast batch
// dims, with the transposes passed to BLAS as flags. Its gradients are the same op with other
// flags and the input's batch shape as target, so backward never copies a transpose, weight
// gradients of broadcast operands accumulate in BLAS through beta = 1, and double backward works.
#include "tapegrad/ops/linalg.hpp"

#include <algorithm>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/kernels/blas.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

Shape batch_of(const Shape& s) { return {s.begin(), s.end() - 2}; }

std::size_t product(const Shape& s) {
  std::size_t p = 1;
  for (std::size_t d : s) p *= d;
  return p;
}

// Strides (in matrices) of a batch shape right-aligned in a batch of rank `rank`, 0 along
// broadcast (size-1 or missing) dims.
std::vector<std::size_t> batch_strides(const Shape& batch, const Shape& full) {
  const std::size_t rank = full.size();
  std::vector<std::size_t> stride(rank, 0);
  std::size_t s = 1;
  for (std::size_t i = batch.size(); i-- > 0;) {
    const std::size_t d = rank - batch.size() + i;
    stride[d] = batch[i] == 1 ? 0 : s;
    s *= batch[i];
  }
  return stride;
}

template <class T>
void gemm_safe(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda, const T* b,
               std::size_t ldb, T beta, T* c, std::size_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == T(0)) std::fill_n(c, m * n, T(0));
    return;
  }
  kernels::gemm<T>(ta, tb, m, n, k, T(1), a, std::max<std::size_t>(lda, 1), b, std::max<std::size_t>(ldb, 1), beta, c,
                   std::max<std::size_t>(ldc, 1));
}

// C[out_batch..., M, N] = Σ op(A) @ op(B) over the broadcast batch of A, B and out_batch; batch
// dims of size 1 (or missing) in out_batch are summed, in BLAS, through beta = 1.
Tensor gemm_kernel(const Tensor& a, const Tensor& b, bool ta, bool tb, const Shape& out_batch) {
  const Shape as = a.shape(), bs = b.shape();
  const std::size_t ra = as[as.size() - 2], ca = as.back(), rb = bs[bs.size() - 2], cb = bs.back();
  const std::size_t m = ta ? ca : ra, k = ta ? ra : ca, n = tb ? rb : cb;
  const Shape ab = batch_of(as), bb = batch_of(bs);
  const Shape full = broadcast_shapes(broadcast_shapes(ab, bb, "matmul"), out_batch, "matmul");
  Shape out_shape = out_batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  const std::size_t total = product(full);
  const bool reduces = total != product(out_batch);
  return dispatch_float(a.dtype(), "matmul", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> c = reduces ? xt::xarray<T>(xt::zeros<T>(out_shape)) : xt::xarray<T>::from_shape(out_shape);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = c.data();
    const T beta = reduces ? T(1) : T(0);
    // One GEMM for the common shapes: a batch of rows against one matrix (x[B,T,K] @ W[K,N]),
    // and the weight gradient of that, summed over the batch (A^T @ G with A, G [B,T,·]).
    const bool same_a = ab.size() == full.size() && product(ab) == total;
    if (!ta && product(bb) == 1 && same_a && out_batch == ab) {
      gemm_safe<T>(false, tb, total * m, n, k, pa, ca, pb, cb, beta, pc, n);
      return Tensor(std::move(c));
    }
    if (ta && !tb && product(out_batch) == 1 && ab == bb && product(ab) == total) {
      gemm_safe<T>(true, false, m, n, total * k, pa, ca, pb, cb, beta, pc, n);
      return Tensor(std::move(c));
    }
    const auto sa = batch_strides(ab, full), sb = batch_strides(bb, full), sc = batch_strides(out_batch, full);
    const std::size_t rank = full.size();
    Shape coord(rank, 0);
    std::size_t oa = 0, ob = 0, oc = 0;
    for (std::size_t p = 0; p < total; ++p) {
      gemm_safe<T>(ta, tb, m, n, k, pa + oa * ra * ca, ca, pb + ob * rb * cb, cb, beta, pc + oc * m * n, n);
      for (std::size_t d = rank; d-- > 0;) {
        if (++coord[d] < full[d]) {
          oa += sa[d], ob += sb[d], oc += sc[d];
          break;
        }
        oa -= (full[d] - 1) * sa[d], ob -= (full[d] - 1) * sb[d], oc -= (full[d] - 1) * sc[d];
        coord[d] = 0;
      }
    }
    return Tensor(std::move(c));
  });
}

// mm = op(A) @ op(B) summed to out_batch; with g = dL/dC:
//   dA = g @ op(B)^T (or its transpose), dB = op(A)^T @ g (or its transpose), each summed to
//   the input's own batch shape.
Tensor mm(const Tensor& a, const Tensor& b, bool ta, bool tb, const Shape& out_batch) {
  Tensor out = gemm_kernel(a, b, ta, tb, out_batch);
  const Shape ab = batch_of(a.shape()), bb = batch_of(b.shape());
  return record({.name = "matmul", .inputs = {a, b}, .saved = {a, b}}, out,
                [ta, tb, ab, bb](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  Tensor da, db;
                  if (ctx.needs_grad(0))
                    da = ta ? mm(ctx.saved(1), g, tb, true, ab) : mm(g, ctx.saved(1), false, !tb, ab);
                  if (ctx.needs_grad(1))
                    db = tb ? mm(g, ctx.saved(0), true, ta, bb) : mm(ctx.saved(0), g, !ta, false, bb);
                  return {da, db};
                });
}

// Whether t is a transpose (last two axes swapped) of a row-major tensor: BLAS then reads that
// tensor with its transpose flag, and the transposed view is never gathered.
bool is_transposed_view(const Tensor& t) {
  return t.ndim() >= 2 && !t.is_contiguous() && transpose(t.detach(), -2, -1).is_contiguous();
}

void check_operands(const Tensor& a, const Tensor& b, std::string_view op) {
  TG_CHECK(a.dtype() == b.dtype(), "{}: dtypes differ: {} {} and {} {}; convert one with to()", op, a.dtype(),
           shape_str(a.shape()), b.dtype(), shape_str(b.shape()));
  TG_CHECK(is_floating(a.dtype()), "{}: expected float32 or float64 tensors, got {} {} and {}", op, a.dtype(),
           shape_str(a.shape()), shape_str(b.shape()));
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_operands(a, b, "matmul");
  const Shape as = a.shape(), bs = b.shape();
  TG_CHECK(!as.empty() && !bs.empty(), "matmul: needs tensors of rank >= 1, got shapes {} and {}", shape_str(as),
           shape_str(bs));
  const std::size_t ka = as.back();
  const std::size_t kb = bs.size() == 1 ? bs[0] : bs[bs.size() - 2];
  TG_CHECK(ka == kb, "matmul: inner dimensions differ: {} @ {} ({} vs {})", shape_str(as), shape_str(bs), ka, kb);
  // 1-D operands as in NumPy: a is a row vector, b a column vector, and that axis is dropped.
  const Tensor a2 = as.size() == 1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = bs.size() == 1 ? unsqueeze(b, 1) : b;
  const Shape batch = broadcast_shapes(batch_of(a2.shape()), batch_of(b2.shape()), "matmul");
  const bool ta = is_transposed_view(a2), tb = is_transposed_view(b2);
  Tensor out = mm(ta ? transpose(a2, -2, -1) : a2, tb ? transpose(b2, -2, -1) : b2, ta, tb, batch);
  if (as.size() > 1 && bs.size() > 1) return out;
  std::vector<std::int64_t> shape(batch.begin(), batch.end());
  if (as.size() > 1) shape.push_back(static_cast<std::int64_t>(as[as.size() - 2]));
  if (bs.size() > 1) shape.push_back(static_cast<std::int64_t>(bs.back()));
  return reshape(out, shape);
}

// linear = x @ W^T + bias; d: g @ W, g^T @ x, sum(g, 0)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_operands(x, weight, "linear");
  const Shape xs = x.shape(), ws = weight.shape();
  TG_CHECK(ws.size() == 2, "linear: weight must be [out, in], got {}", shape_str(ws));
  TG_CHECK(!xs.empty() && xs.back() == ws[1], "linear: input {} does not match weight {} (expected [..., {}])",
           shape_str(xs), shape_str(ws), ws[1]);
  if (bias.defined()) {
    TG_CHECK(bias.dtype() == x.dtype(), "linear: bias is {} but input is {}", bias.dtype(), x.dtype());
    TG_CHECK(bias.shape() == Shape{ws[0]}, "linear: bias {} does not match weight {} (expected [{}])",
             shape_str(bias.shape()), shape_str(ws), ws[0]);
  }
  if (xs.size() != 2) {
    // Leading dims fold into the rows of one GEMM.
    std::vector<std::int64_t> out_shape(xs.begin(), xs.end() - 1);
    out_shape.push_back(static_cast<std::int64_t>(ws[0]));
    return reshape(linear(reshape(x, {-1, static_cast<std::int64_t>(ws[1])}), weight, bias), out_shape);
  }
  const std::size_t rows = xs[0], in = ws[1], out_features = ws[0];
  Tensor out = dispatch_float(x.dtype(), "linear", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> c = xt::xarray<T>::from_shape({rows, out_features});
    T beta = T(0);
    if (bias.defined()) {
      // The bias, broadcast into C, is accumulated onto by the GEMM (beta = 1).
      const T* pb = bias.data<T>();
      for (std::size_t r = 0; r < rows; ++r) std::copy_n(pb, out_features, c.data() + r * out_features);
      beta = T(1);
    }
    gemm_safe<T>(false, true, rows, out_features, in, x.data<T>(), in, weight.data<T>(), in, beta, c.data(),
                 out_features);
    return Tensor(std::move(c));
  });
  return record({.name = "linear", .inputs = {x, weight, bias}, .saved = {x, weight}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  return {ctx.needs_grad(0) ? mm(g, ctx.saved(1), false, false, {}) : Tensor(),
                          ctx.needs_grad(1) ? mm(g, ctx.saved(0), true, false, {}) : Tensor(),
                          ctx.needs_grad(2) ? sum(g, {0}) : Tensor()};
                });
}

}  // namespace tg
