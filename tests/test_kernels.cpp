// Every SIMD kernel at every instruction set this CPU runs (forced with set_cpu_capability, as
// TG_CPU_CAPABILITY does), in float32 and float64, held to the scalar reference in double
// (kernels/reference.hpp) or to the formula itself. The baseline and AVX2 kernels are otherwise
// never run on an AVX-512 machine.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/runtime.hpp"
#include "tapegrad/kernels/conv.hpp"
#include "tapegrad/kernels/elementwise.hpp"
#include "tapegrad/kernels/layer_norm.hpp"
#include "tapegrad/kernels/pool.hpp"
#include "tapegrad/kernels/reference.hpp"
#include "tapegrad/kernels/rnn_cell.hpp"

namespace {

using tg::CpuCapability;
using tg::kernels::ConvGeometry;
using tg::kernels::PoolGeometry;

std::vector<CpuCapability> levels() {
  std::vector<CpuCapability> all;
  for (CpuCapability l : {CpuCapability::baseline, CpuCapability::avx2, CpuCapability::avx512})
    if (l <= tg::max_cpu_capability()) all.push_back(l);
  return all;
}

// Sets a process setting of tapegrad (the kernels' instruction set, the thread count) for the
// enclosed scope, then restores the value before.
template <class V>
class Scoped {
 public:
  Scoped(V (*get)(), void (*set)(V), V value) : set_(set), before_(get()) { set_(value); }
  ~Scoped() { set_(before_); }
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;

 private:
  void (*set_)(V);
  V before_;
};

// Runs the enclosed scope's kernels at one level.
struct AtLevel : Scoped<CpuCapability> {
  explicit AtLevel(CpuCapability level) : Scoped(&tg::cpu_capability, &tg::set_cpu_capability, level) {}
};

// Runs the enclosed scope's parallel loops on n threads.
struct OnThreads : Scoped<int> {
  explicit OnThreads(int n) : Scoped(&tg::get_num_threads, &tg::set_num_threads, n) {}
};

std::vector<double> random_values(std::size_t n, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  tg::Generator gen(seed);
  std::vector<double> v(n);
  for (double& x : v) x = low + (high - low) * gen.uniform();
  return v;
}

template <class T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-4 : 1e-10;
}

// Every element within tol (absolute, or relative for large values), NaN matching NaN.
template <class T>
void check_close(const std::vector<T>& got, const std::vector<double>& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), w = want[i];
    const bool ok = (std::isnan(g) && std::isnan(w)) || std::abs(g - w) <= tol * std::max(1.0, std::abs(w));
    if (!ok && bad++ == 0) first = i;
  }
  INFO("first mismatch at ", first, ": got ", static_cast<double>(got[first]), ", want ", want[first]);
  CHECK(bad == 0);
}

