// logsumexp, var, std, norm and cumsum: values by hand, first- and second-order gradient checks
// in float64 over several shapes and axis sets, PyTorch's conventions at the edges (infinite
// slices, zero norms, dof <= 0), and bad input.
#include <cmath>
#include <limits>

#include "op_test_support.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::away_from_zero;
using tg::testing::distinct;
using tg::testing::input;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

const Tensor kX = Tensor(xt::xarray<double>({{1.0, 2.0, 3.0}, {-1.0, 0.0, 4.0}}));

// Axis sets of a rank-3 tensor, negative and unsorted ones included.
const std::vector<Axes> kAxes = {{0}, {2}, {-1}, {0, 2}, {2, 0}, {0, 1, 2}};

double lse(std::initializer_list<double> v) {
  double s = 0;
  for (double e : v) s += std::exp(e);
  return std::log(s);
}

}  // namespace

TEST_CASE("logsumexp: values, stability and infinite slices") {
  const Tensor r = logsumexp(kX, {1});
  CHECK(r.shape() == Shape{2});
  CHECK(r.array<double>()(0) == doctest::Approx(lse({1, 2, 3})).epsilon(1e-14));
  CHECK(r.array<double>()(1) == doctest::Approx(lse({-1, 0, 4})).epsilon(1e-14));
  CHECK(logsumexp(kX, {0}, true).shape() == Shape{1, 3});
  CHECK(logsumexp(kX, {0, 1}).item() == doctest::Approx(lse({1, 2, 3, -1, 0, 4})).epsilon(1e-14));
  // Shifted by the maximum: no overflow at 1000, no underflow at -1000.
  CHECK(logsumexp(Tensor({1000.0, 1000.0}), {0}).item() == doctest::Approx(1000 + std::log(2.0)));
  CHECK(logsumexp(Tensor({-1000.0, -1000.0}), {0}).item() == doctest::Approx(-1000 + std::log(2.0)));
  // -inf slices give -inf, +inf gives inf, NaN gives NaN; an empty slice gives -inf.
  const Tensor edge = logsumexp(Tensor(xt::xarray<double>({{-kInf, -kInf}, {kInf, 1.0}, {NAN, 1.0}})), {1});
  CHECK(edge.array<double>()(0) == -kInf);
  CHECK(edge.array<double>()(1) == kInf);
  CHECK(std::isnan(edge.array<double>()(2)));
  CHECK(logsumexp(zeros({0, 3}), {0}).array<float>() == xt::xarray<float>({-INFINITY, -INFINITY, -INFINITY}));
  CHECK(logsumexp(Tensor({1.0f, 2.0f}), {0}).dtype() == float32);
}

TEST_CASE("logsumexp: the gradient is the slice's softmax") {
  const Tensor x = input({2, 3}, 1);
  logsumexp(x, {1}).backward(ones({2}, float64));
  const xt::xarray<double> v = x.detach().array<double>();
  for (std::size_t i = 0; i < 2; ++i) {
    const double s = std::exp(v(i, 0)) + std::exp(v(i, 1)) + std::exp(v(i, 2));
    for (std::size_t j = 0; j < 3; ++j) CHECK(x.grad().array<double>()(i, j) == doctest::Approx(std::exp(v(i, j)) / s));
  }
  std::uint64_t seed = 10;
  for (const Axes& axes : kAxes)
    for (bool keep : {false, true}) {
      INFO("axes [", fmt::format("{}", fmt::join(axes, ", ")), "] keepdims ", keep);
      CHECK_GRADCHECK([&](const TensorList& in) { return logsumexp(in[0], axes, keep); }, {input({2, 3, 4}, seed++)});
      CHECK_GRADGRADCHECK([&](const TensorList& in) { return logsumexp(in[0], axes, keep); },
                          {input({2, 3, 4}, seed++)});
    }
  CHECK_GRADCHECK([](const TensorList& in) { return logsumexp(in[0], {}); }, {input({}, 30)});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return logsumexp(in[0], {0}); }, {input({1}, 31)});
}

