// sin, cos, erf and the smooth activations (softplus, gelu, elu, silu): values by hand, gradient
// and second-order checks in float64, the fused backward against the create_graph one, second
// derivatives at NaN, ±inf and the kinks as PyTorch's, bad input, and the nn modules.
#include <cmath>
#include <numbers>

#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::away_from_zero;
using tg::testing::input;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct NamedOp {
  std::string name;
  DifferentiableFn fn;
  bool kink_at_zero;  // gradcheck inputs must stay away from 0
};

// Every op, and each parameter choice that takes another code path.
std::vector<NamedOp> all_ops() {
  return {
      {"sin", [](const TensorList& in) { return sin(in[0]); }, false},
      {"cos", [](const TensorList& in) { return cos(in[0]); }, false},
      {"erf", [](const TensorList& in) { return erf(in[0]); }, false},
      {"softplus", [](const TensorList& in) { return softplus(in[0]); }, false},
      {"softplus beta 2", [](const TensorList& in) { return softplus(in[0], 2.0, 20.0); }, false},
      {"softplus beta -1", [](const TensorList& in) { return softplus(in[0], -1.0, 20.0); }, false},
      {"gelu", [](const TensorList& in) { return gelu(in[0]); }, false},
      {"gelu tanh", [](const TensorList& in) { return gelu(in[0], GeluApproximate::tanh); }, false},
      {"elu", [](const TensorList& in) { return elu(in[0]); }, true},
      {"elu alpha 0.5", [](const TensorList& in) { return elu(in[0], 0.5); }, true},
      {"elu alpha -2", [](const TensorList& in) { return elu(in[0], -2.0); }, true},
      {"silu", [](const TensorList& in) { return silu(in[0]); }, false},
  };
}

Tensor vec(std::initializer_list<double> v) { return Tensor(xt::xarray<double>(v)); }

// Elementwise equality within rtol, NaN only where expected has NaN, infinities exactly.
void check_values(const Tensor& got, const xt::xarray<double>& expected, double rtol, const std::string& what) {
  const xt::xarray<double> g = got.detach().to(float64).array<double>();
  REQUIRE(g.shape() == expected.shape());
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double e = expected.data()[i], v = g.data()[i];
    INFO(what, ", element ", i, ": expected ", e, ", got ", v);
    if (std::isnan(e) || !std::isfinite(e))
      CHECK((std::isnan(e) ? std::isnan(v) : v == e));
    else
      CHECK(std::abs(v - e) <= 1e-300 + rtol * std::abs(e));
  }
}

// d/dx sum(f(x)) with the fused backward, or with the recorded one (create_graph).
Tensor first_derivative(const DifferentiableFn& f, const Tensor& x, bool create_graph) {
  const Tensor in = x.detach().requires_grad_();
  return grad({sum(f({in}))}, {in}, {.create_graph = create_graph})[0];
}

// d²/dx² of sum(f(x)), elementwise: the gradient of the summed first derivative.
Tensor second_derivative(const DifferentiableFn& f, const Tensor& x) {
  const Tensor in = x.detach().requires_grad_();
  const Tensor d = grad({sum(f({in}))}, {in}, {.create_graph = true})[0];
  return grad({sum(d)}, {in})[0];
}

}  // namespace

