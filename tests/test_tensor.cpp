// Tensor: construction, factories, seeded random tensors, dtype conversion, item, printing,
// in-place changes and the errors of each.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

TEST_CASE("construction from xtensor arrays keeps dtype, shape and values") {
  const xt::xarray<float> f = {{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}};
  const Tensor tf(f);
  CHECK(tf.dtype() == float32);
  CHECK(tf.shape() == Shape{2, 3});
  CHECK(tf.shape(-1) == 3);
  CHECK(tf.ndim() == 2);
  CHECK(tf.numel() == 6);
  CHECK(tf.array<float>() == f);
  CHECK(Tensor(xt::xarray<double>({1.0, 2.0})).dtype() == float64);
  const Tensor ti(xt::xarray<std::int64_t>({3, 4}));
  CHECK(ti.dtype() == int64);
  CHECK(ti.data<std::int64_t>()[1] == 4);
  // The array a tensor gives back is the one it holds.
  CHECK(tf.array<float>()(1, 2) == 6.f);
}

TEST_CASE("construction from nested initializer lists, as float32") {
  CHECK(Tensor({1.0, 2.0}).shape() == Shape{2});
  CHECK(Tensor({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}}).shape() == Shape{3, 2});
  CHECK(Tensor({{{{1.0, 2.0}}}}).shape() == Shape{1, 1, 1, 2});
  const Tensor t({{1.5, -2.0}, {3.0, 4.0}});
  CHECK(t.dtype() == float32);
  CHECK(t.array<float>() == xt::xarray<float>({{1.5f, -2.f}, {3.f, 4.f}}));
  CHECK_FALSE(Tensor().defined());
  CHECK(t.defined());
}

TEST_CASE("factories: zeros, ones, full, *_like, arange, scalar_tensor") {
  CHECK(zeros({2, 3}).array<float>() == xt::zeros<float>({2, 3}));
  CHECK(ones({2}, float64).array<double>() == xt::xarray<double>({1, 1}));
  CHECK(full({2, 2}, 7.0, int64).array<std::int64_t>() == xt::xarray<std::int64_t>({{7, 7}, {7, 7}}));
  const Tensor d = ones({3}, float64);
  CHECK(zeros_like(d).dtype() == float64);
  CHECK(ones_like(d).shape() == Shape{3});
  CHECK(full_like(d, 2.5).array<double>() == xt::xarray<double>({2.5, 2.5, 2.5}));
  CHECK(arange(4.0).array<float>() == xt::xarray<float>({0, 1, 2, 3}));
  CHECK(arange(1.0, 2.0, 0.25, float64).array<double>() == xt::xarray<double>({1, 1.25, 1.5, 1.75}));
  CHECK(arange(5.0, 0.0, -2.0, int64).array<std::int64_t>() == xt::xarray<std::int64_t>({5, 3, 1}));
  CHECK(arange(3.0, 1.0).numel() == 0);
  const Tensor s = scalar_tensor(3.0, float64);
  CHECK(s.shape() == Shape{});
  CHECK(s.numel() == 1);
  CHECK(s.item() == 3.0);
  CHECK(zeros({0, 4}).numel() == 0);
}

