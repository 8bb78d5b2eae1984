// Elementwise ops: values, gradient checks (broadcasting with size-1 dims, a value used twice,
// inputs away from kinks and ties), second-order checks, scalar operators and bad input.
#include <cmath>

#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::away_from_zero;
using tg::testing::input;
using tg::testing::shaped;

namespace {
using Binary = Tensor (*)(const Tensor&, const Tensor&);
using Unary = Tensor (*)(const Tensor&);

// Shape pairs that broadcast, including size-1 dims on either side and a missing leading dim.
const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {{{3}, {3}},       {{2, 3}, {2, 3}},    {{2, 3}, {3}},
                                                              {{2, 1}, {1, 3}}, {{4, 1, 3}, {2, 1}}, {{}, {2, 2}}};

xt::xarray<double> values(const Tensor& t) { return t.to(float64).array<double>(); }
}  // namespace

TEST_CASE("forward values of the elementwise ops") {
  const Tensor a = Tensor({1.0, -2.0, 4.0}).to(float64);
  const Tensor b = Tensor({2.0, 0.5, -1.0}).to(float64);
  CHECK(values(add(a, b)) == xt::xarray<double>({3, -1.5, 3}));
  CHECK(values(sub(a, b)) == xt::xarray<double>({-1, -2.5, 5}));
  CHECK(values(mul(a, b)) == xt::xarray<double>({2, -1, -4}));
  CHECK(values(div(a, b)) == xt::xarray<double>({0.5, -4, -4}));
  CHECK(values(neg(a)) == xt::xarray<double>({-1, 2, -4}));
  CHECK(values(abs(a)) == xt::xarray<double>({1, 2, 4}));
  CHECK(values(relu(a)) == xt::xarray<double>({1, 0, 4}));
  CHECK(values(leaky_relu(a, 0.1)) == xt::xarray<double>({1, -0.2, 4}));
  CHECK(values(clamp(a, -1.0, 2.0)) == xt::xarray<double>({1, -1, 2}));
  CHECK(values(maximum(a, b)) == xt::xarray<double>({2, 0.5, 4}));
  CHECK(values(minimum(a, b)) == xt::xarray<double>({1, -2, -1}));
  CHECK(values(pow(Tensor({2.0, 3.0}), 2.0)) == xt::xarray<double>({4, 9}));
  CHECK(values(pow(Tensor({2.0, 9.0}), Tensor({3.0, 0.5}))) == xt::xarray<double>({8, 3}));
  CHECK(exp(a).array<double>()(2) == doctest::Approx(std::exp(4.0)));
  CHECK(log(b.detach() * b.detach()).array<double>()(0) == doctest::Approx(std::log(4.0)));
  CHECK(sqrt(Tensor({4.0, 9.0})).array<float>() == xt::xarray<float>({2, 3}));
  CHECK(sigmoid(scalar_tensor(0.0)).item() == doctest::Approx(0.5));
  CHECK(sigmoid(scalar_tensor(-1000.0)).item() == 0.0);  // no overflow for large |x|
  CHECK(sigmoid(scalar_tensor(1000.0)).item() == 1.0);
  CHECK(tanh(scalar_tensor(0.5, float64)).item() == doctest::Approx(std::tanh(0.5)));
  const Tensor cond = Tensor(xt::xarray<std::int64_t>({1, 0, 1}));
  CHECK(values(where(cond, a, b)) == xt::xarray<double>({1, 0.5, 4}));
}

TEST_CASE("broadcasting follows NumPy, with size-1 dims on both sides") {
  const Tensor a = Tensor(shaped<float>({2, 1}, {1, 2}));  // [2, 1]
  const Tensor b = Tensor({10.0, 20.0, 30.0});             // [3]
  const Tensor c = a + b;
  CHECK(c.shape() == Shape{2, 3});
  CHECK(c.array<float>() == xt::xarray<float>({{11, 21, 31}, {12, 22, 32}}));
  CHECK(broadcast_shapes({4, 1, 3}, {2, 1}, "test") == Shape{4, 2, 3});
}

