// Shape ops: values, gradient checks (incl. second order for the ones whose backward is its own
// op: slice, index_select, gather) and bad input.
#include "op_test_support.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::input;
using tg::testing::shaped;

namespace {
Tensor arange_f64(const Shape& shape) {
  std::vector<std::int64_t> s(shape.begin(), shape.end());
  const double n = static_cast<double>(zeros(shape).numel());
  return reshape(arange(0.0, n, 1.0, float64), s);
}

Tensor index(std::initializer_list<std::int64_t> v) { return Tensor(xt::xarray<std::int64_t>(v)); }

tg::ArrayRef<double> values(const Tensor& t) { return t.array<double>(); }
}  // namespace

TEST_CASE("reshape, flatten, squeeze, unsqueeze keep the elements in order") {
  const Tensor x = arange_f64({2, 3, 4});
  CHECK(reshape(x, {4, -1}).shape() == Shape{4, 6});
  CHECK(reshape(x, {-1}).shape() == Shape{24});
  CHECK(values(reshape(x, {6, 4}))(1, 0) == 4.0);
  CHECK(flatten(x).shape() == Shape{24});
  CHECK(flatten(x, 1).shape() == Shape{2, 12});
  CHECK(flatten(x, 0, 1).shape() == Shape{6, 4});
  CHECK(flatten(scalar_tensor(2.0)).shape() == Shape{1});
  const Tensor y = zeros({1, 3, 1, 2});
  CHECK(squeeze(y).shape() == Shape{3, 2});
  CHECK(squeeze(y, 2).shape() == Shape{1, 3, 2});
  CHECK(squeeze(y, -4).shape() == Shape{3, 1, 2});
  CHECK(unsqueeze(x, 0).shape() == Shape{1, 2, 3, 4});
  CHECK(unsqueeze(x, -1).shape() == Shape{2, 3, 4, 1});
  CHECK(unsqueeze(x, 2).shape() == Shape{2, 3, 1, 4});
}