TEST_CASE("random tensors are reproducible from the generator's seed") {
  Generator g1(42), g2(42), g3(43);
  const Tensor a = uniform({100}, -2.0, 3.0, g1, float64);
  const Tensor b = uniform({100}, -2.0, 3.0, g2, float64);
  const Tensor c = uniform({100}, -2.0, 3.0, g3, float64);
  CHECK(a.array<double>() == b.array<double>());
  CHECK(a.array<double>() != c.array<double>());
  for (double v : a.array<double>()) {
    CHECK(v >= -2.0);
    CHECK(v < 3.0);
  }
  // The stream continues: a second draw differs from the first.
  CHECK(uniform({100}, -2.0, 3.0, g1, float64).array<double>() != a.array<double>());

  Generator n1(7), n2(7);
  const Tensor x = normal({20000}, 1.5, 2.0, n1, float64);
  CHECK(x.array<double>() == normal({20000}, 1.5, 2.0, n2, float64).array<double>());
  const double m = mean(x).item();
  const double var = mean(pow(x - m, 2.0)).item();
  CHECK(m == doctest::Approx(1.5).epsilon(0.05));
  CHECK(var == doctest::Approx(4.0).epsilon(0.05));
  Generator r(1);
  CHECK(rand({3}, r).dtype() == float32);
  CHECK(randn({2, 2}, r, float64).shape() == Shape{2, 2});
  const Tensor perm = randperm(10, r);
  xt::xarray<std::int64_t> sorted = perm.array<std::int64_t>();
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == xt::xarray<std::int64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  const Tensor ints = randint(-3, 3, {50}, r);
  CHECK(ints.dtype() == int64);
  for (std::int64_t v : ints.array<std::int64_t>()) CHECK((v >= -3 && v < 3));
  CHECK_THROWS_WITH_AS(uniform({2}, 1.0, 1.0, r), doctest::Contains("uniform: needs low < high"), Error);
}

TEST_CASE("a Generator is a standard random bit generator: mt19937_64's draws, copies continue alike") {
  Generator gen(42);
  std::mt19937_64 reference(42);
  for (int i = 0; i < 5; ++i) CHECK(gen() == reference());
  Generator copy = gen;
  std::uniform_int_distribution<int> digit(0, 9);
  for (int i = 0; i < 20; ++i) CHECK(digit(copy) == digit(gen));
  // The copy has its own engine: drawing from it leaves the original where it was.
  const Generator::result_type next = Generator(gen)();
  copy();
  CHECK(gen() == next);
  gen.seed(42);
  reference.seed(42);
  CHECK(gen() == reference());
  static_assert(Generator::min() == 0 && Generator::max() == std::mt19937_64::max());
}

TEST_CASE("a Dtype prints its name on a stream, as with fmt") {
  std::ostringstream os;
  os << float32 << ' ' << float64 << ' ' << zeros({2}, int64).dtype();
  CHECK(os.str() == "float32 float64 int64");
  CHECK(fmt::format("{}", float64) == "float64");
}

TEST_CASE("to() converts between dtypes and is differentiable between floats") {
  const Tensor f = Tensor({1.5, -2.5, 3.0});
  const Tensor d = f.to(float64);
  CHECK(d.dtype() == float64);
  CHECK(d.array<double>() == xt::xarray<double>({1.5, -2.5, 3.0}));
  const Tensor i = f.to(int64);
  CHECK(i.dtype() == int64);
  CHECK(i.array<std::int64_t>() == xt::xarray<std::int64_t>({1, -2, 3}));  // truncates toward zero
  CHECK(i.to(float32).array<float>() == xt::xarray<float>({1, -2, 3}));
  CHECK(f.to(float32).is_same(f));  // same dtype: the same tensor
  const Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  sum(x.to(float64) * 3.0).backward();
  CHECK(x.grad().dtype() == float32);
  CHECK(x.grad().array<float>() == xt::xarray<float>({3, 3}));
  CHECK_FALSE(x.to(int64).requires_grad());
}

TEST_CASE("item() returns the single element") {
  CHECK(scalar_tensor(2.5).item() == 2.5);
  CHECK(Tensor({{4.0, 5.0}}).shape() == Shape{1, 2});
  CHECK(full({}, 9.0, int64).item<std::int64_t>() == 9);
  CHECK_THROWS_WITH_AS(zeros({2, 3}).item(),
                       doctest::Contains("Tensor::item: needs a tensor with one element, got shape [2, 3]"), Error);
}

