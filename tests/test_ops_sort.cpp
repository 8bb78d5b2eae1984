// sort and topk: values and indices by hand (stable ties, NaN as the largest, descending, any
// axis, 0-d and empty), gradients scattered back through the indices (first and second order),
// and bad input.
#include <cmath>

#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::distinct;

namespace {
using I = xt::xarray<std::int64_t>;
}  // namespace

TEST_CASE("sort: values and indices, stable, NaN last ascending and first descending") {
  const Tensor x = Tensor({3.0, 1.0, 2.0, 3.0, NAN, 1.0});
  const auto [v, i] = sort(x);
  CHECK(i.dtype() == int64);
  CHECK(i.array<std::int64_t>() == I({1, 5, 2, 0, 3, 4}));
  CHECK(v.array<float>()(0) == 1.0f);
  CHECK(v.array<float>()(4) == 3.0f);
  CHECK(std::isnan(v.array<float>()(5)));
  // Descending keeps equal elements in their order too (torch.sort(stable=True)).
  const auto [dv, di] = sort(x, 0, true);
  CHECK(di.array<std::int64_t>() == I({4, 0, 3, 2, 1, 5}));
  CHECK(std::isnan(dv.array<float>()(0)));
  // Along axis 0 and the last axis of a matrix; int64 sorts too.
  const Tensor m = Tensor({{3.0, 1.0, 2.0}, {0.0, 5.0, -1.0}});
  CHECK(sort(m).values.array<float>() == xt::xarray<float>({{1, 2, 3}, {-1, 0, 5}}));
  CHECK(sort(m, 0).indices.array<std::int64_t>() == I({{1, 0, 1}, {0, 1, 0}}));
  CHECK(sort(m, -2, true).values.array<float>() == xt::xarray<float>({{3, 5, 2}, {0, 1, -1}}));
  CHECK(sort(Tensor(I({5, -2, 7}))).values.array<std::int64_t>() == I({-2, 5, 7}));
  // -inf and inf are ordinary extremes; 0-d and empty tensors.
  CHECK(sort(Tensor({INFINITY, -INFINITY, 0.0})).indices.array<std::int64_t>() == I({1, 2, 0}));
  const auto [sv, si] = sort(scalar_tensor(2.0));
  CHECK(sv.shape() == Shape{});
  CHECK(si.item() == 0.0);
  CHECK(sort(zeros({2, 0})).indices.shape() == Shape{2, 0});
}

TEST_CASE("topk: the k largest or smallest, in order, with their indices") {
  const Tensor x = Tensor({{1.0, 4.0, 2.0, 8.0}, {7.0, 3.0, 9.0, 0.0}});
  const auto [v, i] = topk(x, 2);
  CHECK(v.array<float>() == xt::xarray<float>({{8, 4}, {9, 7}}));
  CHECK(i.array<std::int64_t>() == I({{3, 1}, {2, 0}}));
  CHECK(topk(x, 3, 1, false).indices.array<std::int64_t>() == I({{0, 2, 1}, {3, 1, 0}}));
  CHECK(topk(x, 1, 0).values.array<float>() == xt::xarray<float>({{7, 4, 9, 8}}));
  CHECK(topk(x, 0).values.shape() == Shape{2, 0});
  CHECK(topk(x, 4, -1, true, false).values.shape() == Shape{2, 4});
  // NaN is the largest; ties keep their order along the axis.
  CHECK(topk(Tensor({1.0, NAN, 3.0}), 2).indices.array<std::int64_t>() == I({1, 2}));
  CHECK(topk(Tensor({2.0, 5.0, 2.0, 5.0}), 3).indices.array<std::int64_t>() == I({1, 3, 0}));
  CHECK(topk(scalar_tensor(4.0), 1).values.item() == 4.0);
}

TEST_CASE("sort and topk: the gradient goes back through the indices") {
  const Tensor x = Tensor(xt::xarray<double>({3.0, 1.0, 2.0})).requires_grad_();
  sort(x).values.backward(Tensor(xt::xarray<double>({10.0, 20.0, 30.0})));
  CHECK(x.grad().array<double>() == xt::xarray<double>({30, 10, 20}));
  const Tensor y = Tensor(xt::xarray<double>({3.0, 1.0, 2.0})).requires_grad_();
  topk(y, 2, 0, false).values.backward(Tensor(xt::xarray<double>({5.0, 7.0})));
  CHECK(y.grad().array<double>() == xt::xarray<double>({0, 5, 7}));
  std::uint64_t seed = 1;
  for (int axis : {0, 1, -1})
    for (bool flag : {false, true}) {
      INFO("axis ", axis, " descending/largest ", flag);
      CHECK_GRADCHECK([=](const TensorList& in) { return sort(in[0], axis, flag).values; },
                      {distinct({2, 3, 4}, seed++)});
      CHECK_GRADCHECK([=](const TensorList& in) { return topk(in[0], 2, axis, flag).values; },
                      {distinct({2, 3, 4}, seed++)});
      // Second order through a product: the scatter's own backward is a gather.
      CHECK_GRADGRADCHECK([=](const TensorList& in) { return sort(in[0] * in[0], axis, flag).values; },
                          {distinct({2, 3, 4}, seed++)});
      CHECK_GRADGRADCHECK([=](const TensorList& in) { return topk(in[0] * in[0], 2, axis, flag).values; },
                          {distinct({2, 3, 4}, seed++)});
    }
  CHECK_GRADCHECK([](const TensorList& in) { return sort(in[0]).values; }, {distinct({}, 50)});
}

TEST_CASE("sort and topk: bad input names the op and the shape") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(sort(x, 2), doctest::Contains("sort: axis 2 is out of range for x float32 [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(
      topk(x, 4), doctest::Contains("topk: k = 4 is out of range for axis -1 of x float32 [2, 3] (size 3)"), Error);
  CHECK_THROWS_WITH_AS(topk(x, -1), doctest::Contains("topk: k = -1 is out of range for x float32 [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(topk(x, 1, -3), doctest::Contains("topk: axis -3 is out of range for x float32 [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(topk(scalar_tensor(1.0), 2),
                       doctest::Contains("topk: k = 2 is out of range for axis -1 of x float32 [] (size 1)"), Error);
}