TEST_CASE("permute, transpose and broadcast_to move elements as NumPy does") {
  const Tensor x = arange_f64({2, 3, 4});
  const Tensor p = permute(x, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(values(p)(3, 1, 2) == values(x)(1, 2, 3));
  const Tensor t = transpose(x);
  CHECK(t.shape() == Shape{2, 4, 3});
  CHECK(values(t)(1, 3, 0) == values(x)(1, 0, 3));
  CHECK(transpose(x, 0, 2).shape() == Shape{4, 3, 2});
  const Tensor b = broadcast_to(Tensor(shaped<float>({2, 1}, {1, 2})), {3, 2, 4});
  CHECK(b.shape() == Shape{3, 2, 4});
  CHECK(b.array<float>()(2, 1, 3) == 2.0f);
}

TEST_CASE("concat and stack") {
  const Tensor a = arange_f64({2, 3});
  const Tensor b = arange_f64({2, 1}) + 100.0;
  const Tensor c = concat({a, b}, 1);
  CHECK(values(c) == xt::xarray<double>({{0, 1, 2, 100}, {3, 4, 5, 101}}));
  CHECK(values(concat({a, a}, 0)) == xt::xarray<double>({{0, 1, 2}, {3, 4, 5}, {0, 1, 2}, {3, 4, 5}}));
  CHECK(concat({a, b}, -1).shape() == Shape{2, 4});
  CHECK(concat({a}, 0).shape() == Shape{2, 3});
  CHECK(concat({a, zeros({2, 0}, float64)}, 1).shape() == Shape{2, 3});
  const Tensor s = stack({a, a * 2.0}, 1);
  CHECK(s.shape() == Shape{2, 2, 3});
  CHECK(values(s)(1, 1, 2) == 10.0);
  CHECK(stack({a, a, a}, -1).shape() == Shape{2, 3, 3});
  CHECK(stack({scalar_tensor(1.0), scalar_tensor(2.0)}).array<float>() == xt::xarray<float>({1, 2}));
}

TEST_CASE("slice: Python-style bounds and steps") {
  const Tensor x = arange_f64({6});
  CHECK(values(slice(x, 0, 1, 4)) == xt::xarray<double>({1, 2, 3}));
  CHECK(values(slice(x, 0, -2, 6)) == xt::xarray<double>({4, 5}));
  CHECK(values(slice(x, 0, 0, -1, 2)) == xt::xarray<double>({0, 2, 4}));
  CHECK(values(slice(x, 0, 1, 100, 3)) == xt::xarray<double>({1, 4}));
  CHECK(values(slice(x, 0, -100, 2)) == xt::xarray<double>({0, 1}));
  CHECK(slice(x, 0, 4, 2).shape() == Shape{0});
  const Tensor m = arange_f64({3, 4});
  CHECK(values(slice(m, 1, 1, 3)) == xt::xarray<double>({{1, 2}, {5, 6}, {9, 10}}));
  CHECK(values(slice(m, -2, 2, 3)) == xt::xarray<double>({{8, 9, 10, 11}}));
}

TEST_CASE("index_select and gather pick elements along an axis") {
  const Tensor m = arange_f64({3, 4});
  CHECK(values(index_select(m, 0, index({2, 0, 2}))) ==
        xt::xarray<double>({{8, 9, 10, 11}, {0, 1, 2, 3}, {8, 9, 10, 11}}));
  CHECK(values(index_select(m, 1, index({3, 1}))) == xt::xarray<double>({{3, 1}, {7, 5}, {11, 9}}));
  CHECK(index_select(m, 0, index({})).shape() == Shape{0, 4});
  const Tensor labels = Tensor(shaped<std::int64_t>({3, 1}, {1, 3, 0}));
  CHECK(values(gather(m, 1, labels)) == shaped<double>({3, 1}, {1, 7, 8}));
  const Tensor rows = Tensor(xt::xarray<std::int64_t>({{2, 0, 1, 1}}));
  CHECK(values(gather(m, 0, rows)) == xt::xarray<double>({{8, 1, 6, 7}}));
  // An index smaller than x outside the axis, as in torch.gather.
  const Tensor small = Tensor(xt::xarray<std::int64_t>({{0, 2}, {1, 1}}));
  CHECK(values(gather(m, 1, small)) == xt::xarray<double>({{0, 2}, {5, 5}}));
  // Integer tensors too.
  CHECK(index_select(Tensor(xt::xarray<std::int64_t>({5, 6, 7})), 0, index({2})).item() == 7.0);
}

TEST_CASE("index_select and gather add up the gradients of repeated indices") {
  const Tensor x = Tensor({1.0, 2.0, 3.0}).requires_grad_();
  sum(index_select(x, 0, index({0, 2, 0, 0}))).backward();
  CHECK(x.grad().array<float>() == xt::xarray<float>({3, 0, 1}));
  const Tensor y = Tensor({{1.0, 2.0}, {3.0, 4.0}}).requires_grad_();
  sum(gather(y, 1, Tensor(xt::xarray<std::int64_t>({{1, 1, 0}, {0, 0, 0}})))).backward();
  CHECK(y.grad().array<float>() == xt::xarray<float>({{1, 2}, {3, 0}}));
}

TEST_CASE("permute equals xtensor's transpose for every order of 4-D shapes with size-1 and empty axes") {
  // The copy merges axes that stay adjacent and copies runs: every merge pattern, both inner cases.
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{1, 3, 1, 4}, Shape{2, 1, 3, 1}, Shape{2, 0, 3, 2}}) {
    const Tensor x = tg::testing::distinct(shape, 7);
    std::vector<int> perm = {0, 1, 2, 3};
    do {
      INFO("shape ", shape_str(shape), " perm ", fmt::format("{}", fmt::join(perm, ",")));
      std::vector<std::size_t> p(perm.begin(), perm.end());
      const xt::xarray<double> expected = xt::transpose(x.array<double>(), p);
      const Tensor got = permute(x, perm);
      REQUIRE(got.shape() == Shape(expected.shape().begin(), expected.shape().end()));
      CHECK(got.array<double>() == expected);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
  // 0-d and 1-D.
  CHECK(permute(scalar_tensor(3.0), {}).item<float>() == 3.0f);
  CHECK(permute(Tensor({1.0f, 2.0f}), {0}).array<float>() == xt::xarray<float>{1.0f, 2.0f});
}

TEST_CASE("gradcheck: reshape, flatten, permute, transpose, squeeze, unsqueeze, broadcast_to") {
  const Tensor x = input({2, 3, 4}, 1);
  CHECK_GRADCHECK([](const TensorList& in) { return reshape(in[0], {4, -1}); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return flatten(in[0], 1); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return permute(in[0], {1, 2, 0}); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return transpose(in[0], 0, -1); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return unsqueeze(in[0], 1); }, {x});
  const Tensor y = input({1, 3, 1}, 2);
  CHECK_GRADCHECK([](const TensorList& in) { return squeeze(in[0]); }, {y});
  CHECK_GRADCHECK([](const TensorList& in) { return squeeze(in[0], 0); }, {y});
  CHECK_GRADCHECK([](const TensorList& in) { return broadcast_to(in[0], {2, 3, 4}); }, {y});
  CHECK_GRADCHECK([](const TensorList& in) { return broadcast_to(in[0], {3}); }, {input({}, 3)});
  // A value used twice, through two different shape paths.
  CHECK_GRADCHECK([](const TensorList& in) { return permute(in[0], {2, 1, 0}) * transpose(in[0], 0, 2); }, {x});
}

TEST_CASE("gradcheck: concat and stack, including a value used twice and broadcast sizes") {
  const Tensor a = input({2, 3}, 11), b = input({2, 1}, 12), c = input({2, 2}, 13);
  CHECK_GRADCHECK([](const TensorList& in) { return concat({in[0], in[1], in[2]}, 1); }, {a, b, c});
  CHECK_GRADCHECK([](const TensorList& in) { return concat({in[0], in[0]}, 0); }, {a});
  CHECK_GRADCHECK([](const TensorList& in) { return concat({in[0], in[1] * in[0]}, 1); }, {a, b});
  CHECK_GRADCHECK([](const TensorList& in) { return stack({in[0], in[1], in[0]}, 1); }, {a, input({2, 3}, 14)});
  CHECK_GRADCHECK([](const TensorList& in) { return stack({in[0], in[0] * 2.0}, -1); }, {a});
  // An input that needs no gradient among ones that do.
  const Tensor constant = zeros({2, 3}, float64);
  CHECK_GRADCHECK([constant](const TensorList& in) { return concat({constant, in[0]}, 0); }, {a});
}

TEST_CASE("gradcheck: slice, index_select, gather over several axes") {
  const Tensor x = input({3, 5, 2}, 21);
  CHECK_GRADCHECK([](const TensorList& in) { return slice(in[0], 1, 1, 4); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return slice(in[0], 1, -4, 100, 2); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return slice(in[0], 0, 0, 3, 2); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return slice(in[0], -1, 1, 2); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return slice(in[0], 1, 0, 2) * slice(in[0], 1, 3, 5); }, {x});
  const Tensor idx = index({4, 0, 4, 2});
  CHECK_GRADCHECK([idx](const TensorList& in) { return index_select(in[0], 1, idx); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return index_select(in[0], 0, index({2, 2})); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return index_select(in[0], -1, index({1, 0, 1})); }, {x});
  const Tensor gidx = Tensor(xt::xarray<std::int64_t>({{{1, 0}, {4, 4}}, {{0, 0}, {2, 3}}, {{3, 1}, {1, 1}}}));
  CHECK_GRADCHECK([gidx](const TensorList& in) { return gather(in[0], 1, gidx); }, {x});
  const Tensor gidx0 = Tensor(xt::xarray<std::int64_t>({{{2, 0}, {1, 1}, {0, 2}}}));
  CHECK_GRADCHECK([gidx0](const TensorList& in) { return gather(in[0], 0, gidx0); }, {x});
}

TEST_CASE("gradgradcheck: shape ops, including the scatter-add backward ops") {
  const Tensor x = input({3, 4}, 31);
  CHECK_GRADGRADCHECK([](const TensorList& in) { return slice(in[0], 1, 1, 4, 2) * slice(in[0], 1, 0, 2); }, {x});
  CHECK_GRADGRADCHECK(
      [](const TensorList& in) {
        const Tensor picked = index_select(in[0], 0, index({2, 0, 2}));
        return picked * picked;
      },
      {x});
  CHECK_GRADGRADCHECK(
      [](const TensorList& in) {
        const Tensor picked = gather(in[0], 1, Tensor(xt::xarray<std::int64_t>({{3, 3}, {0, 1}, {2, 2}})));
        return picked * picked * picked;
      },
      {x});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return concat({in[0] * in[0], in[0]}, 1); }, {x});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return stack({in[0] * in[0], in[0]}, 0); }, {x});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return permute(in[0] * in[0], {1, 0}); }, {x});
  CHECK_GRADGRADCHECK(
      [](const TensorList& in) {
        return broadcast_to(reshape(in[0] * in[0], {3, 1, 4}), {3, 2, 4});
      },
      {x});
}