TEST_CASE("printing as torch prints (the strings below are PyTorch 1.13's str(), dtype named without torch.)") {
  auto str = [](const Tensor& t) { return fmt::format("{}", t); };
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  CHECK(str(Tensor({{1, 2}, {3, 4.5}})) == "tensor([[1.0000, 2.0000],\n        [3.0000, 4.5000]])");
  CHECK(str(Tensor({1.0, 2.0})) == "tensor([1., 2.])");
  CHECK(str(Tensor({{1, -2}, {30, 4}}).to(float64)) == "tensor([[ 1., -2.],\n        [30.,  4.]], dtype=float64)");
  CHECK(str(arange(5, int64)) == "tensor([0, 1, 2, 3, 4])");
  CHECK(str(scalar_tensor(3)) == "tensor(3.)");
  CHECK(str(zeros({0, 3})) == "tensor([], size=(0, 3))");
  CHECK(str(zeros({0})) == "tensor([])");
  CHECK(str(Tensor({1e-5, 1e5, nan})) == "tensor([1.0000e-05, 1.0000e+05,        nan])");
  CHECK(str(Tensor({1e9, 2})) == "tensor([1.0000e+09, 2.0000e+00])");
  CHECK(str(Tensor({1, inf, -inf})) == "tensor([1., inf, -inf])");
  CHECK(str(Tensor({-0.25})) == "tensor([-0.2500])");
  CHECK(str(reshape(arange(24), {2, 3, 4})) ==
        "tensor([[[ 0.,  1.,  2.,  3.],\n         [ 4.,  5.,  6.,  7.],\n         [ 8.,  9., 10., 11.]],\n\n"
        "        [[12., 13., 14., 15.],\n         [16., 17., 18., 19.],\n         [20., 21., 22., 23.]]])");
  CHECK(str(reshape(arange(2000, int64), {2, 1000})) ==
        "tensor([[   0,    1,    2,  ...,  997,  998,  999],\n        [1000, 1001, 1002,  ..., 1997, 1998, 1999]])");
  CHECK(str(arange(30) * 1.5) ==
        "tensor([ 0.0000,  1.5000,  3.0000,  4.5000,  6.0000,  7.5000,  9.0000, 10.5000,\n"
        "        12.0000, 13.5000, 15.0000, 16.5000, 18.0000, 19.5000, 21.0000, 22.5000,\n"
        "        24.0000, 25.5000, 27.0000, 28.5000, 30.0000, 31.5000, 33.0000, 34.5000,\n"
        "        36.0000, 37.5000, 39.0000, 40.5000, 42.0000, 43.5000])");
  std::ostringstream os;
  os << Tensor({1.0, 2.0});
  CHECK(os.str() == "tensor([1., 2.])");
  const Tensor x = Tensor({1.0}).requires_grad_();
  CHECK(str(x) == "tensor([1.], requires_grad=True)");
  CHECK(str(x * 2.0) == "tensor([2.], grad_fn=<mul>)");
  CHECK(str(Tensor()) == "tensor(undefined)");
}

TEST_CASE("in-place changes bump the version and change every handle") {
  Tensor t = zeros({3});
  const Tensor alias = t;
  std::uint64_t v = t.version();
  t.fill_(2.0);
  CHECK(t.version() > v);
  CHECK(alias.array<float>() == xt::xarray<float>({2, 2, 2}));
  v = t.version();
  t.add_(Tensor({1.0, 2.0, 3.0}), 2.0);
  CHECK(t.version() > v);
  CHECK(t.array<float>() == xt::xarray<float>({4, 6, 8}));
  v = t.version();
  t.mul_(0.5);
  CHECK(t.version() > v);
  CHECK(t.array<float>() == xt::xarray<float>({2, 3, 4}));
  v = t.version();
  t.copy_(Tensor({7.0, 8.0, 9.0}).to(float64));  // converts the dtype
  CHECK(t.version() > v);
  CHECK(t.array<float>() == xt::xarray<float>({7, 8, 9}));
  v = t.version();
  t.zero_();
  CHECK(t.version() > v);
  CHECK(t.array<float>() == xt::zeros<float>({3}));
  v = t.version();
  t.mutable_array<float>()(0) = 1.f;
  CHECK(t.version() > v);
  // A detached tensor shares storage, so it sees (and counts) the changes.
  const Tensor d = t.detach();
  t.fill_(5.0);
  CHECK(d.version() == t.version());
  CHECK(d.array<float>()(1) == 5.f);
  // clone() does not share.
  const Tensor c = t.clone();
  t.fill_(0.0);
  CHECK(c.array<float>()(0) == 5.f);
}

