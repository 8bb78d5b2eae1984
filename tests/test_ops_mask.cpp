// masked_fill, tril and triu: values by hand (broadcast masks, any leading dims, int64), first-
// and second-order gradient checks, gradients zero where masked, and bad input.
#include <cmath>

#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::input;
using tg::testing::shaped;

namespace {
Tensor ints(const Shape& shape, std::initializer_list<std::int64_t> v) {
  return Tensor(tg::testing::shaped<std::int64_t>(shape, v));
}
}  // namespace

TEST_CASE("masked_fill: value where the mask is set, broadcast masks, any dtype") {
  const Tensor x = Tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  const Tensor mask = ints({2, 3}, {1, 0, 0, 0, 1, 1});
  CHECK(masked_fill(x, mask, -1.5).array<float>() == xt::xarray<float>({{-1.5, 2, 3}, {4, -1.5, -1.5}}));
  // A row mask broadcast over the rows, and a column mask over the columns.
  CHECK(masked_fill(x, ints({3}, {0, 1, 0}), 0.0).array<float>() == xt::xarray<float>({{1, 0, 3}, {4, 0, 6}}));
  CHECK(masked_fill(x, ints({2, 1}, {0, 1}), 9.0).array<float>() == xt::xarray<float>({{1, 2, 3}, {9, 9, 9}}));
  // The result takes the broadcast shape (as PyTorch's out-of-place masked_fill).
  CHECK(masked_fill(Tensor({1.0, 2.0}), ints({2, 1}, {1, 0}), 0.0).shape() == Shape{2, 2});
  // Any nonzero mask value counts; a comparison's result is a mask.
  CHECK(masked_fill(x, ints({3}, {0, -2, 7}), 0.0).array<float>() == xt::xarray<float>({{1, 0, 0}, {4, 0, 0}}));
  CHECK(masked_fill(x, gt(x, scalar_tensor(3.5)), 0.0).array<float>() == xt::xarray<float>({{1, 2, 3}, {0, 0, 0}}));
  // -inf fills (attention masks), int64 x truncates the value as PyTorch does.
  CHECK(std::isinf(masked_fill(x, mask, -INFINITY).array<float>()(0, 0)));
  CHECK(masked_fill(ints({2}, {1, 2}), ints({2}, {1, 0}), 1.7).array<std::int64_t>() ==
        xt::xarray<std::int64_t>({1, 2}));
  // NaN in x is replaced where masked, kept elsewhere.
  const Tensor n = masked_fill(Tensor({NAN, NAN}), ints({2}, {1, 0}), 3.0);
  CHECK(n.array<float>()(0) == 3.0f);
  CHECK(std::isnan(n.array<float>()(1)));
  CHECK(masked_fill(zeros({0, 3}), ints({3}, {1, 0, 1}), 1.0).shape() == Shape{0, 3});
  CHECK(masked_fill(scalar_tensor(2.0), ints({}, {1}), 5.0).item() == 5.0);
}

TEST_CASE("masked_fill: gradient is g where unmasked and 0 where masked") {
  const Tensor x = input({2, 3}, 1);
  const Tensor mask = ints({2, 3}, {1, 0, 0, 0, 1, 1});
  masked_fill(x, mask, 4.0).backward(ones({2, 3}, float64));
  CHECK(x.grad().array<double>() == xt::xarray<double>({{0, 1, 1}, {1, 0, 0}}));
  // Broadcast x: the gradient sums back over the broadcast axis.
  const Tensor row = input({3}, 2);
  masked_fill(row, ints({2, 1}, {0, 1}), 0.0).backward(ones({2, 3}, float64));
  CHECK(row.grad().array<double>() == xt::xarray<double>({1, 1, 1}));
  CHECK_GRADCHECK([&](const TensorList& in) { return masked_fill(in[0], mask, 4.0); }, {input({2, 3}, 3)});
  CHECK_GRADCHECK([](const TensorList& in) { return masked_fill(in[0], ints({2, 1}, {0, 1}), 1.0); }, {input({3}, 4)});
  CHECK_GRADCHECK([](const TensorList& in) { return masked_fill(in[0], ints({}, {0}), 1.0); }, {input({}, 5)});
  // Second order through a product, so that the masked backward's own graph matters.
  CHECK_GRADGRADCHECK([&](const TensorList& in) { return masked_fill(in[0] * in[0], mask, 4.0); }, {input({2, 3}, 6)});
  CHECK_GRADGRADCHECK(
      [](const TensorList& in) {
        return masked_fill(in[0] * in[0], ints({2, 1}, {1, 0}), 0.0);
      },
      {input({2, 1, 3}, 7)});
}

