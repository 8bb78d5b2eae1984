// The LSTM cell ops: each a kernel (kernels/rnn_cell.hpp) and its backward. The plain backward
// runs one kernel; when the backward itself is recorded (create_graph) it is written with
// differentiable ops instead, so that gradients of gradients work.
#include "tapegrad/ops/rnn.hpp"

#include <algorithm>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/kernels/rnn_cell.hpp"
#include "tapegrad/ops/detail/map.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

std::int64_t i64(std::size_t v) { return static_cast<std::int64_t>(v); }

// Block k (i, f, g or o) of act [N, 4H].
Tensor block(const Tensor& act, std::size_t k, std::size_t hs) { return slice(act, 1, i64(k * hs), i64((k + 1) * hs)); }

void check_gates(const Tensor& t, std::size_t hs, std::string_view op) {
  TG_CHECK(t.ndim() == 2 && t.shape(1) == 4 * hs, "{}: expected gates [N, 4*{}], got {}", op, hs, shape_str(t.shape()));
}

}  // namespace

// d act = g·a(1-a) on the sigmoid blocks, g·(1-a²) on the tanh block
Tensor lstm_gates(const Tensor& pre, std::size_t hs) {
  check_gates(pre, hs, "lstm_gates");
  const std::size_t n = pre.shape(0), w = 4 * hs;
  Tensor out = dispatch_float(pre.dtype(), "lstm_gates", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> a = xt::xarray<T>::from_shape({n, w});
    kernels::lstm_gates(pre.data<T>(), n, hs, a.data());
    return Tensor(std::move(a));
  });
  return record({.name = "lstm_gates", .inputs = {pre}, .save_output = true}, out,
                [hs, n, w](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor a = ctx.output();
                  if (ctx.create_graph()) {
                    // The derivative of each block picked by a constant 0/1 mask of the tanh block.
                    xt::xarray<double> m = xt::zeros<double>({w});
                    std::fill_n(m.data() + 2 * hs, hs, 1.0);
                    const Tensor tanh_block = Tensor(std::move(m)).to(a.dtype());
                    return {g * (a * (1.0 - a) * (1.0 - tanh_block) + (1.0 - a * a) * tanh_block)};
                  }
                  return {dispatch_float(g.dtype(), "lstm_gates", [&](auto t) {
                    using T = decltype(t);
                    xt::xarray<T> d = xt::xarray<T>::from_shape({n, w});
                    kernels::lstm_gates_backward(g.data<T>(), a.data<T>(), n, hs, d.data());
                    return Tensor(std::move(d));
                  })};
                });
}

// d act = [dc·tanh g, dc·c_prev, dc·σi, 0], d c_prev = dc·σf
Tensor lstm_cell_state(const Tensor& act, const Tensor& c_prev, std::size_t hs) {
  check_gates(act, hs, "lstm_cell_state");
  const std::size_t n = act.shape(0), w = 4 * hs;
  const bool has_prev = c_prev.defined();
  if (has_prev)
    TG_CHECK(c_prev.shape() == Shape({n, hs}) && c_prev.dtype() == act.dtype(),
             "lstm_cell_state: c_prev {} {} does not fit gates {} {}", c_prev.dtype(), shape_str(c_prev.shape()),
             act.dtype(), shape_str(act.shape()));
  Tensor out = dispatch_float(act.dtype(), "lstm_cell_state", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> c = xt::xarray<T>::from_shape({n, hs});
    kernels::lstm_cell(act.data<T>(), has_prev ? c_prev.data<T>() : nullptr, n, hs, c.data());
    return Tensor(std::move(c));
  });
  TensorList saved{act};
  if (has_prev) saved.push_back(c_prev);
  return record({.name = "lstm_cell_state", .inputs = {act, c_prev}, .saved = std::move(saved)}, out,
                [hs, n, w, has_prev](const BackwardContext& ctx, const Tensor& dc) -> TensorList {
                  const Tensor& a = ctx.saved(0);
                  const Tensor cp = has_prev ? ctx.saved(1) : Tensor();
                  if (ctx.create_graph()) {
                    const Tensor zero = zeros_like(dc);
                    return {
                        ctx.needs_grad(0)
                            ? concat({dc * block(a, 2, hs), has_prev ? dc * cp : zero, dc * block(a, 0, hs), zero}, 1)
                            : Tensor(),
                        ctx.needs_grad(1) ? dc * block(a, 1, hs) : Tensor()};
                  }
                  return dispatch_float(dc.dtype(), "lstm_cell_state", [&](auto t) -> TensorList {
                    using T = decltype(t);
                    xt::xarray<T> d_act = xt::xarray<T>::from_shape({ctx.needs_grad(0) ? n : 0, w});
                    xt::xarray<T> d_prev = xt::xarray<T>::from_shape({ctx.needs_grad(1) ? n : 0, hs});
                    kernels::lstm_cell_backward(dc.data<T>(), a.data<T>(), has_prev ? cp.data<T>() : nullptr, n, hs,
                                                ctx.needs_grad(0) ? d_act.data() : nullptr,
                                                ctx.needs_grad(1) ? d_prev.data() : nullptr);
                    return {ctx.needs_grad(0) ? Tensor(std::move(d_act)) : Tensor(),
                            ctx.needs_grad(1) ? Tensor(std::move(d_prev)) : Tensor()};
                  });
                });
}

