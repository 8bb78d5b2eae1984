// matmul and linear: values against a hand loop, NumPy's 1-D and batch-broadcast rules,
// gradient checks (first and second order) and bad input.
#include "op_test_support.hpp"
#include "tapegrad/autograd/xarray.hpp"

using namespace tg;
using tg::testing::input;
using tg::testing::shaped;

namespace {
// Reference product of row-major [batch..., M, K] and [batch..., K, N] with equal batches.
xt::xarray<double> reference_matmul(const xt::xarray<double>& a, const xt::xarray<double>& b) {
  const std::size_t r = a.dimension();
  const std::size_t m = a.shape()[r - 2], k = a.shape()[r - 1], n = b.shape()[r - 1];
  const std::size_t batch = a.size() / (m * k);
  std::vector<std::size_t> out_shape(a.shape().begin(), a.shape().end());
  out_shape.back() = n;
  xt::xarray<double> c = xt::zeros<double>(out_shape);
  for (std::size_t p = 0; p < batch; ++p)
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j)
        for (std::size_t q = 0; q < k; ++q)
          c.data()[(p * m + i) * n + j] += a.data()[(p * m + i) * k + q] * b.data()[(p * k + q) * n + j];
  return c;
}

void check_close(const Tensor& got, const xt::xarray<double>& expected) {
  REQUIRE(got.shape() == Shape(expected.shape().begin(), expected.shape().end()));
  const xt::xarray<double> g = got.to(float64).array<double>();
  for (std::size_t i = 0; i < g.size(); ++i) CHECK(g.data()[i] == doctest::Approx(expected.data()[i]).epsilon(1e-5));
}

Tensor plain(const Tensor& t) { return t.detach(); }
}  // namespace

TEST_CASE("matmul 2-D against a hand loop, float32 and float64") {
  const Tensor a = input({3, 4}, 1), b = input({4, 5}, 2);
  const xt::xarray<double> expected = reference_matmul(a.array<double>(), b.array<double>());
  check_close(matmul(a, b), expected);
  check_close(matmul(a.to(float32), b.to(float32)), expected);
  CHECK(matmul(a.to(float32), b.to(float32)).dtype() == float32);
  CHECK(matmul(Tensor({{1.0, 2.0}, {3.0, 4.0}}), Tensor({{5.0, 6.0}, {7.0, 8.0}})).array<float>() ==
        xt::xarray<float>({{19, 22}, {43, 50}}));
}

TEST_CASE("matmul with 1-D operands follows NumPy") {
  const Tensor m = Tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});  // [2, 3]
  const Tensor v3 = Tensor({1.0, 0.0, -1.0});
  const Tensor v2 = Tensor({1.0, 2.0});
  CHECK(matmul(m, v3).shape() == Shape{2});
  CHECK(matmul(m, v3).array<float>() == xt::xarray<float>({-2, -2}));
  CHECK(matmul(v2, m).shape() == Shape{3});
  CHECK(matmul(v2, m).array<float>() == xt::xarray<float>({9, 12, 15}));
  CHECK(matmul(v3, v3).shape() == Shape{});
  CHECK(matmul(v3, v3).item() == 2.0);
  const Tensor batched = stack({m, m * 2.0});  // [2, 2, 3]
  CHECK(matmul(batched, v3).shape() == Shape{2, 2});
  CHECK(matmul(v2, batched).shape() == Shape{2, 3});
  CHECK(matmul(v2, batched).array<float>() == xt::xarray<float>({{9, 12, 15}, {18, 24, 30}}));
}

TEST_CASE("batched matmul broadcasts the leading batch dims") {
  const Tensor a = input({2, 3, 4}, 3), b = input({2, 4, 5}, 4);
  check_close(matmul(a, b), reference_matmul(a.array<double>(), b.array<double>()));
  // [2,1,3,4] @ [3,4,5] → [2,3,3,5]: compare against explicitly broadcast operands.
  const Tensor c = input({2, 1, 3, 4}, 5), d = input({3, 4, 5}, 6);
  const Tensor full_c = broadcast_to(plain(c), {2, 3, 3, 4}), full_d = broadcast_to(plain(d), {2, 3, 4, 5});
  check_close(matmul(c, d), reference_matmul(full_c.array<double>(), full_d.array<double>()));
  // A batch of rows against one matrix, and one matrix against a batch.
  const Tensor w = input({4, 5}, 7);
  check_close(matmul(a, w), reference_matmul(a.array<double>(), broadcast_to(plain(w), {2, 4, 5}).array<double>()));
  const Tensor m = input({3, 4}, 8);
  check_close(matmul(m, b), reference_matmul(broadcast_to(plain(m), {2, 3, 4}).array<double>(), b.array<double>()));
}