TEST_CASE("var and std: correction, axes and dof <= 0") {
  // Row 0: mean 2, squared deviations 2; row 1: mean 1, squared deviations 14.
  CHECK(var(kX, {1}).array<double>() == xt::xarray<double>({1.0, 7.0}));
  CHECK(var(kX, {1}, 0).array<double>()(1) == doctest::Approx(14.0 / 3));
  CHECK(tg::std(kX, {1}).array<double>()(1) == doctest::Approx(std::sqrt(7.0)));
  CHECK(var(kX, {1}, 1, true).shape() == Shape{2, 1});
  // All elements: mean 1.5, squared deviations 17.5.
  CHECK(var(kX).item() == doctest::Approx(17.5 / 5));
  CHECK(var(kX, 0).item() == doctest::Approx(17.5 / 6));
  CHECK(tg::std(kX).item() == doctest::Approx(std::sqrt(17.5 / 5)));
  CHECK(var(kX).shape() == Shape{});
  // var(x, {1}) is over axis 1, not a correction of 1.
  CHECK(var(kX, {1}).shape() == Shape{2});
  // dof = max(0, N - correction): 0 gives inf (or NaN for 0/0), as PyTorch.
  CHECK(var(Tensor({1.0, 2.0}), {0}, 3).item() == kInf);
  CHECK(std::isnan(var(Tensor({1.0}), {0}).item()));
  CHECK(std::isnan(var(zeros({0})).item()));
  CHECK(std::isnan(tg::std(Tensor({1.0, 1.0}), {0}, 2).item()));
  CHECK(var(Tensor({1.0f, 2.0f}), {0}).dtype() == float32);
}

TEST_CASE("var and std: gradients, and std's gradient 0 where std is 0") {
  std::uint64_t seed = 40;
  for (const Axes& axes : kAxes)
    for (std::int64_t correction : {0, 1, 2}) {
      if (axes == Axes{0} && correction == 2) continue;  // N = 2: dof 0, var inf
      INFO("axes [", fmt::format("{}", fmt::join(axes, ", ")), "] correction ", correction);
      CHECK_GRADCHECK([&](const TensorList& in) { return var(in[0], axes, correction); }, {input({2, 3, 4}, seed++)});
      CHECK_GRADCHECK([&](const TensorList& in) { return tg::std(in[0], axes, correction, true); },
                      {input({2, 3, 4}, seed++)});
      CHECK_GRADGRADCHECK([&](const TensorList& in) { return var(in[0], axes, correction, true); },
                          {input({2, 3, 4}, seed++)});
      CHECK_GRADGRADCHECK([&](const TensorList& in) { return tg::std(in[0], axes, correction); },
                          {input({2, 3, 4}, seed++)});
    }
  CHECK_GRADCHECK([](const TensorList& in) { return tg::std(in[0]); }, {input({5}, 60)});
  const Tensor flat = Tensor(xt::xarray<double>({2.0, 2.0, 2.0})).requires_grad_();
  tg::std(flat, {0}).backward();
  CHECK(flat.grad().array<double>() == xt::xarray<double>({0, 0, 0}));
}

TEST_CASE("norm: p = 2, 1, inf, -inf, 0 and general p") {
  const Tensor v = Tensor(xt::xarray<double>({3.0, -4.0, 0.0}));
  CHECK(norm(v).item() == 5.0);
  CHECK(norm(v, 1).item() == 7.0);
  CHECK(norm(v, kInf).item() == 4.0);
  CHECK(norm(v, -kInf).item() == 0.0);
  CHECK(norm(v, 0).item() == 2.0);
  CHECK(norm(v, 3).item() == doctest::Approx(std::cbrt(27.0 + 64.0)));
  CHECK(norm(v, 0.5).item() == doctest::Approx(std::pow(std::sqrt(3.0) + 2.0, 2.0)));
  CHECK(norm(kX, 2, {1}).array<double>()(1) == doctest::Approx(std::sqrt(17.0)));
  CHECK(norm(kX, 1, {0}, true).shape() == Shape{1, 3});
  CHECK(norm(kX, 1, {0}, true).array<double>() == xt::xarray<double>({{2, 2, 7}}));
  CHECK(norm(zeros({0, 3}), 2).item() == 0.0);
  CHECK(std::isnan(norm(Tensor({1.0, NAN}), kInf).item()));
  CHECK(norm(Tensor({1.0, -kInf}), 2).item() == kInf);
}