ConvGeometry geometry(std::size_t n, std::size_t c_in, std::size_t h, std::size_t w, std::size_t c_out, std::size_t k,
                      std::size_t stride, std::size_t pad, std::size_t dilation, std::size_t groups) {
  ConvGeometry g{};
  g.n = n, g.c_in = c_in, g.h = h, g.w = w, g.c_out = c_out, g.kh = k, g.kw = k;
  g.sh = g.sw = stride, g.dh = g.dw = dilation, g.groups = groups;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = pad;
  g.oh = (h + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
  g.ow = (w + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
  return g;
}

std::string name_of(CpuCapability level, const char* type) { return std::string(tg::to_string(level)) + " " + type; }

template <class T>
void check_conv(const ConvGeometry& g, const std::string& label) {
  const auto x = random_values(g.n * g.c_in * g.h * g.w, 1), w = random_values(g.c_out * g.patch(), 2),
             bias = random_values(g.c_out, 3), gy = random_values(g.n * g.c_out * g.out_plane(), 4);
  const auto xt = as<T>(x), wt = as<T>(w), bt = as<T>(bias), gyt = as<T>(gy);
  const double tol = tolerance<T>();
  for (bool relu : {false, true}) {
    std::vector<T> y(gy.size());
    tg::kernels::conv2d_forward(xt.data(), wt.data(), bt.data(), g, relu, y.data());
    check_close(y, tg::kernels::reference::conv2d(x, w, bias, g, relu), tol,
                label + (relu ? " forward relu" : " forward"));
  }
  std::vector<T> dx(x.size()), dw(w.size());
  tg::kernels::conv2d_backward_input(gyt.data(), wt.data(), g, dx.data());
  check_close(dx, tg::kernels::reference::conv2d_backward_input(gy, w, g), tol, label + " backward input");
  tg::kernels::conv2d_backward_weight(gyt.data(), xt.data(), g, dw.data());
  check_close(dw, tg::kernels::reference::conv2d_backward_weight(gy, x, g), tol, label + " backward weight");
  if (!tg::kernels::direct_applies(g)) return;

  // The fused relu's gradient: gy masked where the output is not positive, then dW and db.
  const auto out = tg::kernels::reference::conv2d(x, w, bias, g, true);
  std::vector<double> masked(gy.size()), db_want(g.c_out, 0.0);
  for (std::size_t i = 0; i < gy.size(); ++i) {
    masked[i] = out[i] > 0 ? gy[i] : 0.0;
    db_want[i / g.out_plane() % g.c_out] += masked[i];
  }
  std::vector<T> db(g.c_out);
  const auto out_t = as<T>(out);
  tg::kernels::conv2d_relu_backward_params(gyt.data(), out_t.data(), xt.data(), g, dw.data(), db.data());
  check_close(dw, tg::kernels::reference::conv2d_backward_weight(masked, x, g), tol, label + " relu backward weight");
  check_close(db, db_want, tol, label + " relu backward bias");
  if (!tg::kernels::relu_pool_applies(g)) return;

  // The fused conv + relu + 2x2 max pooling against pooling the reference's output.
  PoolGeometry p{g.n, g.c_out, g.oh, g.ow, 2, 2, 2, 2, 0, 0, g.oh / 2, g.ow / 2};
  std::vector<double> pooled;
  std::vector<std::int64_t> argmax;
  tg::kernels::reference::max_pool2d(out, p, pooled, argmax);
  std::vector<T> values(pooled.size()), codes(pooled.size());
  tg::kernels::conv2d_relu_max_pool2d_forward(xt.data(), wt.data(), bt.data(), g, values.data(), codes.data());
  check_close(values, pooled, tol, label + " relu-pool forward");
  // Codes point at each window's maximum (any of equal maxima), or mark an all-zero window.
  std::vector<std::int64_t> indices(pooled.size());
  tg::kernels::relu_pool_indices(codes.data(), g, indices.data());
  std::size_t misplaced = 0;
  for (std::size_t i = 0; i < pooled.size(); ++i) {
    const std::size_t plane = i / p.out_plane();
    const double at = out[plane * g.out_plane() + static_cast<std::size_t>(indices[i])];
    if (std::abs(at - pooled[i]) > tol * std::max(1.0, std::abs(pooled[i]))) ++misplaced;
  }
  CHECK(misplaced == 0);
  // Its parameter gradients: the pooled gradient at each window's argmax, where positive.
  const auto gp = random_values(pooled.size(), 5);
  std::vector<double> routed(gy.size(), 0.0), db_pool(g.c_out, 0.0);
  for (std::size_t i = 0; i < gp.size(); ++i) {
    if (!(pooled[i] > 0)) continue;
    const std::size_t plane = i / p.out_plane();
    routed[plane * g.out_plane() + static_cast<std::size_t>(argmax[i])] += gp[i];
    db_pool[plane % g.c_out] += gp[i];
  }
  const auto gpt = as<T>(gp);
  tg::kernels::conv2d_relu_max_pool2d_backward_params(gpt.data(), codes.data(), xt.data(), g, dw.data(), db.data());
  check_close(dw, tg::kernels::reference::conv2d_backward_weight(routed, x, g), tol, label + " relu-pool weight");
  check_close(db, db_pool, tol, label + " relu-pool bias");
}

}  // namespace

TEST_CASE("conv kernels at every instruction set match the scalar reference") {
  const std::vector<std::pair<ConvGeometry, std::string>> cases = {
      {geometry(3, 1, 28, 28, 6, 3, 1, 0, 1, 1), "first layer 1->6 3x3 (fixed taps)"},
      {geometry(2, 3, 11, 13, 5, 3, 1, 1, 1, 1), "3->5 3x3 padded (tap table)"},
      {geometry(2, 1, 12, 40, 3, 5, 1, 2, 1, 1), "1->3 5x5 wide rows"},
      {geometry(2, 2, 10, 9, 4, 3, 1, 2, 2, 1), "2->4 3x3 dilated"},
      {geometry(2, 8, 9, 9, 6, 3, 2, 1, 1, 2), "8->6 stride 2, 2 groups (im2col, oneDNN)"},
      {geometry(3, 16, 7, 7, 16, 1, 1, 0, 1, 1), "16->16 pointwise"},
  };
  for (CpuCapability level : levels()) {
    const AtLevel at(level);
    for (const auto& [g, name] : cases) {
      check_conv<float>(g, name_of(level, "float32 ") + name);
      check_conv<double>(g, name_of(level, "float64 ") + name);
    }
  }
}

namespace {
template <class T>
void check_pool(const PoolGeometry& g, const std::string& label, bool with_nan) {
  auto x = random_values(g.planes() * g.in_plane(), 7);
  if (with_nan)
    for (std::size_t i = 5; i < x.size(); i += 29) x[i] = std::numeric_limits<double>::quiet_NaN();
  const auto xt = as<T>(x);
  std::vector<double> want;
  std::vector<std::int64_t> want_idx;
  tg::kernels::reference::max_pool2d(x, g, want, want_idx);
  std::vector<T> values(want.size());
  std::vector<std::int64_t> idx(want.size());
  tg::kernels::max_pool2d(xt.data(), g, values.data(), idx.data());
  check_close(values, want, tolerance<T>(), label + " max values");
  CHECK(idx == want_idx);
  // The scatter and the gather are adjoint: <scatter(gy), v> = <gy, gather(v)>.
  const auto gy = as<T>(random_values(want.size(), 8)), v = as<T>(random_values(x.size(), 9));
  std::vector<T> dx(x.size()), gathered(want.size());
  tg::kernels::max_pool2d_backward(gy.data(), idx.data(), g, dx.data());
  tg::kernels::max_pool2d_gather(v.data(), idx.data(), g, gathered.data());
  double lhs = 0, rhs = 0;
  for (std::size_t i = 0; i < dx.size(); ++i) lhs += double(dx[i]) * double(v[i]);
  for (std::size_t i = 0; i < gathered.size(); ++i) rhs += double(gy[i]) * double(gathered[i]);
  CHECK(lhs == doctest::Approx(rhs).epsilon(1e-5));
  for (bool include_pad : {true, false}) {
    std::vector<T> y(want.size());
    tg::kernels::avg_pool2d(xt.data(), g, include_pad, y.data());
    check_close(y, tg::kernels::reference::avg_pool2d(x, g, include_pad), tolerance<T>(), label + " avg");
  }
}
}  // namespace

TEST_CASE("pool kernels at every instruction set match the scalar reference") {
  const std::vector<std::pair<PoolGeometry, std::string>> cases = {
      {{2, 3, 26, 26, 2, 2, 2, 2, 0, 0, 13, 13}, "2x2/2 (SIMD rows)"},
      {{1, 2, 6, 9, 2, 2, 2, 2, 0, 0, 3, 4}, "2x2/2 narrow rows"},
      {{2, 2, 11, 10, 3, 3, 2, 2, 1, 1, 6, 5}, "3x3/2 padded"},
  };
  for (CpuCapability level : levels()) {
    const AtLevel at(level);
    for (const auto& [g, name] : cases)
      for (bool nan : {false, true}) {
        const std::string label = name + (nan ? " with NaN" : "");
        check_pool<float>(g, name_of(level, "float32 ") + label, nan);
        check_pool<double>(g, name_of(level, "float64 ") + label, nan);
      }
  }
}

namespace {
template <class T>
void check_elementwise(const std::string& label) {
  using tg::kernels::BinaryOp;
  using tg::kernels::UnaryGrad;
  using tg::kernels::UnaryOp;
  const std::size_t n = 67;  // SIMD batches and a tail, at every width
  const auto x = random_values(n, 11, -3, 3), y = random_values(n, 12, 0.5, 2), g = random_values(n, 13);
  const auto xt = as<T>(x), yt = as<T>(y), gt = as<T>(g);
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  auto want_of = [&](const std::vector<double>& in, auto f) {
    std::vector<double> out(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = f(in[i]);
    return out;
  };
  const std::vector<std::pair<UnaryOp, std::vector<double>>> unary = {
      {UnaryOp::neg, want_of(x, [](double v) { return -v; })},
      {UnaryOp::exp, want_of(x, [](double v) { return std::exp(v); })},
      {UnaryOp::log, want_of(y, [](double v) { return std::log(v); })},
      {UnaryOp::sqrt, want_of(y, [](double v) { return std::sqrt(v); })},
      {UnaryOp::relu, want_of(x, [](double v) { return v > 0 ? v : 0.0; })},
      {UnaryOp::sigmoid, want_of(x, [](double v) { return 1 / (1 + std::exp(-v)); })},
      {UnaryOp::tanh, want_of(x, [](double v) { return std::tanh(v); })},
      {UnaryOp::gelu, want_of(x, [](double v) { return v / 2 * (1 + std::erf(v / std::sqrt(2.0))); })},
  };
  for (const auto& [op, want] : unary) {
    const auto& in = op == UnaryOp::log || op == UnaryOp::sqrt ? yt : xt;
    std::vector<T> out(n);
    tg::kernels::unary(op, in.data(), out.data(), n);
    check_close(out, want, tol, label + " unary " + std::to_string(static_cast<int>(op)));
  }
  // Binary ops with a row [7] broadcast over [5, 7], and a scalar over [67].
  const std::vector<std::size_t> full{5, 7}, row{7};
  const auto a = random_values(35, 14), b = random_values(7, 15, 0.5, 2);
  const auto at = as<T>(a), bt = as<T>(b);
  const auto plan = tg::kernels::broadcast_plan(full, row, full);
  const auto scalar_plan = tg::kernels::broadcast_plan({n}, {}, {n});
  using Formula = double (*)(double, double);
  const std::vector<std::pair<BinaryOp, Formula>> binary = {
      {BinaryOp::add, [](double u, double v) { return u + v; }},
      {BinaryOp::sub, [](double u, double v) { return u - v; }},
      {BinaryOp::mul, [](double u, double v) { return u * v; }},
      {BinaryOp::div, [](double u, double v) { return u / v; }},
  };
  for (const auto& [op, apply] : binary) {
    std::vector<double> want(35), want_scalar(n);
    for (std::size_t i = 0; i < 35; ++i) want[i] = apply(a[i], b[i % 7]);
    for (std::size_t i = 0; i < n; ++i) want_scalar[i] = apply(x[i], b[0]);
    std::vector<T> out(35), out_scalar(n);
    tg::kernels::binary(op, plan, at.data(), bt.data(), out.data());
    tg::kernels::binary(op, scalar_plan, xt.data(), bt.data(), out_scalar.data());
    check_close(out, want, tol, label + " binary broadcast row " + std::to_string(static_cast<int>(op)));
    check_close(out_scalar, want_scalar, tol, label + " binary scalar " + std::to_string(static_cast<int>(op)));
  }
  // Gradients: s is the saved input or output each names.
  const auto s = random_values(n, 16, 0, 1);
  const auto st = as<T>(s);
  auto each = [n](auto f) {
    std::vector<double> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = f(i);
    return out;
  };
  const std::vector<std::pair<UnaryGrad, std::vector<double>>> grads = {
      {UnaryGrad::times_saved, each([&](std::size_t i) { return g[i] * s[i]; })},
      {UnaryGrad::relu, each([&](std::size_t i) { return x[i] > 0 ? g[i] : 0.0; })},
      {UnaryGrad::leaky_relu, each([&](std::size_t i) { return x[i] > 0 ? g[i] : 0.1 * g[i]; })},
      {UnaryGrad::sigmoid, each([&](std::size_t i) { return g[i] * s[i] * (1 - s[i]); })},
      {UnaryGrad::tanh, each([&](std::size_t i) { return g[i] * (1 - s[i] * s[i]); })},
      {UnaryGrad::clamp, each([&](std::size_t i) { return x[i] >= -1 && x[i] <= 1.5 ? g[i] : 0.0; })},
      {UnaryGrad::gelu, each([&](std::size_t i) {
         const double cdf = (1 + std::erf(x[i] / std::sqrt(2.0))) / 2;
         return g[i] * (cdf + x[i] * std::exp(-x[i] * x[i] / 2) / std::sqrt(2 * M_PI));
       })},
  };
  for (const auto& [op, want] : grads) {
    const bool on_input =
        op == UnaryGrad::relu || op == UnaryGrad::leaky_relu || op == UnaryGrad::clamp || op == UnaryGrad::gelu;
    const tg::kernels::UnaryGradParams params =
        op == UnaryGrad::clamp ? tg::kernels::UnaryGradParams{-1, 1.5} : tg::kernels::UnaryGradParams{0.1, 0};
    std::vector<T> out(n);
    tg::kernels::unary_grad(op, params, gt.data(), on_input ? xt.data() : st.data(), out.data(), n);
    check_close(out, want, tol, label + " gradient " + std::to_string(static_cast<int>(op)));
  }
  std::vector<T> acc = xt;
  tg::kernels::accumulate(acc.data(), gt.data(), n);
  std::vector<double> sum(n);
  for (std::size_t i = 0; i < n; ++i) sum[i] = x[i] + g[i];
  check_close(acc, sum, tol, label + " accumulate");
  // channel_sum over [3, 4, 37].
  const auto c = random_values(3 * 4 * 37, 17);
  std::vector<double> per_channel(4, 0.0);
  for (std::size_t i = 0; i < c.size(); ++i) per_channel[i / 37 % 4] += c[i];
  std::vector<T> channels(4);
  const auto ct = as<T>(c);
  tg::kernels::channel_sum(ct.data(), 3, 4, 37, channels.data());
  check_close(channels, per_channel, 1e-4, label + " channel_sum");
  // dropout: the same draws, so the same mask, as a plain loop over the engine.
  std::mt19937_64 engine(5), reference(5);
  const std::uint64_t threshold = std::uint64_t{1} << 63;  // p = 0.5
  std::vector<T> mask(n), dropped(n);
  tg::kernels::dropout(engine, threshold, T(2), xt.data(), mask.data(), dropped.data(), n);
  std::vector<double> want_mask(n), want_out(n);
  for (std::size_t i = 0; i < n; ++i) {
    want_mask[i] = reference() >= threshold ? 2.0 : 0.0;
    want_out[i] = x[i] * want_mask[i];
  }
  check_close(mask, want_mask, 0.0, label + " dropout mask");
  check_close(dropped, want_out, tol, label + " dropout");
  CHECK(engine() == reference());
}
}  // namespace

TEST_CASE("elementwise kernels at every instruction set match the formulas") {
  for (CpuCapability level : levels()) {
    const AtLevel at(level);
    check_elementwise<float>(name_of(level, "float32"));
    check_elementwise<double>(name_of(level, "float64"));
  }
}

namespace {
template <class T>
void check_lstm(const std::string& label) {
  const std::size_t n = 3, hs = 19, w = 4 * hs;
  const auto pre = random_values(n * w, 21, -3, 3), c_prev = random_values(n * hs, 22), g = random_values(n * w, 23),
             dc = random_values(n * hs, 24);
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  std::vector<double> act(n * w), c(n * hs), tc(n * hs), h(n * hs), d_pre(n * w);
  for (std::size_t i = 0; i < n * w; ++i) {
    const bool tanh_block = i % w / hs == 2;
    act[i] = tanh_block ? std::tanh(pre[i]) : sig(pre[i]);
    d_pre[i] = tanh_block ? g[i] * (1 - act[i] * act[i]) : g[i] * act[i] * (1 - act[i]);
  }
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t j = 0; j < hs; ++j) {
      const std::size_t k = r * hs + j, a = r * w + j;
      c[k] = act[a + hs] * c_prev[k] + act[a] * act[a + 2 * hs];
      tc[k] = std::tanh(c[k]);
      h[k] = act[a + 3 * hs] * tc[k];
    }
  const auto pre_t = as<T>(pre), g_t = as<T>(g), cp_t = as<T>(c_prev), dc_t = as<T>(dc);
  std::vector<T> act_t(n * w), d_t(n * w), c_t(n * hs), h_t(n * hs), d_cp(n * hs);
  tg::kernels::lstm_gates(pre_t.data(), n, hs, act_t.data());
  check_close(act_t, act, tol, label + " gates");
  const auto act_exact = as<T>(act);
  tg::kernels::lstm_gates_backward(g_t.data(), act_exact.data(), n, hs, d_t.data());
  check_close(d_t, d_pre, tol, label + " gates backward");
  tg::kernels::lstm_cell(act_exact.data(), cp_t.data(), n, hs, c_t.data());
  check_close(c_t, c, tol, label + " cell");
  const auto tc_t = as<T>(tc);
  tg::kernels::lstm_hidden(act_exact.data(), tc_t.data(), n, hs, h_t.data());
  check_close(h_t, h, tol, label + " hidden");
  std::vector<double> d_act(n * w, 0.0), d_prev(n * hs), d_c(n * hs);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t j = 0; j < hs; ++j) {
      const std::size_t k = r * hs + j, a = r * w + j;
      d_act[a] = dc[k] * act[a + 2 * hs];
      d_act[a + hs] = dc[k] * c_prev[k];
      d_act[a + 2 * hs] = dc[k] * act[a];
      d_prev[k] = dc[k] * act[a + hs];
      d_c[k] = dc[k] * act[a + 3 * hs] * (1 - tc[k] * tc[k]);
    }
  tg::kernels::lstm_cell_backward(dc_t.data(), act_exact.data(), cp_t.data(), n, hs, d_t.data(), d_cp.data());
  check_close(d_t, d_act, tol, label + " cell backward");
  check_close(d_cp, d_prev, tol, label + " cell backward, c_prev");
  tg::kernels::lstm_hidden_backward(dc_t.data(), act_exact.data(), tc_t.data(), n, hs, d_t.data(), c_t.data());
  std::vector<double> d_act_h(n * w, 0.0);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t j = 0; j < hs; ++j) d_act_h[r * w + 3 * hs + j] = dc[r * hs + j] * tc[r * hs + j];
  check_close(d_t, d_act_h, tol, label + " hidden backward");
  check_close(c_t, d_c, tol, label + " hidden backward, c");
}
}  // namespace