TEST_CASE("comparisons give int64 0/1 and are not differentiable") {
  const Tensor a = Tensor({1.0, 2.0, 3.0}).requires_grad_();
  const Tensor b = Tensor({2.0, 2.0, 2.0});
  CHECK(lt(a, b).dtype() == int64);
  CHECK(lt(a, b).array<std::int64_t>() == xt::xarray<std::int64_t>({1, 0, 0}));
  CHECK(le(a, b).array<std::int64_t>() == xt::xarray<std::int64_t>({1, 1, 0}));
  CHECK(gt(a, b).array<std::int64_t>() == xt::xarray<std::int64_t>({0, 0, 1}));
  CHECK(ge(a, b).array<std::int64_t>() == xt::xarray<std::int64_t>({0, 1, 1}));
  CHECK(eq(a, b).array<std::int64_t>() == xt::xarray<std::int64_t>({0, 1, 0}));
  CHECK(ne(a, b).array<std::int64_t>() == xt::xarray<std::int64_t>({1, 0, 1}));
  CHECK_FALSE(lt(a, b).requires_grad());
}

TEST_CASE("gradcheck: binary ops over broadcast shapes") {
  const std::vector<std::pair<const char*, Binary>> ops = {
      {"add", add}, {"sub", sub}, {"mul", mul}, {"maximum", maximum}, {"minimum", minimum}};
  std::uint64_t seed = 1;
  for (const auto& [name, op] : ops)
    for (const auto& [sa, sb] : kBroadcastPairs) {
      CAPTURE(name);
      INFO(shape_str(sa), " with ", shape_str(sb));
      const Tensor a = input(sa, seed++), b = input(sb, seed++);
      CHECK_GRADCHECK([op](const TensorList& in) { return op(in[0], in[1]); }, {a, b});
    }
  for (const auto& [sa, sb] : kBroadcastPairs) {
    INFO("div ", shape_str(sa), " with ", shape_str(sb));
    const Tensor a = input(sa, seed++), b = away_from_zero(sb, seed++);
    CHECK_GRADCHECK([](const TensorList& in) { return div(in[0], in[1]); }, {a, b});
    INFO("pow ", shape_str(sa), " with ", shape_str(sb));
    const Tensor base = input(sa, seed++, 0.3, 2.0), exponent = input(sb, seed++, -2.0, 2.0);
    CHECK_GRADCHECK([](const TensorList& in) { return pow(in[0], in[1]); }, {base, exponent});
  }
}

TEST_CASE("gradcheck: unary ops over several shapes, away from kinks") {
  const std::vector<std::pair<const char*, Unary>> smooth = {
      {"neg", neg}, {"exp", exp}, {"sigmoid", sigmoid}, {"tanh", tanh}};
  const std::vector<std::pair<const char*, Unary>> kinked = {{"abs", abs}, {"relu", relu}};
  const std::vector<Shape> shapes = {{}, {5}, {2, 3}, {2, 1, 3}};
  std::uint64_t seed = 100;
  for (const Shape& s : shapes) {
    INFO("shape ", shape_str(s));
    for (const auto& [name, op] : smooth) {
      CAPTURE(name);
      CHECK_GRADCHECK([op](const TensorList& in) { return op(in[0]); }, {input(s, seed++, -2.0, 2.0)});
    }
    for (const auto& [name, op] : kinked) {
      CAPTURE(name);
      CHECK_GRADCHECK([op](const TensorList& in) { return op(in[0]); }, {away_from_zero(s, seed++)});
    }
    const Tensor positive = input(s, seed++, 0.2, 3.0);
    CHECK_GRADCHECK([](const TensorList& in) { return log(in[0]); }, {positive});
    CHECK_GRADCHECK([](const TensorList& in) { return sqrt(in[0]); }, {positive});
    CHECK_GRADCHECK([](const TensorList& in) { return leaky_relu(in[0], 0.2); }, {away_from_zero(s, seed++)});
    // Inside, below and above the bounds, away from them.
    const Tensor x = away_from_zero(s, seed++);
    CHECK_GRADCHECK([](const TensorList& in) { return clamp(in[0], -0.1, 0.1); }, {x});
    CHECK_GRADCHECK([](const TensorList& in) { return clamp(in[0], -2.0, 2.0); }, {x});
  }
}