TEST_CASE("forward values of the special functions and activations") {
  const Tensor x = vec({-1.5, 0.0, 0.5, 2.0});
  check_values(sin(x), {std::sin(-1.5), 0.0, std::sin(0.5), std::sin(2.0)}, 1e-15, "sin");
  check_values(cos(x), {std::cos(-1.5), 1.0, std::cos(0.5), std::cos(2.0)}, 1e-15, "cos");
  check_values(erf(x), {std::erf(-1.5), 0.0, std::erf(0.5), std::erf(2.0)}, 1e-15, "erf");
  // softplus: log(1 + e^x), x itself where beta * x > threshold (2 * 2.0 > 3), not at equality.
  check_values(softplus(x),
               {std::log(1 + std::exp(-1.5)), std::log(2.0), std::log(1 + std::exp(0.5)), std::log(1 + std::exp(2.0))},
               1e-15, "softplus");
  check_values(softplus(vec({1.5, 2.0}), 2.0, 3.0), {std::log(1 + std::exp(3.0)) / 2, 2.0}, 1e-15, "softplus beta 2");
  // gelu(1) = Φ(1) = 0.841344746068543 (exact); the tanh form gives 0.841191990608277.
  check_values(gelu(vec({1.0, -1.0, 0.0})), {0.8413447460685429, -0.15865525393145707, 0.0}, 1e-14, "gelu");
  check_values(gelu(vec({1.0, -1.0}), GeluApproximate::tanh), {0.8411919906082768, -0.15880800939172324}, 1e-14,
               "gelu tanh");
  check_values(elu(x), {std::exp(-1.5) - 1, 0.0, 0.5, 2.0}, 1e-15, "elu");
  check_values(elu(x, 0.5), {0.5 * (std::exp(-1.5) - 1), 0.0, 0.5, 2.0}, 1e-15, "elu alpha 0.5");
  check_values(silu(x), {-1.5 / (1 + std::exp(1.5)), 0.0, 0.5 / (1 + std::exp(-0.5)), 2.0 / (1 + std::exp(-2.0))},
               1e-15, "silu");
  // float32 in, float32 out.
  CHECK(gelu(Tensor({1.0f, 2.0f})).dtype() == float32);
  CHECK(erf(Tensor({0.5})).array<float>()(0) == doctest::Approx(std::erf(0.5)));
}

TEST_CASE("gradcheck: every op over several shapes, away from the kinks") {
  const std::vector<Shape> shapes = {{}, {5}, {2, 3}, {2, 1, 3}};
  std::uint64_t seed = 200;
  for (const NamedOp& op : all_ops())
    for (const Shape& s : shapes) {
      INFO(op.name, " ", shape_str(s));
      const Tensor x = op.kink_at_zero ? away_from_zero(s, seed++) : input(s, seed++, -3.0, 3.0);
      CHECK_GRADCHECK(op.fn, {x});
    }
  // Both sides of softplus's threshold (beta * x = 1 at x = 0.5), away from it.
  const Tensor x = vec({-1.5, -0.2, 0.3, 0.8, 2.0}).requires_grad_();
  CHECK_GRADCHECK([](const TensorList& in) { return softplus(in[0], 2.0, 1.0); }, {x});
}

TEST_CASE("gradgradcheck: second order of every op") {
  std::uint64_t seed = 300;
  for (const NamedOp& op : all_ops())
    for (const Shape& s : {Shape{}, Shape{2, 3}}) {
      INFO(op.name, " ", shape_str(s));
      const Tensor x = op.kink_at_zero ? away_from_zero(s, seed++) : input(s, seed++, -3.0, 3.0);
      CHECK_GRADGRADCHECK(op.fn, {x});
    }
  const Tensor x = vec({-1.5, -0.2, 0.3, 0.8, 2.0}).requires_grad_();
  CHECK_GRADGRADCHECK([](const TensorList& in) { return softplus(in[0], 2.0, 1.0); }, {x});
  // A product, where the second derivative mixes the op's first and second derivatives.
  CHECK_GRADGRADCHECK([](const TensorList& in) { return gelu(in[0]) * silu(in[0]); }, {input({4}, 399, -2.0, 2.0)});
}

TEST_CASE("the fused backward equals the create_graph one, at kinks and special values too") {
  for (Dtype dtype : {float64, float32}) {
    const Tensor x =
        vec({-3.0, -0.7, 0.0, -0.0, 0.4, 2.5, 19.0, 25.0, -30.0, kNaN, kInf, -kInf, 800.0, -800.0}).to(dtype);
    for (const NamedOp& op : all_ops()) {
      INFO(op.name, " ", dtype);
      const Tensor fused = first_derivative(op.fn, x, false);
      const Tensor composed = first_derivative(op.fn, x, true);
      CHECK(fused.dtype() == dtype);
      // 1e-13: gelu's fused slope takes xsimd's erf (a few ulp from glibc's), and Φ(x) + x·φ(x)
      // cancels for x < 0 (a slope of 0.023 at -0.7 from terms of 0.24).
      check_values(composed, fused.to(float64).array<double>(), dtype == float64 ? 1e-13 : 1e-6, op.name);
    }
    // softplus at its threshold (beta * x == threshold takes the log1p branch).
    const Tensor t = vec({2.4, 2.5, 2.6}).to(dtype);
    auto f = [](const TensorList& in) { return softplus(in[0], 2.0, 5.0); };
    check_values(first_derivative(f, t, true), first_derivative(f, t, false).to(float64).array<double>(), 1e-6,
                 "softplus at the threshold");
  }
}