namespace {
// Layer norm of rows of width m (SIMD bodies and tails) against the formulas in double.
template <class T>
void check_layer_norm(std::size_t m, const std::string& label) {
  const std::size_t rows = 3;
  const auto x = random_values(rows * m, 21, -2, 2), w = random_values(m, 22), b = random_values(m, 23),
             g = random_values(rows * m, 24);
  const auto xt = as<T>(x), wt = as<T>(w), bt = as<T>(b), gt = as<T>(g);
  std::vector<double> y(rows * m), dx(rows * m);
  for (std::size_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (std::size_t j = 0; j < m; ++j) mu += x[r * m + j] / m;
    for (std::size_t j = 0; j < m; ++j) var += (x[r * m + j] - mu) * (x[r * m + j] - mu) / m;
    const double rs = 1 / std::sqrt(var + 1e-5);
    double s1 = 0, s2 = 0;
    for (std::size_t j = 0; j < m; ++j) {
      const double xhat = (x[r * m + j] - mu) * rs;
      y[r * m + j] = xhat * w[j] + b[j];
      s1 += g[r * m + j] * w[j];
      s2 += g[r * m + j] * w[j] * xhat;
    }
    for (std::size_t j = 0; j < m; ++j)
      dx[r * m + j] = rs * (g[r * m + j] * w[j] - s1 / m - (x[r * m + j] - mu) * rs * s2 / m);
  }
  std::vector<T> yt(rows * m), mean(rows), rstd(rows), dxt(rows * m);
  tg::kernels::layer_norm_forward(xt.data(), wt.data(), bt.data(), rows, m, 1e-5, yt.data(), mean.data(), rstd.data());
  tg::kernels::layer_norm_backward(gt.data(), xt.data(), wt.data(), mean.data(), rstd.data(), rows, m, dxt.data());
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  check_close(yt, y, tol, label + " layer_norm forward, m " + std::to_string(m));
  check_close(dxt, dx, tol, label + " layer_norm backward, m " + std::to_string(m));
}
}  // namespace