TEST_CASE("matmul of empty operands") {
  CHECK(matmul(zeros({0, 3}), zeros({3, 2})).shape() == Shape{0, 2});
  CHECK(matmul(ones({2, 0}), ones({0, 3})).array<float>() == xt::zeros<float>({2, 3}));
}

TEST_CASE("gradcheck: matmul 2-D, batched, broadcast and 1-D") {
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {4, 2}},    {{2, 3, 4}, {2, 4, 5}}, {{2, 1, 3, 4}, {3, 4, 2}},
      {{2, 3, 4}, {4, 2}}, {{3, 4}, {2, 4, 2}},    {{1, 3, 4}, {2, 4, 2}},
      {{4}, {4, 3}},       {{3, 4}, {4}},          {{4}, {4}},
      {{4}, {2, 4, 3}},    {{2, 3, 4}, {4}},       {{1, 4}, {4, 1}}};
  std::uint64_t seed = 10;
  for (const auto& [sa, sb] : shapes) {
    INFO(shape_str(sa), " @ ", shape_str(sb));
    const Tensor a = input(sa, seed++), b = input(sb, seed++);
    CHECK_GRADCHECK([](const TensorList& in) { return matmul(in[0], in[1]); }, {a, b});
  }
}

TEST_CASE("matmul of transposed views: BLAS reads them with the transpose flag, same values and gradients") {
  const Tensor a = input({2, 4, 3}, 31), b = input({2, 5, 4}, 32), w = input({5, 3}, 33);
  // a^T @ b^T, both operands transposed views of row-major batches; and one against a 2-D weight.
  const Tensor at = transpose(plain(a)), bt = transpose(plain(b));
  CHECK_FALSE(at.is_contiguous());
  check_close(matmul(at, bt), reference_matmul(at.contiguous().array<double>(), bt.contiguous().array<double>()));
  const Tensor wt = transpose(plain(w));  // [3, 5]
  check_close(matmul(plain(a), wt),
              reference_matmul(a.array<double>(), broadcast_to(wt, {2, 3, 5}).contiguous().array<double>()));
  // A permute that is not a plain transpose is gathered as before.
  const Tensor odd = permute(plain(b), {1, 0, 2});  // [5, 2, 4], strides [4, 20, 1]
  const Tensor rhs = broadcast_to(plain(input({4, 3}, 34)), {5, 4, 3});
  check_close(matmul(odd, rhs), reference_matmul(odd.contiguous().array<double>(), rhs.contiguous().array<double>()));
  auto f = [](const TensorList& in) { return matmul(transpose(in[0]), transpose(in[1])); };
  CHECK_GRADCHECK(f, {a, b});
  const GradcheckResult second = gradgradcheck(f, {a, b});
  INFO(second.message);
  CHECK(second.passed);
}

TEST_CASE("gradcheck: matmul with a value used twice") {
  const Tensor x = input({3, 3}, 30);
  CHECK_GRADCHECK([](const TensorList& in) { return matmul(in[0], in[0]); }, {x});
  CHECK_GRADCHECK([](const TensorList& in) { return matmul(transpose(in[0]), in[0]); }, {x});
  const Tensor y = input({2, 3, 4}, 31);
  CHECK_GRADCHECK([](const TensorList& in) { return matmul(in[0], transpose(in[0])); }, {y});
}

TEST_CASE("gradgradcheck: matmul") {
  const Tensor a = input({3, 4}, 40), b = input({4, 2}, 41);
  CHECK_GRADGRADCHECK([](const TensorList& in) { return matmul(in[0], in[1]); }, {a, b});
  const Tensor c = input({2, 1, 3, 4}, 42), d = input({3, 4, 2}, 43);
  CHECK_GRADGRADCHECK([](const TensorList& in) { return matmul(in[0], in[1]); }, {c, d});
  const Tensor e = input({2, 3, 4}, 44), w = input({4, 2}, 45);
  CHECK_GRADGRADCHECK([](const TensorList& in) { return matmul(in[0], in[1]); }, {e, w});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return matmul(in[0], in[0]); }, {input({3, 3}, 46)});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return matmul(in[0], in[1]); }, {input({4}, 47), input({4, 3}, 48)});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return tanh(matmul(in[0], in[1])); }, {a, b});
}