TEST_CASE("tril and triu: the triangles of the last two axes, any leading dims") {
  const Tensor x = Tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}, {7.0, 8.0, 9.0}});
  CHECK(tril(x).array<float>() == xt::xarray<float>({{1, 0, 0}, {4, 5, 0}, {7, 8, 9}}));
  CHECK(triu(x).array<float>() == xt::xarray<float>({{1, 2, 3}, {0, 5, 6}, {0, 0, 9}}));
  CHECK(tril(x, 1).array<float>() == xt::xarray<float>({{1, 2, 0}, {4, 5, 6}, {7, 8, 9}}));
  CHECK(tril(x, -1).array<float>() == xt::xarray<float>({{0, 0, 0}, {4, 0, 0}, {7, 8, 0}}));
  CHECK(triu(x, 1).array<float>() == xt::xarray<float>({{0, 2, 3}, {0, 0, 6}, {0, 0, 0}}));
  CHECK(triu(x, -1).array<float>() == xt::xarray<float>({{1, 2, 3}, {4, 5, 6}, {0, 8, 9}}));
  CHECK(tril(x, 5).array<float>() == x.array<float>());
  CHECK(triu(x, 5).array<float>() == xt::zeros<float>({3, 3}));
  // Non-square and batched: each [2, 3] matrix on its own.
  const Tensor b = ones({2, 2, 3}, int64);
  CHECK(triu(b).array<std::int64_t>() == xt::xarray<std::int64_t>({{{1, 1, 1}, {0, 1, 1}}, {{1, 1, 1}, {0, 1, 1}}}));
  CHECK(tril(zeros({2, 0, 3})).shape() == Shape{2, 0, 3});
  // A NaN outside the triangle becomes 0, as PyTorch's (it selects, it does not multiply).
  CHECK(tril(Tensor({{1.0, NAN}, {2.0, 3.0}})).array<float>() == xt::xarray<float>({{1, 0}, {2, 3}}));
}

TEST_CASE("tril and triu: gradients are the same triangle of g") {
  const Tensor x = input({3, 3}, 10);
  tril(x, -1).backward(ones({3, 3}, float64));
  CHECK(x.grad().array<double>() == xt::xarray<double>({{0, 0, 0}, {1, 0, 0}, {1, 1, 0}}));
  for (std::int64_t d : {-1, 0, 2}) {
    INFO("diagonal ", d);
    CHECK_GRADCHECK([d](const TensorList& in) { return tril(in[0], d); }, {input({2, 3, 4}, 11)});
    CHECK_GRADCHECK([d](const TensorList& in) { return triu(in[0], d); }, {input({4, 3}, 12)});
    CHECK_GRADGRADCHECK([d](const TensorList& in) { return tril(in[0] * in[0], d); }, {input({3, 3}, 13)});
    CHECK_GRADGRADCHECK([d](const TensorList& in) { return triu(in[0] * in[0], d); }, {input({2, 2, 3}, 14)});
  }
}

TEST_CASE("masked_fill, tril and triu: bad input names the op and the shapes") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(masked_fill(x, zeros({2, 3}), 0.0),
                       doctest::Contains("masked_fill: expected an int64 mask (0/1, as eq or gt give), got float32 "
                                         "[2, 3] for x float32 [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(masked_fill(x, ones({4}, int64), 0.0),
                       doctest::Contains("masked_fill: shapes [2, 3] and [4] do not broadcast"), Error);
  CHECK_THROWS_WITH_AS(tril(zeros({3})),
                       doctest::Contains("tril: expected a tensor of rank >= 2 ([..., M, N]), got float32 [3]"), Error);
  CHECK_THROWS_WITH_AS(triu(scalar_tensor(1.0)),
                       doctest::Contains("triu: expected a tensor of rank >= 2 ([..., M, N]), got float32 []"), Error);
}