TEST_CASE("reshape, flatten, squeeze, unsqueeze, detach, slices and transposes are views: one storage") {
  Tensor base = arange(12.0, float64);
  const Tensor m = reshape(base, {3, 4});
  const Tensor rows = slice(m, 0, 1, 3);          // rows 1 and 2: one block of memory
  const Tensor row = squeeze(slice(m, 0, 2, 3));  // [4]
  const Tensor u = unsqueeze(flatten(m), 0);
  const Tensor strided = slice(m, 1, 0, 4, 2);  // every other column: a strided view
  const Tensor t = transpose(m);                // strides [1, 4]
  for (const Tensor& v : {m, rows, row, u, base.detach(), strided, t}) CHECK(v.shares_storage(base));
  CHECK_FALSE(base.clone().shares_storage(base));
  for (const Tensor& v : {m, rows, row, u}) CHECK(v.is_contiguous());
  CHECK_FALSE(strided.is_contiguous());
  CHECK(strided.strides() == Strides{4, 2});
  CHECK(t.strides() == Strides{1, 4});
  CHECK(m.strides() == Strides{4, 1});
  CHECK(strided.array<double>()(2, 1) == 10.0);  // gathered now: read again after the changes below
  CHECK(t.array<double>()(3, 2) == 11.0);
  CHECK(rows.shape() == Shape{2, 4});
  CHECK(rows.array<double>()(0, 0) == 4.0);
  CHECK(row.data<double>()[3] == 11.0);

  // A change through a view is seen by the base and by every other view, and counts once in the
  // one version counter they share.
  const std::uint64_t v = base.version();
  Tensor(rows).mutable_array<double>()(1, 3) = -1.0;
  CHECK(base.array<double>()(11) == -1.0);
  CHECK(row.array<double>()(3) == -1.0);
  CHECK(u.array<double>()(0, 11) == -1.0);
  CHECK(base.version() == v + 1);
  CHECK(m.version() == base.version());
  Tensor(row).fill_(7.0);
  CHECK(base.array<double>()(8) == 7.0);
  CHECK(base.array<double>()(7) == 7.0);  // only the view's own elements
  Tensor(rows).add_(ones({4}, float64));
  CHECK(base.array<double>()(4) == 5.0);
  CHECK(base.array<double>()(3) == 3.0);
  Tensor(rows).copy_(zeros({2, 4}, float64));
  CHECK(xt::sum(base.array<double>())() == 0 + 1 + 2 + 3);
  Tensor(row).mul_(3.0);
  CHECK(base.version() == v + 5);
  // The strided slice and the transpose show the changed values (gathered again).
  CHECK(base.array<double>()(10) == 0.0);
  CHECK(strided.array<double>()(2, 1) == 0.0);
  CHECK(strided.array<double>()(0, 1) == 2.0);
  CHECK(t.array<double>()(3, 0) == 3.0);
  CHECK(t.array<double>()(3, 2) == 0.0);

  // set_data gives the tensor new storage; views keep the old values, as PyTorch's .data =.
  Tensor p = arange(4.0, float64);
  const Tensor pv = reshape(p, {2, 2});
  p.set_data(full({3}, 9.0, float64));
  CHECK(p.shape() == Shape{3});
  CHECK_FALSE(pv.shares_storage(p));
  CHECK(pv.array<double>()(1, 1) == 3.0);
  CHECK(p.array<double>()(2) == 9.0);

  CHECK_THROWS_WITH_AS(as_view(base, {5}, 8), doctest::Contains("as_view: a view of shape [5] from element 8"), Error);
  CHECK_THROWS_WITH_AS(as_view(Tensor(), {1}), doctest::Contains("as_view: the tensor is undefined"), Error);
}