TEST_CASE("bad input: reshape to the wrong size and other shape errors name op and shapes") {
  const Tensor x = zeros({2, 3});
  CHECK_THROWS_WITH_AS(reshape(x, {4, 2}), doctest::Contains("reshape: cannot reshape [2, 3] (6 elements) to [4, 2]"),
                       Error);
  CHECK_THROWS_WITH_AS(reshape(x, {4, -1}), doctest::Contains("reshape: cannot reshape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(reshape(x, {-1, -1}), doctest::Contains("reshape: more than one -1"), Error);
  CHECK_THROWS_WITH_AS(permute(x, {0}), doctest::Contains("permute: 1 axes given for a tensor of shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(permute(x, {1, 1}), doctest::Contains("permute: axis 1 repeated"), Error);
  CHECK_THROWS_WITH_AS(transpose(x, 0, 2), doctest::Contains("transpose: axis 2 is out of range"), Error);
  // As PyTorch: a 1-D tensor has no last two axes to swap, but may swap its axis with itself; a
  // 0-d one names axis 0 or -1.
  const Tensor v = Tensor({1.0, 2.0, 3.0});
  CHECK_THROWS_WITH_AS(transpose(v), doctest::Contains("transpose: axis -2 is out of range"), Error);
  CHECK(transpose(v, 0, -1).shape() == Shape{3});
  CHECK(transpose(scalar_tensor(2.0), 0, -1).item() == 2.0);
  CHECK_THROWS_WITH_AS(transpose(scalar_tensor(2.0)), doctest::Contains("transpose: axis -2 is out of range"), Error);
  CHECK_THROWS_WITH_AS(squeeze(x, 0), doctest::Contains("squeeze: axis 0 of shape [2, 3] has size 2, not 1"), Error);
  CHECK_THROWS_WITH_AS(unsqueeze(x, 3), doctest::Contains("unsqueeze: axis 3 is out of range"), Error);
  CHECK_THROWS_WITH_AS(broadcast_to(x, {3, 3}), doctest::Contains("broadcast_to: shapes [2, 3] and [3, 3]"), Error);
  CHECK_THROWS_WITH_AS(broadcast_to(x, {3}), doctest::Contains("broadcast_to: shape [2, 3] cannot be broadcast to [3]"),
                       Error);
  CHECK_THROWS_WITH_AS(flatten(x, 1, 0), doctest::Contains("flatten: start axis 1 comes after end axis 0"), Error);
}

TEST_CASE("bad input: concat, stack, slice, index_select, gather") {
  const Tensor a = zeros({2, 3}), b = zeros({3, 3});
  CHECK_THROWS_WITH_AS(
      concat({a, b}, 1),
      doctest::Contains("concat: tensor 1 has shape [3, 3], which does not match tensor 0's shape [2, 3] "
                        "outside axis 1"),
      Error);
  CHECK_THROWS_WITH_AS(concat({a, zeros({2, 3, 1})}, 0), doctest::Contains("concat: tensor 1 has shape [2, 3, 1]"),
                       Error);
  CHECK_THROWS_WITH_AS(concat({a, zeros({2, 3}, float64)}), doctest::Contains("concat: tensor 1 is float64"), Error);
  CHECK_THROWS_WITH_AS(concat({}), doctest::Contains("concat: needs at least one tensor"), Error);
  CHECK_THROWS_WITH_AS(concat({a}, 2), doctest::Contains("concat: axis 2 is out of range"), Error);
  CHECK_THROWS_WITH_AS(concat({scalar_tensor(1.0)}), doctest::Contains("concat: cannot concatenate 0-d"), Error);
  CHECK_THROWS_WITH_AS(stack({a, b}),
                       doctest::Contains("stack: tensor 1 has shape [3, 3] but tensor 0 has shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(stack({a}, 3), doctest::Contains("stack: axis 3 is out of range"), Error);
  CHECK_THROWS_WITH_AS(slice(a, 1, 0, 2, 0), doctest::Contains("slice: step must be positive, got 0 (shape [2, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(slice(a, 2, 0, 1), doctest::Contains("slice: axis 2 is out of range"), Error);
  CHECK_THROWS_WITH_AS(index_select(a, 1, index({0, 3})),
                       doctest::Contains("index_select: index 3 is out of range for axis 1 of size 3 (shape [2, 3])"),
                       Error);
  CHECK_THROWS_WITH_AS(index_select(a, 1, index({-1})), doctest::Contains("index_select: index -1 is out of range"),
                       Error);
  CHECK_THROWS_WITH_AS(index_select(a, 0, Tensor({0.0})), doctest::Contains("index_select: index must be int64"),
                       Error);
  CHECK_THROWS_WITH_AS(index_select(a, 0, Tensor(shaped<std::int64_t>({1, 1}, {0}))),
                       doctest::Contains("index_select: index must be 1-D, got shape [1, 1]"), Error);
  CHECK_THROWS_WITH_AS(gather(a, 1, index({0})),
                       doctest::Contains("gather: index of shape [1] does not fit x of shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(gather(a, 1, Tensor(shaped<std::int64_t>({3, 1}, {0, 0, 0}))),
                       doctest::Contains("gather: index of shape [3, 1] does not fit x of shape [2, 3]"), Error);
  CHECK_THROWS_WITH_AS(gather(a, 0, Tensor(shaped<std::int64_t>({1, 1}, {2}))),
                       doctest::Contains("gather: index 2 is out of range for axis 0 of size 2"), Error);
}