TEST_CASE("gradcheck: pow with a scalar exponent") {
  const Tensor positive = input({2, 3}, 7, 0.2, 2.0);
  for (double e : {3.0, 2.0, 0.5, -1.5, 1.0, 0.0}) {
    CAPTURE(e);
    CHECK_GRADCHECK([e](const TensorList& in) { return pow(in[0], e); }, {positive});
  }
  CHECK_GRADCHECK([](const TensorList& in) { return pow(in[0], 3.0); }, {input({4}, 8, -2.0, 2.0)});
}

TEST_CASE("gradcheck: where, in both branches and with broadcasting") {
  const Tensor cond = Tensor(shaped<std::int64_t>({2, 1}, {1, 0}));  // [2, 1]
  const Tensor a = input({2, 3}, 11), b = input({3}, 12);
  CHECK_GRADCHECK([cond](const TensorList& in) { return where(cond, in[0], in[1]); }, {a, b});
  // A condition computed from the input itself, as in a hand-written ReLU.
  const Tensor x = away_from_zero({2, 3}, 13);
  CHECK_GRADCHECK([](const TensorList& in) { return where(gt(in[0], zeros_like(in[0])), in[0], in[0] * 0.5); }, {x});
}

TEST_CASE("gradcheck: a value used twice gets both gradients") {
  const Tensor x = input({2, 3}, 21, 0.2, 2.0);
  CHECK_GRADCHECK([](const TensorList& in) { return in[0] * in[0]; }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return in[0] / (in[0] + 1.0); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return pow(in[0], in[0]); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return exp(in[0]) * tanh(in[0]) - sqrt(in[0]); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return maximum(in[0], in[0] * 0.5); }, {x});
}

TEST_CASE("gradgradcheck: second order of every elementwise op") {
  const Tensor a = input({2, 3}, 31), b = input({3}, 32);
  const Tensor positive = input({2, 3}, 33, 0.3, 2.0);
  const Tensor nonzero = away_from_zero({2, 3}, 34);
  const Tensor nonzero_b = away_from_zero({3}, 35);
  CHECK_GRADGRADCHECK([](const TensorList& in) { return add(in[0], in[1]); }, {a, b});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return sub(in[0], in[1]); }, {a, b});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return mul(in[0], in[1]); }, {a, b});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return div(in[0], in[1]); }, {a, nonzero_b});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return pow(in[0], in[1]); }, {positive, b});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return pow(in[0], 3.0); }, {a});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return pow(in[0], -0.5); }, {positive});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return neg(in[0]); }, {a});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return exp(in[0]); }, {a});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return log(in[0]); }, {positive});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return sqrt(in[0]); }, {positive});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return abs(in[0]); }, {nonzero});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return relu(in[0]); }, {nonzero});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return leaky_relu(in[0], 0.1); }, {nonzero});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return sigmoid(in[0]); }, {a});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return tanh(in[0]); }, {a});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return clamp(in[0], -0.5, 0.5); }, {nonzero});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return maximum(in[0], in[1]); }, {a, b});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return minimum(in[0], in[1]); }, {a, b});
  const Tensor cond = Tensor(xt::xarray<std::int64_t>({1, 0, 1}));
  CHECK_GRADGRADCHECK([cond](const TensorList& in) { return where(cond, in[0], in[1]); }, {a, b});
  // Products of ops, where second derivatives do not vanish.
  CHECK_GRADGRADCHECK([](const TensorList& in) { return in[0] * in[0] * in[1]; }, {a, b});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return relu(in[0]) * in[0]; }, {nonzero});
}

TEST_CASE("gradcheck catches an op that records nothing") {
  // Computed without a graph: analytic gradient zero, numeric gradient 2x.
  auto unrecorded = [](const TensorList& in) {
    NoGradGuard no_grad;
    return in[0] * in[0];
  };
  const GradcheckResult r = gradcheck(unrecorded, {input({3}, 51, 0.5, 1.0)});
  CHECK_FALSE(r.passed);
  CHECK(r.message.find("FAILED") != std::string::npos);
}