TEST_CASE("strided views: permute, transpose, broadcast_to and stepped slices write through to the base") {
  Tensor x = reshape(arange(24.0, float64), {2, 3, 4});
  const Tensor p = permute(x, {2, 0, 1});  // [4, 2, 3]
  CHECK(p.shares_storage(x));
  CHECK(p.strides() == Strides{1, 12, 4});
  const xt::xarray<double> want_p = xt::transpose(xt::xarray<double>(x.array<double>()), {2, 0, 1});
  CHECK(p.array<double>() == want_p);
  CHECK(xt::xarray<double>(p.contiguous().array<double>()) == want_p);
  CHECK(p.contiguous().is_contiguous());
  CHECK_FALSE(p.contiguous().shares_storage(x));
  CHECK(x.contiguous().is_same(x));

  // In place through the views: an inner-axis slice with a step, and a transpose.
  Tensor column = slice(x, 2, 1, 4, 2);  // x[:, :, 1::2]: [2, 3, 2]
  CHECK(column.strides() == Strides{12, 4, 2});
  column.fill_(-1.0);
  CHECK(x.array<double>()(1, 2, 3) == -1.0);
  CHECK(x.array<double>()(1, 2, 2) == 22.0);
  Tensor(transpose(x, 0, 2)).mul_(2.0);  // every element, through a [4, 3, 2] view
  CHECK(x.array<double>()(1, 2, 2) == 44.0);
  Tensor(slice(x, 1, 0, 3, 2)).copy_(zeros({2, 2, 4}, float64));  // rows 0 and 2 of each matrix
  CHECK(x.array<double>()(0, 2, 0) == 0.0);
  CHECK(x.array<double>()(0, 1, 0) == 8.0);
  Tensor(permute(x, {1, 2, 0})).add_(ones({2}, float64));  // broadcast along the view's last axis
  CHECK(x.array<double>()(0, 1, 0) == 9.0);
  CHECK(p.array<double>()(0, 1, 1) == 2 * 16.0 + 1.0);  // the earlier view, gathered again

  // broadcast_to shares storage with stride 0; writing to it is refused, as torch refuses.
  Tensor col = reshape(Tensor(xt::xarray<double>{1.0, 2.0}), {2, 1});
  const Tensor wide = broadcast_to(col, {3, 2, 4});
  CHECK(wide.shares_storage(col));
  CHECK(wide.strides() == Strides{0, 1, 0});
  CHECK(wide.array<double>()(2, 1, 3) == 2.0);
  CHECK_THROWS_WITH_AS(
      Tensor(wide).fill_(0.0),
      doctest::Contains("fill_: the tensor of shape [3, 2, 4] with strides [0, 1, 0] is a view whose elements overlap"),
      Error);
  CHECK_THROWS_WITH_AS(wide.mutable_data_ptr(), doctest::Contains("is a strided view"), Error);
  col.mutable_array<double>()(1, 0) = 5.0;
  CHECK(wide.array<double>()(0, 1, 0) == 5.0);

  // reshape keeps a view when the elements allow it, else copies (as torch's reshape).
  const Tensor t = transpose(reshape(arange(6.0, float64), {2, 3}));  // [3, 2], strides [1, 3]
  const Tensor lifted = unsqueeze(t, 1);                              // [3, 1, 2]
  CHECK(lifted.shares_storage(t));
  CHECK(lifted.array<double>()(2, 0, 1) == 5.0);
  const Tensor flat = flatten(t);
  CHECK_FALSE(flat.shares_storage(t));
  CHECK(flat.array<double>() == xt::xarray<double>{0.0, 3.0, 1.0, 4.0, 2.0, 5.0});
  const Tensor split = reshape(slice(reshape(arange(24.0, float64), {4, 6}), 1, 0, 6, 2), {2, 2, 3});
  CHECK(split.array<double>()(1, 1, 2) == 22.0);
  CHECK(split.is_contiguous() == false);

  CHECK_THROWS_WITH_AS(as_view(t, {6}), doctest::Contains("as_view: the tensor of shape [3, 2] is a strided view"),
                       Error);
  CHECK_THROWS_WITH_AS(as_strided(x, {3, 9}, {9, 1}), doctest::Contains("does not fit in a storage of 24 elements"),
                       Error);
  CHECK_THROWS_WITH_AS(as_strided(x, {2}, {1, 1}), doctest::Contains("as_strided: 2 strides given for shape [2]"),
                       Error);
  CHECK(as_strided(x, {0, 100}, {100, 1}).numel() == 0);
  // A count that overflows size_t could wrap to 0 and pass the bounds check.
  CHECK_THROWS_WITH_AS(as_strided(ones({4}), {std::size_t{1} << 62, 4}, {0, 1}),
                       doctest::Contains("more elements than a size_t counts"), Error);
  CHECK_THROWS_WITH_AS(as_view(ones({4}), {std::size_t{1} << 62, 4}), doctest::Contains("more elements"), Error);

  // Elements that overlap (not only stride 0) refuse in-place changes; a refused change leaves
  // the version alone.
  Tensor small = zeros({3}, float64);
  const std::uint64_t before = small.version();
  CHECK_THROWS_WITH_AS(
      Tensor(as_strided(small, {2, 2}, {1, 1})).add_(ones({2, 2}, float64)),
      doctest::Contains("add_: the tensor of shape [2, 2] with strides [1, 1] is a view whose elements "
                        "overlap"),
      Error);
  CHECK_THROWS_WITH_AS(Tensor(broadcast_to(small, {2, 3})).add_(ones({3}, float64)), doctest::Contains("overlap"),
                       Error);
  CHECK(small.version() == before);
  CHECK(xt::all(xt::equal(small.array<double>(), 0.0)));
  Tensor(as_strided(small, {2}, {2})).fill_(1.0);  // elements 0 and 2: apart
  CHECK(small.array<double>() == xt::xarray<double>{1.0, 0.0, 1.0});
}