TEST_CASE("second derivatives at NaN, ±inf and the kinks are PyTorch's") {
  // torch.autograd.grad(torch.autograd.grad(f(x).sum(), x, create_graph=True)[0].sum(), x) in
  // PyTorch 1.13, float64, x = [nan, inf, -inf, 0, 25, -30, 2.5].
  const Tensor x = vec({kNaN, kInf, -kInf, 0.0, 25.0, -30.0, 2.5});
  const std::vector<std::pair<NamedOp, xt::xarray<double>>> expected = {
      {{"sin", [](const TensorList& in) { return sin(in[0]); }, false},
       {kNaN, kNaN, kNaN, -0.0, 0.13235175009777303, -0.9880316240928618, -0.5984721441039564}},
      {{"erf", [](const TensorList& in) { return erf(in[0]); }, false},
       {kNaN, kNaN, kNaN, -0.0, -2.0767005318199483e-270, 0.0, -0.01089142115176355}},
      {{"softplus", [](const TensorList& in) { return softplus(in[0]); }, false},
       {kNaN, 0.0, 0.0, 0.25, 0.0, 9.357622968838423e-14, 0.07010371654510807}},
      // 2.5 * 2 == 5: the log1p side for the value and slope, the linear side for the curvature.
      {{"softplus beta 2, threshold 5", [](const TensorList& in) { return softplus(in[0], 2.0, 5.0); }, false},
       {kNaN, 0.0, 0.0, 0.5, 0.0, 1.751302152539304e-26, 0.0}},
      {{"gelu", [](const TensorList& in) { return gelu(in[0]); }, false},
       {kNaN, kNaN, kNaN, 0.7978845608028654, -4.768398225789282e-134, -1.3233342291209357e-193, -0.07449527709766629}},
      {{"gelu tanh", [](const TensorList& in) { return gelu(in[0], GeluApproximate::tanh); }, false},
       {kNaN, kNaN, kNaN, 0.7978845608028654, 0.0, 0.0, -0.07624539207361294}},
      // At 0: slope alpha (the exp side), curvature 0 (the linear side).
      {{"elu alpha 0.5", [](const TensorList& in) { return elu(in[0], 0.5); }, false},
       {kNaN, 0.0, 0.0, 0.0, 0.0, 4.6788114844200874e-14, 0.0}},
      {{"silu", [](const TensorList& in) { return silu(in[0]); }, false},
       {kNaN, kNaN, kNaN, 0.5, -3.194240427576632e-10, -2.6201344312742334e-12, -0.008462156523368874}},
  };
  for (const auto& [op, values] : expected) check_values(second_derivative(op.fn, x), values, 1e-12, op.name);
  // elu's slope at 0 is alpha, from the exp side (F.elu(x, 0.5) at 0: 0.5).
  check_values(first_derivative([](const TensorList& in) { return elu(in[0], 0.5); }, vec({0.0}), false), {0.5}, 0.0,
               "elu slope at 0");
}

TEST_CASE("empty and 0-d inputs keep their shape, with gradients") {
  for (const NamedOp& op : all_ops()) {
    INFO(op.name);
    const Tensor empty = zeros({0, 3}, float64).requires_grad_();
    const Tensor y = op.fn({empty});
    CHECK(y.shape() == Shape{0, 3});
    CHECK(first_derivative(op.fn, empty, false).shape() == Shape{0, 3});
    CHECK(op.fn({scalar_tensor(0.5, float64)}).shape() == Shape{});
  }
}