TEST_CASE("layer norm kernels at every instruction set match the formulas") {
  for (CpuCapability level : levels()) {
    const AtLevel at(level);
    for (std::size_t m : {1u, 7u, 16u, 17u, 64u, 67u}) {
      check_layer_norm<float>(m, name_of(level, "float32"));
      check_layer_norm<double>(m, name_of(level, "float64"));
    }
  }
}

TEST_CASE("LSTM cell kernels at every instruction set match the formulas") {
  for (CpuCapability level : levels()) {
    const AtLevel at(level);
    check_lstm<float>(name_of(level, "float32"));
    check_lstm<double>(name_of(level, "float64"));
  }
}

TEST_CASE("the CPU capability can be lowered, not raised past the CPU, and is named") {
  const CpuCapability best = tg::max_cpu_capability();
  CHECK(tg::cpu_capability() <= best);
  {
    const AtLevel at(CpuCapability::baseline);
    CHECK(tg::cpu_capability() == CpuCapability::baseline);
  }
  if (best < CpuCapability::avx512) {
    CHECK_THROWS_WITH_AS(tg::set_cpu_capability(CpuCapability::avx512),
                         doctest::Contains("set_cpu_capability: this CPU runs at most"), tg::Error);
  }
  CHECK(tg::to_string(CpuCapability::avx2) == "avx2");
}