TEST_CASE("C++ operators with tensors and scalars") {
  const Tensor x = Tensor({1.0, 2.0, 4.0});
  CHECK((x + 2.0).array<float>() == xt::xarray<float>({3, 4, 6}));
  CHECK((2.0 + x).array<float>() == xt::xarray<float>({3, 4, 6}));
  CHECK((x - 1.0).array<float>() == xt::xarray<float>({0, 1, 3}));
  CHECK((1.0 - x).array<float>() == xt::xarray<float>({0, -1, -3}));
  CHECK((x * 3.0).array<float>() == xt::xarray<float>({3, 6, 12}));
  CHECK((3.0 * x).array<float>() == xt::xarray<float>({3, 6, 12}));
  CHECK((x / 2.0).array<float>() == xt::xarray<float>({0.5, 1, 2}));
  CHECK((4.0 / x).array<float>() == xt::xarray<float>({4, 2, 1}));
  CHECK((-x).array<float>() == xt::xarray<float>({-1, -2, -4}));
  CHECK((x + x * x - x / x).array<float>() == xt::xarray<float>({1, 5, 19}));
  // The scalar takes the tensor's dtype.
  CHECK((x.to(float64) * 0.5).dtype() == float64);
  const Tensor v = input({3}, 41, 0.5, 2.0);
  CHECK_GRADCHECK([](const TensorList& in) { return 3.0 - (2.0 / in[0]) * 4.0 + in[0] / 2.0 - in[0] + 1.0; }, {v});
}

TEST_CASE("bad input: mismatched shapes name the op and both shapes") {
  const Tensor a = zeros({2, 3}), b = zeros({4});
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("add: shapes [2, 3] and [4] do not broadcast"), Error);
  CHECK_THROWS_WITH_AS(a * b, doctest::Contains("mul: shapes [2, 3] and [4]"), Error);
  CHECK_THROWS_WITH_AS(maximum(a, b), doctest::Contains("maximum: shapes [2, 3] and [4]"), Error);
  CHECK_THROWS_WITH_AS(pow(a, b), doctest::Contains("pow: shapes [2, 3] and [4]"), Error);
  CHECK_THROWS_WITH_AS(where(zeros({5}), a, a), doctest::Contains("where: shapes [5] and [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(lt(a, b), doctest::Contains("lt: shapes [2, 3] and [4]"), Error);
}

TEST_CASE("mixed dtypes promote as in PyTorch; int64 where only floats make sense names the op") {
  const Tensor a = zeros({2, 3}), b = zeros({2, 3}, float64);
  CHECK(add(a, b).dtype() == float64);  // tests/test_conformance_promotion.cpp holds every op to PyTorch
  CHECK(where(ones({2, 3}), a, b).dtype() == float64);
  const Tensor labels = zeros({2, 3}, int64);
  CHECK(exp(labels).dtype() == float32);
  CHECK_THROWS_WITH_AS(leaky_relu(labels), doctest::Contains("leaky_relu"), Error);  // as PyTorch: not for Long
  CHECK_THROWS_WITH_AS(clamp(a, 1.0, -1.0), doctest::Contains("clamp: needs low <= high"), Error);
}

TEST_CASE("relu, abs and clamp keep int64 as PyTorch does; a floating clamp bound promotes") {
  const Tensor x = Tensor(xt::xarray<std::int64_t>{-3, 1, 2, 5, std::numeric_limits<std::int64_t>::min()});
  const Tensor r = relu(x), a = abs(x), c = clamp(x, 0, 2);
  CHECK(r.dtype() == int64);
  CHECK(r.array<std::int64_t>() == xt::xarray<std::int64_t>{0, 1, 2, 5, 0});
  // |INT64_MIN| wraps to itself, as in PyTorch (two's complement), not undefined behaviour.
  CHECK(a.array<std::int64_t>() == xt::xarray<std::int64_t>{3, 1, 2, 5, std::numeric_limits<std::int64_t>::min()});
  CHECK(c.dtype() == int64);
  CHECK(c.array<std::int64_t>() == xt::xarray<std::int64_t>{0, 1, 2, 2, 0});
  // torch.clamp(tensor([-3, 1, 2, 5]), 0.5, 2.5) is tensor([0.5, 1., 2., 2.5]).
  const Tensor f = clamp(slice(x, 0, 0, 4), 0.5, 2.5);
  CHECK(f.dtype() == float32);
  CHECK(f.array<float>() == xt::xarray<float>{0.5f, 1.0f, 2.0f, 2.5f});
  CHECK_THROWS_WITH_AS(clamp(x, 3, 1), doctest::Contains("clamp: needs low <= high, got low 3 and high 1"), Error);
}