TEST_CASE("linear: x @ W^T + b in one op, values and gradients") {
  const Tensor x = input({5, 3}, 50), w = input({4, 3}, 51), b = input({4}, 52);
  const Tensor expected = matmul(plain(x), transpose(plain(w))) + plain(b);
  check_close(linear(x, w, b), expected.array<double>());
  check_close(linear(x, w), matmul(plain(x), transpose(plain(w))).array<double>());
  CHECK(linear(x, w, b).grad_fn()->name() == "linear");
  CHECK_GRADCHECK([](const TensorList& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
  CHECK_GRADCHECK([](const TensorList& in) { return linear(in[0], in[1]); }, {x, w});
  CHECK_GRADGRADCHECK([](const TensorList& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
  // Leading dims fold into the rows.
  const Tensor x3 = input({2, 5, 3}, 53);
  CHECK(linear(x3, w, b).shape() == Shape{2, 5, 4});
  CHECK_GRADCHECK([](const TensorList& in) { return linear(in[0], in[1], in[2]); }, {x3, w, b});
  CHECK_GRADCHECK([](const TensorList& in) { return linear(in[0], in[1], in[2]); }, {input({3}, 54), w, b});
  // The weight used twice: as the weight, and through the input.
  const Tensor sq = input({3, 3}, 55);
  CHECK_GRADCHECK([](const TensorList& in) { return linear(in[0], in[0], in[1]); }, {sq, input({3}, 56)});
}

TEST_CASE("linear backward: dx = g W, dW = g^T x, db = sum(g, 0)") {
  const Tensor x = Tensor({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}}).to(float64).requires_grad_();
  const Tensor w = Tensor(xt::xarray<double>({{1.0, -1.0}})).requires_grad_();
  const Tensor b = Tensor({0.5}).to(float64).requires_grad_();
  const Tensor g = Tensor(shaped<double>({3, 1}, {1, 2, 3}));
  linear(x, w, b).backward(g);
  CHECK(x.grad().array<double>() == xt::xarray<double>({{1, -1}, {2, -2}, {3, -3}}));
  CHECK(w.grad().array<double>() == xt::xarray<double>({{22, 28}}));
  CHECK(b.grad().array<double>() == xt::xarray<double>({6}));
}

TEST_CASE("bad input: matmul inner dimensions, dtypes, ranks and batch dims") {
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({4, 5})),
                       doctest::Contains("matmul: inner dimensions differ: [2, 3] @ [4, 5] (3 vs 4)"), Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({3}), zeros({4})), doctest::Contains("matmul: inner dimensions differ: [3] @ [4]"),
                       Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 2, 3}), zeros({2, 4})),
                       doctest::Contains("matmul: inner dimensions differ: [2, 2, 3] @ [2, 4]"), Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3, 4}), zeros({3, 4, 5})),
                       doctest::Contains("matmul: shapes [2] and [3] do not broadcast"), Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}), zeros({3, 2}, float64)),
                       doctest::Contains("matmul: dtypes differ: float32 [2, 3] and float64 [3, 2]"), Error);
  CHECK_THROWS_WITH_AS(matmul(zeros({2, 3}, int64), zeros({3, 2}, int64)),
                       doctest::Contains("matmul: expected float32 or float64 tensors, got int64"), Error);
  CHECK_THROWS_WITH_AS(matmul(scalar_tensor(1.0), zeros({3})),
                       doctest::Contains("matmul: needs tensors of rank >= 1, got shapes [] and [3]"), Error);
}

TEST_CASE("bad input: linear shapes") {
  const Tensor w = zeros({4, 3});
  CHECK_THROWS_WITH_AS(linear(zeros({5, 2}), w),
                       doctest::Contains("linear: input [5, 2] does not match weight [4, 3] (expected [..., 3])"),
                       Error);
  CHECK_THROWS_WITH_AS(linear(zeros({5, 3}), zeros({3})),
                       doctest::Contains("linear: weight must be [out, in], got [3]"), Error);
  CHECK_THROWS_WITH_AS(linear(zeros({5, 3}), w, zeros({3})),
                       doctest::Contains("linear: bias [3] does not match weight [4, 3] (expected [4])"), Error);
  CHECK_THROWS_WITH_AS(linear(zeros({5, 3}), w, zeros({4}, float64)),
                       doctest::Contains("linear: bias is float64 but input is float32"), Error);
  CHECK_THROWS_WITH_AS(linear(zeros({5, 3}, float64), w), doctest::Contains("linear: dtypes differ"), Error);
}

