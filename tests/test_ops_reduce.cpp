// Reductions: values over all axes and chosen axes with keepdims, gradient checks away from
// ties, tie splitting, argmax, sum_to and bad axes.
#include "op_test_support.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::distinct;
using tg::testing::input;
using tg::testing::shaped;

namespace {
const Tensor kX = Tensor({{1.0, 5.0, 3.0}, {4.0, 2.0, 6.0}});  // [2, 3]

// Axis sets to reduce over for a rank-3 tensor, including negative and unsorted ones.
const std::vector<Axes> kAxes = {{0}, {1}, {2}, {-1}, {0, 2}, {2, 0}, {0, 1, 2}, {}};
}  // namespace

TEST_CASE("sum and mean over all axes and chosen axes") {
  CHECK(sum(kX).shape() == Shape{});
  CHECK(sum(kX).item() == 21.0);
  CHECK(mean(kX).item() == 3.5);
  CHECK(sum(kX, {0}).array<float>() == xt::xarray<float>({5, 7, 9}));
  CHECK(sum(kX, {1}).array<float>() == xt::xarray<float>({9, 12}));
  CHECK(sum(kX, {-1}, true).shape() == Shape{2, 1});
  CHECK(sum(kX, {-1}, true).array<float>() == shaped<float>({2, 1}, {9, 12}));
  CHECK(sum(kX, {0, 1}, true).shape() == Shape{1, 1});
  CHECK(mean(kX, {0}).array<float>() == xt::xarray<float>({2.5, 3.5, 4.5}));
  CHECK(sum(kX, {}).array<float>() == kX.array<float>());  // no axes: unchanged
  // A rank-3 case against a hand loop.
  Generator gen(3);
  const Tensor t = randn({2, 3, 4}, gen, float64);
  const Tensor s = sum(t, {0, 2});
  for (std::size_t j = 0; j < 3; ++j) {
    double expected = 0;
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t k = 0; k < 4; ++k) expected += t.array<double>()(i, j, k);
    CHECK(s.array<double>()(j) == doctest::Approx(expected));
  }
  // Integers sum as integers.
  CHECK(sum(Tensor(xt::xarray<std::int64_t>({1, 2, 3}))).dtype() == int64);
  CHECK(sum(zeros({0, 3}), {0}).array<float>() == xt::xarray<float>({0, 0, 0}));
}

TEST_CASE("max and min over all axes and chosen axes") {
  CHECK(max(kX).item() == 6.0);
  CHECK(min(kX).item() == 1.0);
  CHECK(max(kX, {0}).array<float>() == xt::xarray<float>({4, 5, 6}));
  CHECK(min(kX, {1}, true).array<float>() == shaped<float>({2, 1}, {1, 2}));
  CHECK(max(Tensor({-3.0, -1.0, -2.0})).item() == -1.0);  // negative values: not clipped at 0
  CHECK(max(Tensor(xt::xarray<std::int64_t>({-7, -9}))).item() == -7.0);
}

TEST_CASE("argmax along an axis and overall, first index on ties") {
  CHECK(argmax(kX, 1).array<std::int64_t>() == xt::xarray<std::int64_t>({1, 2}));
  CHECK(argmax(kX, 0).array<std::int64_t>() == xt::xarray<std::int64_t>({1, 0, 1}));
  CHECK(argmax(kX, -1, true).shape() == Shape{2, 1});
  CHECK(argmax(kX).item() == 5.0);
  CHECK(argmax(Tensor({2.0, 7.0, 7.0}), 0).item() == 1.0);
  CHECK(argmax(kX, 1).dtype() == int64);
}