TEST_CASE("gradients through strided views: a leaf's gradient is row-major, saved views are version-checked") {
  Tensor x = Tensor(xt::xarray<double>{{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}).requires_grad_();
  const Tensor w = Tensor(xt::xarray<double>{{1.0, 10.0}, {100.0, 1000.0}, {0.5, 0.25}});
  sum(transpose(x) * w).backward();  // the gradient reaches x as a transpose of w
  CHECK(x.grad().is_contiguous());
  CHECK(x.grad().array<double>() == xt::xarray<double>{{1.0, 100.0, 0.5}, {10.0, 1000.0, 0.25}});
  x.grad().mul_(2.0);  // the leaf's own gradient
  CHECK(w.array<double>()(0, 1) == 10.0);
  x.set_grad(transpose(w));  // set by hand: stored row-major too
  CHECK(x.grad().is_contiguous());
  CHECK(x.grad().array<double>()(1, 2) == 0.25);

  Tensor a = Tensor(xt::xarray<double>{{1.0, 2.0}, {3.0, 4.0}}).requires_grad_();
  Tensor b = a * 1.0;
  const Tensor loss = sum(transpose(b) * b);  // saves transpose(b) and b
  {
    NoGradGuard no_grad;
    Tensor(transpose(b)).fill_(0.0);
  }
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("modified in place"), Error);

  auto f = [](const TensorList& in) {
    const Tensor v = slice(permute(in[0], {1, 0, 2}), 2, 0, 4, 3);  // [3, 2, 2], strided
    const Tensor t = unsqueeze(transpose(v, 0, 2), 0);              // [1, 2, 2, 3], a view of it
    return sum(reshape(v, {3, 4}) * broadcast_to(in[1], {3, 4})) + sum(t * t);
  };
  Generator gen(3);
  const TensorList inputs = {uniform({2, 3, 4}, -1.0, 1.0, gen, float64).requires_grad_(),
                             uniform({1, 4}, -1.0, 1.0, gen, float64).requires_grad_()};
  const GradcheckResult first = gradcheck(f, inputs);
  INFO(first.message);
  CHECK(first.passed);
  const GradcheckResult second = gradgradcheck(f, inputs);
  INFO(second.message);
  CHECK(second.passed);
}