TEST_CASE("bad input: backward from a non-scalar without a seed") {
  const Tensor a = input({2, 3}, 60), b = input({3, 2}, 61);
  CHECK_THROWS_WITH_AS(matmul(a, b).backward(),
                       doctest::Contains("backward: gradient can be implicitly created only for a scalar output, got "
                                         "shape [2, 2]"),
                       Error);
}

TEST_CASE("einsum: the common contractions equal their ops; gradients; bad equations") {
  using tg::testing::input;
  const Tensor a = input({2, 3}, 61), b = input({3, 4}, 62), c = input({2, 3, 4}, 63), d = input({2, 4, 5}, 64);
  auto same = [](const Tensor& x, const Tensor& y) {
    REQUIRE(x.shape() == y.shape());
    CHECK(xt::allclose(x.array<double>(), y.array<double>(), 1e-14, 1e-14));
  };
  same(einsum("ij,jk->ik", {a, b}), matmul(a, b));
  same(einsum("ij,jk", {a, b}), matmul(a, b));  // implicit output: the indices seen once, sorted
  same(einsum("bij,bjk->bik", {c, d}), matmul(c, d));
  same(einsum("ij->ji", {a}), transpose(a));
  same(einsum("ij->", {a}), sum(a));
  same(einsum("ij->j", {a}), sum(a, {0}));
  same(einsum("i,j->ij", {reshape(slice(b, 0, 0, 1), {4}), reshape(slice(a, 0, 0, 1), {3})}),
       matmul(reshape(slice(b, 0, 0, 1), {4, 1}), slice(a, 0, 0, 1)));
  same(einsum("ij,ij->i", {a, a}), sum(a * a, {1}));
  same(einsum("ij, jk, kl -> il", {a, b, transpose(b)}), matmul(matmul(a, b), transpose(b)));
  same(einsum("ik,jk->ij", {b, b}), matmul(b, transpose(b)));
  // An index only in one operand and not in the output is summed first.
  same(einsum("ij,kj->i", {a, input({4, 3}, 65)}), sum(matmul(a, transpose(input({4, 3}, 65))), {1}));

  CHECK_GRADCHECK([](const TensorList& t) { return einsum("bhqd,bhkd->bhqk", t); },
                  {input({2, 2, 3, 4}, 66), input({2, 2, 5, 4}, 67)});
  CHECK_GRADGRADCHECK([](const TensorList& t) { return einsum("bn,anm,bm->ba", t); },
                      {input({2, 3}, 68), input({2, 3, 4}, 69), input({2, 4}, 70)});

  CHECK_THROWS_WITH_AS(einsum("ij,jk->ik", {a}), doctest::Contains("einsum: \"ij,jk->ik\" names 2 operands, got 1"),
                       Error);
  CHECK_THROWS_WITH_AS(einsum("ij,jk->ik", {a, a}),
                       doctest::Contains("einsum: index 'j' is 2 in operand 1 ([2, 3]) but 3 before"), Error);
  CHECK_THROWS_WITH_AS(einsum("ijk->i", {a}),
                       doctest::Contains("einsum: operand 0 has shape [2, 3] but \"ijk\" names 3 axes"), Error);
  CHECK_THROWS_WITH_AS(einsum("ii->i", {input({3, 3}, 71)}),
                       doctest::Contains("einsum: index 'i' repeats in operand 0"), Error);
  CHECK_THROWS_WITH_AS(einsum("ij->ik", {a}), doctest::Contains("einsum: output index 'k'"), Error);
  CHECK_THROWS_WITH_AS(einsum("...ij->ij", {a}), doctest::Contains("einsum: '.' in"), Error);
  CHECK_THROWS_WITH_AS(einsum("ij->i", {zeros({2, 3}, int64)}), doctest::Contains("einsum: expected float operands"),
                       Error);
}