namespace {

// Each elementwise map and row_sums on one thread and on two, on arrays large enough to be split
// (several grains, an odd tail): the same elements, bit for bit; row_sums also held to a sum in
// double, and a split binary map to the formula.
template <class T>
void check_split(const std::string& label) {
  using tg::kernels::BinaryOp;
  using tg::kernels::UnaryGrad;
  using tg::kernels::UnaryOp;
  const std::size_t n = 2 * tg::kernels::cheap_elementwise_grain + 1237;
  const auto x = as<T>(random_values(n, 31)), g = as<T>(random_values(n, 32));
  auto on = [](int threads, auto run) {
    const OnThreads scope(threads);
    return run();
  };
  auto same = [&](auto run, const std::string& what) {
    const auto one = on(1, run), two = on(2, run);
    CHECK_MESSAGE(one == two, (label + " " + what + ": one thread and two differ"));
  };
  for (UnaryOp op : {UnaryOp::neg, UnaryOp::tanh, UnaryOp::gelu})
    same(
        [&] {
          std::vector<T> out(n);
          tg::kernels::unary(op, x.data(), out.data(), n);
          return out;
        },
        "unary " + std::to_string(static_cast<int>(op)));
  for (UnaryGrad op : {UnaryGrad::tanh, UnaryGrad::gelu})
    same(
        [&] {
          std::vector<T> out(n);
          tg::kernels::unary_grad(op, {}, g.data(), x.data(), out.data(), n);
          return out;
        },
        "gradient " + std::to_string(static_cast<int>(op)));
  same(
      [&] {
        std::vector<T> acc = x;
        tg::kernels::accumulate(acc.data(), g.data(), n);
        return acc;
      },
      "accumulate");
  // A row broadcast over many rows: split along the outer axis.
  const std::size_t rows = 401, cols = n / rows;
  const std::vector<std::size_t> full{rows, cols}, row{cols};
  const auto plan = tg::kernels::broadcast_plan(full, row, full);
  auto run_binary = [&] {
    std::vector<T> out(rows * cols);
    tg::kernels::binary(BinaryOp::sub, plan, x.data(), g.data(), out.data());
    return out;
  };
  same(run_binary, "binary broadcast row");
  const auto split = on(2, run_binary);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < rows * cols; ++i) wrong += split[i] != x[i] - g[i % cols];
  CHECK_MESSAGE(wrong == 0, (label + " binary broadcast row on two threads: " + std::to_string(wrong) + " wrong"));
  // Row sums: one long row (summed in blocks), many short rows, empty rows and no rows.
  for (const auto& [r, len] :
       std::vector<std::pair<std::size_t, std::size_t>>{{1, n}, {1, 100}, {rows, cols}, {3, 0}, {0, 5}, {2, n / 2}}) {
    auto run = [&, r = r, len = len] {
      std::vector<T> out(r, T(-1));
      tg::kernels::row_sums(x.data(), r, len, out.data());
      return out;
    };
    const std::string what = "row_sums [" + std::to_string(r) + ", " + std::to_string(len) + "]";
    same(run, what);
    const auto got = on(2, run);
    for (std::size_t i = 0; i < r; ++i) {
      double want = 0, magnitude = 0;
      for (std::size_t k = 0; k < len; ++k) {
        want += static_cast<double>(x[i * len + k]);
        magnitude += std::abs(static_cast<double>(x[i * len + k]));
      }
      CHECK_MESSAGE(std::abs(static_cast<double>(got[i]) - want) <= tolerance<T>() * (1 + magnitude),
                    (label + " " + what + " row " + std::to_string(i) + ": " + std::to_string(got[i]) + " vs " +
                     std::to_string(want)));
    }
  }
}

}  // namespace

TEST_CASE("elementwise maps and row sums split across threads: the same values as on one thread") {
  for (CpuCapability level : levels()) {
    const AtLevel at(level);
    check_split<float>(name_of(level, "float32"));
    check_split<double>(name_of(level, "float64"));
  }
}