TEST_CASE("gradcheck: sum, mean, max, min over every axis set, with and without keepdims") {
  std::uint64_t seed = 1;
  for (const Axes& axes : kAxes)
    for (bool keepdims : {false, true}) {
      INFO("axes [", fmt::format("{}", fmt::join(axes, ", ")), "] keepdims ", keepdims);
      const Tensor x = input({2, 3, 4}, seed++);
      CHECK_GRADCHECK([&](const TensorList& in) { return sum(in[0], axes, keepdims); }, {x});
      CHECK_GRADCHECK([&](const TensorList& in) { return mean(in[0], axes, keepdims); }, {x});
      const Tensor d = distinct({2, 3, 4}, seed++);
      CHECK_GRADCHECK([&](const TensorList& in) { return max(in[0], axes, keepdims); }, {d});
      CHECK_GRADCHECK([&](const TensorList& in) { return min(in[0], axes, keepdims); }, {d});
    }
  const Tensor d = distinct({3, 1, 2}, 99);
  CHECK_GRADCHECK([](const TensorList& in) { return max(in[0]); }, {d});
  CHECK_GRADCHECK([](const TensorList& in) { return min(in[0]); }, {d});
  CHECK_GRADCHECK([](const TensorList& in) { return mean(in[0]); }, {d});
  CHECK_GRADCHECK([](const TensorList& in) { return sum(in[0]); }, {d});
  CHECK_GRADCHECK([](const TensorList& in) { return sum(in[0]); }, {input({}, 5)});
}

TEST_CASE("gradcheck: reductions of a value used twice, and after broadcasting") {
  const Tensor x = input({3, 4}, 11);
  CHECK_GRADCHECK([](const TensorList& in) { return sum(in[0] * in[0], {1}); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return in[0] - mean(in[0], {1}, true); }, {x});
  const Tensor d = distinct({3, 4}, 12);
  CHECK_GRADCHECK([](const TensorList& in) { return in[0] - max(in[0], {1}, true); }, {d});
  const Tensor row = input({1, 4}, 13);
  CHECK_GRADCHECK([](const TensorList& in) { return sum(in[0] * in[1], {0}); }, {x, row});
}

TEST_CASE("gradgradcheck: reductions") {
  const Tensor x = input({2, 3}, 21);
  CHECK_GRADGRADCHECK([](const TensorList& in) { return sum(in[0] * in[0], {1}); }, {x});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return mean(in[0] * in[0] * in[0], {0}, true); }, {x});
  const Tensor d = distinct({2, 3}, 22);
  CHECK_GRADGRADCHECK([](const TensorList& in) { return max(in[0] * in[0], {1}); }, {d});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return min(in[0]) * sum(in[0]); }, {d});
}

TEST_CASE("max and min split the gradient evenly between ties") {
  const Tensor x = Tensor({3.0, 1.0, 3.0, 2.0}).requires_grad_();
  max(x).backward();
  CHECK(x.grad().array<float>() == xt::xarray<float>({0.5, 0, 0.5, 0}));
  const Tensor y = Tensor({{1.0, 1.0}, {0.0, 2.0}}).requires_grad_();
  sum(min(y, {1})).backward();
  CHECK(y.grad().array<float>() == xt::xarray<float>({{0.5, 0.5}, {1, 0}}));
}

TEST_CASE("sum_to undoes broadcasting") {
  const Tensor g = ones({4, 2, 3});
  CHECK(sum_to(g, {2, 1}).array<float>() == shaped<float>({2, 1}, {12, 12}));
  CHECK(sum_to(g, {3}).array<float>() == xt::xarray<float>({8, 8, 8}));
  CHECK(sum_to(g, {}).item() == 24.0);
  CHECK(sum_to(g, {4, 2, 3}).is_same(g));
  CHECK_THROWS_WITH_AS(sum_to(g, {5}), doctest::Contains("sum_to: shape [5] does not broadcast to [4, 2, 3]"), Error);
}

TEST_CASE("bad input: axes out of range name the op and the shape") {
  CHECK_THROWS_WITH_AS(sum(kX, {2}), doctest::Contains("sum: axis 2 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(mean(kX, {-3}), doctest::Contains("mean: axis -3 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(max(kX, {5}, true), doctest::Contains("max: axis 5 is out of range for shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(min(kX, {0, -2}), doctest::Contains("min: axis repeated"), Error);
  CHECK_THROWS_WITH_AS(argmax(kX, 2), doctest::Contains("argmax: axis 2 is out of range"), Error);
  CHECK_THROWS_WITH_AS(max(zeros({0})),
                       doctest::Contains("max: cannot reduce over axis 0 of shape [0], which is empty"), Error);
  CHECK_THROWS_WITH_AS(min(zeros({2, 0}), {1}), doctest::Contains("min: cannot reduce over axis 1 of shape [2, 0]"),
                       Error);
  CHECK_THROWS_WITH_AS(mean(zeros({2}, int64)), doctest::Contains("mean: needs a float tensor"), Error);
}