// d act = [0, 0, 0, dh·tanh c], d c = dh·σo·(1 - tanh² c)
Tensor lstm_hidden_state(const Tensor& act, const Tensor& c, std::size_t hs) {
  check_gates(act, hs, "lstm_hidden_state");
  const std::size_t n = act.shape(0), w = 4 * hs;
  TG_CHECK(c.shape() == Shape({n, hs}) && c.dtype() == act.dtype(),
           "lstm_hidden_state: c {} {} does not fit gates {} {}", c.dtype(), shape_str(c.shape()), act.dtype(),
           shape_str(act.shape()));
  const Tensor tc = detail::unary_kernel(c.detach(), "lstm_hidden_state", kernels::UnaryOp::tanh);
  Tensor out = dispatch_float(act.dtype(), "lstm_hidden_state", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> h = xt::xarray<T>::from_shape({n, hs});
    kernels::lstm_hidden(act.data<T>(), tc.data<T>(), n, hs, h.data());
    return Tensor(std::move(h));
  });
  return record({.name = "lstm_hidden_state", .inputs = {act, c}, .saved = {act, c, tc}}, out,
                [hs, n, w](const BackwardContext& ctx, const Tensor& dh) -> TensorList {
                  const Tensor& a = ctx.saved(0);
                  if (ctx.create_graph()) {
                    // tanh c again, as an op of c so that it is differentiable.
                    const Tensor t = tanh(ctx.saved(1));
                    return {ctx.needs_grad(0) ? concat({zeros({n, 3 * hs}, dh.dtype()), dh * t}, 1) : Tensor(),
                            ctx.needs_grad(1) ? dh * block(a, 3, hs) * (1.0 - t * t) : Tensor()};
                  }
                  const Tensor& tcs = ctx.saved(2);
                  return dispatch_float(dh.dtype(), "lstm_hidden_state", [&](auto tt) -> TensorList {
                    using T = decltype(tt);
                    xt::xarray<T> d_act = xt::xarray<T>::from_shape({ctx.needs_grad(0) ? n : 0, w});
                    xt::xarray<T> dc = xt::xarray<T>::from_shape({ctx.needs_grad(1) ? n : 0, hs});
                    kernels::lstm_hidden_backward(dh.data<T>(), a.data<T>(), tcs.data<T>(), n, hs,
                                                  ctx.needs_grad(0) ? d_act.data() : nullptr,
                                                  ctx.needs_grad(1) ? dc.data() : nullptr);
                    return {ctx.needs_grad(0) ? Tensor(std::move(d_act)) : Tensor(),
                            ctx.needs_grad(1) ? Tensor(std::move(dc)) : Tensor()};
                  });
                });
}

}  // namespace tg