TEST_CASE("norm: gradients as PyTorch's, 0 at a zero vector for p = 2") {
  std::uint64_t seed = 70;
  for (double p : {2.0, 1.0, 3.0, 1.5, 0.5, kInf, -kInf})
    for (const Axes& axes : {Axes{}, Axes{1}, Axes{0, 2}}) {
      INFO("p ", p, " axes [", fmt::format("{}", fmt::join(axes, ", ")), "]");
      // Distinct values away from zero: no kinks and no tied maxima.
      const Tensor x = p == 1.0 || p == 0.5 || std::isinf(p) ? distinct({2, 3, 4}, seed++) : input({2, 3, 4}, seed++);
      CHECK_GRADCHECK([&](const TensorList& in) { return norm(in[0], p, axes); }, {x});
      CHECK_GRADGRADCHECK([&](const TensorList& in) { return norm(in[0], p, axes, true); }, {x});
    }
  const Tensor z = zeros({3}, float64).requires_grad_();
  norm(z).backward();
  CHECK(z.grad().array<double>() == xt::xarray<double>({0, 0, 0}));
  // Tied maxima share the inf norm's gradient; p = 0 has none.
  const Tensor t = Tensor(xt::xarray<double>({-2.0, 2.0, 1.0})).requires_grad_();
  norm(t, kInf).backward();
  CHECK(t.grad().array<double>() == xt::xarray<double>({-0.5, 0.5, 0.0}));
  const Tensor c = Tensor(xt::xarray<double>({-2.0, 2.0})).requires_grad_();
  norm(c, 0).backward();
  CHECK(c.grad().array<double>() == xt::xarray<double>({0, 0}));
}

TEST_CASE("cumsum: floats and int64 along any axis, gradient the reversed cumsum") {
  CHECK(cumsum(kX, 1).array<double>() == xt::xarray<double>({{1, 3, 6}, {-1, -1, 3}}));
  CHECK(cumsum(kX, 0).array<double>() == xt::xarray<double>({{1, 2, 3}, {0, 2, 7}}));
  CHECK(cumsum(kX, -1).array<double>() == cumsum(kX, 1).array<double>());
  const Tensor i = cumsum(Tensor(xt::xarray<std::int64_t>({1, 2, 3})), 0);
  CHECK(i.dtype() == int64);
  CHECK(i.array<std::int64_t>() == xt::xarray<std::int64_t>({1, 3, 6}));
  CHECK(cumsum(scalar_tensor(3.0), 0).item() == 3.0);
  CHECK(cumsum(scalar_tensor(3.0), -1).shape() == Shape{});
  CHECK(cumsum(zeros({0, 3}), 1).shape() == Shape{0, 3});
  const Tensor x = input({4}, 80);
  cumsum(x, 0).backward(Tensor(xt::xarray<double>({1.0, 2.0, 3.0, 4.0})));
  CHECK(x.grad().array<double>() == xt::xarray<double>({10, 9, 7, 4}));
  std::uint64_t seed = 81;
  for (int axis : {0, 1, -1}) {
    CHECK_GRADCHECK([axis](const TensorList& in) { return cumsum(in[0], axis); }, {input({2, 3, 4}, seed++)});
    CHECK_GRADGRADCHECK([axis](const TensorList& in) { return cumsum(in[0] * in[0], axis); },
                        {input({2, 3, 4}, seed++)});
  }
  CHECK_GRADCHECK([](const TensorList& in) { return cumsum(in[0], 0); }, {input({}, 90)});
}

TEST_CASE("statistics: bad input names the op, dtype and shape") {
  const Tensor labels = ones({2, 3}, int64);
  for (const char* op : {"logsumexp", "var", "std", "norm"}) {
    INFO(op);
    const std::string expected = std::string(op) + ": expected a float32 or float64 tensor, got int64 [2, 3]";
    auto call = [&]() {
      const std::string name = op;
      if (name == "logsumexp") return logsumexp(labels, {0});
      if (name == "var") return var(labels, {0});
      if (name == "std") return tg::std(labels, {0});
      return norm(labels);
    };
    CHECK_THROWS_WITH_AS(call(), doctest::Contains(expected.c_str()), Error);
  }
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(logsumexp(x, {2}), doctest::Contains("logsumexp: axis 2 is out of range for shape [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(var(x, {1, -1}), doctest::Contains("var: axis repeated in [1, -1]"), Error);
  CHECK_THROWS_WITH_AS(tg::std(x, {-3}), doctest::Contains("std: axis -3 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(norm(x, 2, {5}), doctest::Contains("norm: axis 5 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(norm(x, NAN), doctest::Contains("norm: p must be a number, got nan for x float32 [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(norm(zeros({3, 0}), kInf, {1}),
                       doctest::Contains("norm: the inf norm of x float32 [3, 0] over axes [1] reduces empty slices"),
                       Error);
  CHECK_THROWS_WITH_AS(norm(zeros({0}), -kInf), doctest::Contains("norm: the -inf norm of x float32 [0]"), Error);
  CHECK_THROWS_WITH_AS(cumsum(x, 2), doctest::Contains("cumsum: axis 2 is out of range for x float32 [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(cumsum(scalar_tensor(1.0), 1),
                       doctest::Contains("cumsum: axis 1 is out of range for x float32 []"), Error);
}