TEST_CASE("bad input: an int64 tensor names the op") {
  const Tensor labels = zeros({2, 3}, int64);
  CHECK_THROWS_WITH_AS(sin(labels), doctest::Contains("sin: expected a float32 or float64 tensor, got int64"), Error);
  CHECK_THROWS_WITH_AS(cos(labels), doctest::Contains("cos: expected a float32 or float64 tensor, got int64"), Error);
  CHECK_THROWS_WITH_AS(erf(labels), doctest::Contains("erf: expected a float32 or float64 tensor, got int64"), Error);
  CHECK_THROWS_WITH_AS(softplus(labels), doctest::Contains("softplus: expected a float32 or float64 tensor, got int64"),
                       Error);
  CHECK_THROWS_WITH_AS(gelu(labels), doctest::Contains("gelu: expected a float32 or float64 tensor, got int64"), Error);
  CHECK_THROWS_WITH_AS(gelu(labels, GeluApproximate::tanh),
                       doctest::Contains("gelu: expected a float32 or float64 tensor, got int64"), Error);
  CHECK_THROWS_WITH_AS(elu(labels), doctest::Contains("elu: expected a float32 or float64 tensor, got int64"), Error);
  CHECK_THROWS_WITH_AS(silu(labels), doctest::Contains("silu: expected a float32 or float64 tensor, got int64"), Error);
}

TEST_CASE("parameters PyTorch accepts are accepted: softplus beta <= 0, elu alpha <= 0") {
  // F.softplus(x, beta=0) is inf everywhere; F.elu(x, alpha=-1.0) is 1 - exp(x) below 0.
  const Tensor x = vec({-1.0, 0.5});
  check_values(softplus(x, 0.0), {kInf, kInf}, 0.0, "softplus beta 0");
  check_values(softplus(x, -1.0), {-std::log1p(std::exp(1.0)), -std::log1p(std::exp(-0.5))}, 1e-15, "softplus beta -1");
  check_values(elu(x, -1.0), {1.0 - std::exp(-1.0), 0.5}, 1e-15, "elu alpha -1");
  check_values(elu(x, 0.0), {0.0, 0.5}, 0.0, "elu alpha 0");
}

TEST_CASE("activation modules: forward is the op, repr as PyTorch's, inside Sequential") {
  const Tensor x = input({2, 3}, 500, -3.0, 3.0);
  CHECK(nn::GELU()(x).array<double>() == gelu(x).array<double>());
  CHECK(nn::GELU(GeluApproximate::tanh)(x).array<double>() == gelu(x, GeluApproximate::tanh).array<double>());
  CHECK(nn::ELU(0.5)(x).array<double>() == elu(x, 0.5).array<double>());
  CHECK(nn::SiLU()(x).array<double>() == silu(x).array<double>());
  CHECK(nn::Softplus(2.0, 5.0)(x).array<double>() == softplus(x, 2.0, 5.0).array<double>());

  CHECK(nn::GELU().repr() == "GELU(approximate='none')");
  CHECK(nn::GELU(GeluApproximate::tanh).repr() == "GELU(approximate='tanh')");
  CHECK(nn::ELU().repr() == "ELU(alpha=1.0)");
  CHECK(nn::ELU(0.5).repr() == "ELU(alpha=0.5)");
  CHECK(nn::SiLU().repr() == "SiLU()");
  CHECK(nn::Softplus().repr() == "Softplus(beta=1.0, threshold=20.0)");
  CHECK(nn::Softplus(0.5, 1e-05).repr() == "Softplus(beta=0.5, threshold=1e-05)");

  nn::Sequential net{nn::Linear(3, 4), nn::GELU(GeluApproximate::tanh), nn::ELU(0.5), nn::SiLU(), nn::Softplus()};
  net.to(float64);
  const Tensor y = net(x);
  const Tensor expected = softplus(silu(elu(gelu((*net[0])(x), GeluApproximate::tanh), 0.5)));
  CHECK(y.array<double>() == expected.array<double>());
  const GradcheckResult r = nn::check_module(net, x);
  INFO(r.message);
  CHECK(r.passed);
}