TEST_CASE("backward notices a saved tensor changed in place through a view, and gradients flow through views") {
  Tensor x = Tensor(xt::xarray<double>{1.0, 2.0, 3.0, 4.0}).requires_grad_();
  Tensor y = reshape(x * 1.0, {2, 2});
  const Tensor loss = sum(y * y);  // saves y
  {
    NoGradGuard no_grad;
    Tensor(flatten(y)).mutable_array<double>()(0) = 10.0;  // the storage y saved
  }
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("modified in place"), Error);

  Tensor a = Tensor(xt::xarray<double>{{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}}).requires_grad_();
  const Tensor b = slice(a, 0, 1, 3);
  sum(flatten(b) * flatten(b)).backward();
  CHECK(a.grad().array<double>() == xt::xarray<double>{{0.0, 0.0}, {6.0, 8.0}, {10.0, 12.0}});
}

TEST_CASE("autograd state on the tensor") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  CHECK(x.requires_grad());
  CHECK(x.is_leaf());
  const Tensor y = x * 2.0;
  CHECK_FALSE(y.is_leaf());
  CHECK(y.requires_grad());
  CHECK(y.grad_fn()->name() == "mul");
  CHECK_FALSE(y.detach().requires_grad());
  CHECK_FALSE(x.grad().defined());
  x.set_grad(ones({2}));
  CHECK(x.grad().array<float>() == xt::xarray<float>({1, 1}));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("bad input: wrong dtype access, int gradients, in-place on a leaf, bad copies") {
  const Tensor f = zeros({2});
  CHECK_THROWS_WITH_AS(f.array<double>(),
                       doctest::Contains("Tensor::array: asked for float64 elements of a float32 tensor"), Error);
  CHECK_THROWS_WITH_AS(f.data<std::int64_t>(), doctest::Contains("asked for int64 elements of a float32"), Error);
  Tensor i = zeros({2}, int64);
  CHECK_THROWS_WITH_AS(i.requires_grad_(), doctest::Contains("requires_grad_: only float32 and float64 tensors"),
                       Error);
  Tensor leaf = zeros({2}).requires_grad_();
  CHECK_THROWS_WITH_AS(leaf.fill_(1.0), doctest::Contains("fill_: in-place change of a tensor that requires grad"),
                       Error);
  {
    NoGradGuard no_grad;
    leaf.fill_(1.0);  // allowed under no-grad, as in an optimizer step
  }
  CHECK(leaf.array<float>() == xt::xarray<float>({1, 1}));
  Tensor t = zeros({2});
  CHECK_THROWS_WITH_AS(t.copy_(zeros({3})),
                       doctest::Contains("copy_: source of shape [3] does not match destination of shape [2]"), Error);
  CHECK_THROWS_WITH_AS(t.add_(zeros({2, 2})),
                       doctest::Contains("add_: other of shape [2, 2] does not broadcast to [2]"), Error);
  CHECK_THROWS_WITH_AS(t.set_grad(zeros({3})), doctest::Contains("set_grad: gradient of shape [3]"), Error);
  CHECK_THROWS_WITH_AS(t.shape(2), doctest::Contains("Tensor::shape: axis 2 out of range for a tensor of shape [2]"),
                       Error);
  CHECK_THROWS_WITH_AS(Tensor().shape(), doctest::Contains("undefined tensor"), Error);
  CHECK_THROWS_WITH_AS(arange(0.0, 1.0, 0.0), doctest::Contains("arange: step must not be zero"), Error);
}
