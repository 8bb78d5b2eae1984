// Pooling and dropout: forward values by hand, gradients (first and second order) on inputs
// without ties, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

// A random permutation of 0..n-1 scaled, reshaped: distinct values, so max pooling has no ties
// and finite differences never cross a switch of the argmax.
Tensor distinct(const Shape& s, Generator& gen) {
  std::size_t n = 1;
  for (std::size_t d : s) n *= d;
  Tensor perm = randperm(n, gen).to(float64);
  std::vector<std::int64_t> shape(s.begin(), s.end());
  return reshape(mul(perm, 0.1), shape);
}

}  // namespace

TEST_CASE("max_pool2d forward and indices by hand") {
  Tensor x = Tensor({{{{1, 5, 2, 0}, {3, 4, 8, 1}, {0, 9, 6, 7}, {2, 1, 3, 5}}}}).to(float64);
  auto [y, idx] = max_pool2d_with_indices(x, {.kernel = 2});
  CHECK(y.array<double>() == xt::xarray<double>({{{{5, 8}, {9, 7}}}}));
  CHECK(idx.array<std::int64_t>() == xt::xarray<std::int64_t>({{{{1, 6}, {9, 11}}}}));

  // Padding 1, stride 2, kernel 3: windows over the -inf-padded input.
  Tensor yp = max_pool2d(x, {.kernel = 3, .stride = 2, .padding = 1});
  CHECK(yp.array<double>() == xt::xarray<double>({{{{5, 8}, {9, 9}}}}));

  // Non-square kernel with stride 1 (the stride defaults to the kernel only when not given).
  Tensor yr = max_pool2d(x, {.kernel = {1, 3}, .stride = 1});
  CHECK(yr.array<double>() == xt::xarray<double>({{{{5, 5}, {8, 8}, {9, 9}, {3, 5}}}}));

  // NaN propagates, as in PyTorch, and is the argmax.
  Tensor xn = x.clone();
  xn.mutable_array<double>()(0, 0, 1, 0) = std::nan("");
  auto [yn, in] = max_pool2d_with_indices(xn, {.kernel = 2});
  CHECK(std::isnan(yn.array<double>()(0, 0, 0, 0)));
  CHECK(in.array<std::int64_t>()(0, 0, 0, 0) == 4);
  CHECK(yn.array<double>()(0, 0, 0, 1) == 8);

  // The gradient goes to the argmax only.
  Tensor xg = x.detach().requires_grad_();
  sum(max_pool2d(xg, {.kernel = 2})).backward();
  CHECK(xg.grad().array<double>() == xt::xarray<double>({{{{0, 1, 0, 0}, {0, 0, 1, 0}, {0, 1, 0, 1}, {0, 0, 0, 0}}}}));
}

// The 2x2 stride-2 fast path against a plain row-major scan, on widths around the SIMD batch
// size (tail handling), odd sizes (unused last row and column), many ties and some NaNs.
template <class T>
void check_max_pool_2x2(Generator& gen) {
  for (std::size_t h : {2, 3, 7})
    for (std::size_t w : {2, 3, 5, 16, 17, 18, 33, 34, 35, 40, 64}) {
      Tensor x = mul(randint(0, 4, {2, 3, h, w}, gen).to(std::is_same_v<T, float> ? float32 : float64), 0.5);
      T* px = x.mutable_array<T>().data();
      for (std::size_t k = 0; k < x.numel(); k += 21) px[k] = std::numeric_limits<T>::quiet_NaN();
      auto [y, idx] = max_pool2d_with_indices(x, {.kernel = 2});
      const std::size_t oh = h / 2, ow = w / 2;
      for (std::size_t p = 0; p < 6; ++p)
        for (std::size_t r = 0; r < oh; ++r)
          for (std::size_t q = 0; q < ow; ++q) {
            std::size_t best = 2 * r * w + 2 * q;
            for (std::size_t i = 2 * r; i < 2 * r + 2; ++i)
              for (std::size_t j = 2 * q; j < 2 * q + 2; ++j) {
                const T v = px[p * h * w + i * w + j], b = px[p * h * w + best];
                if (v > b || std::isnan(v)) best = i * w + j;  // the last NaN, as PyTorch's
              }
            const std::size_t o = p * oh * ow + r * ow + q;
            INFO("h " << h << " w " << w << " plane " << p << " window " << r << "," << q);
            CHECK(idx.data<std::int64_t>()[o] == static_cast<std::int64_t>(best));
            const T expected = px[p * h * w + best], got = y.data<T>()[o];
            CHECK(((std::isnan(expected) && std::isnan(got)) || expected == got));
          }
    }
}

TEST_CASE("max_pool2d 2x2 fast path matches a plain scan (ties, NaN, odd sizes)") {
  Generator gen(5);
  check_max_pool_2x2<float>(gen);
  check_max_pool_2x2<double>(gen);
}

TEST_CASE("avg_pool2d and global_avg_pool2d forward by hand") {
  Tensor x = reshape(arange(1, 17, 1, float64), {1, 1, 4, 4});
  CHECK(avg_pool2d(x, {.kernel = 2}).array<double>() == xt::xarray<double>({{{{3.5, 5.5}, {11.5, 13.5}}}}));
  // Padding 1, kernel 2, stride 2: corner windows hold one real element out of four.
  Tensor padded = avg_pool2d(x, {.kernel = 2, .stride = 2, .padding = 1});
  CHECK(padded.array<double>() == xt::xarray<double>({{{{1 / 4.0, (2 + 3) / 4.0, 4 / 4.0},
                                                        {(5 + 9) / 4.0, (6 + 7 + 10 + 11) / 4.0, (8 + 12) / 4.0},
                                                        {13 / 4.0, (14 + 15) / 4.0, 16 / 4.0}}}}));
  Tensor excl = avg_pool2d(x, {.kernel = 2, .stride = 2, .padding = 1, .count_include_pad = false});
  CHECK(excl.array<double>() == xt::xarray<double>({{{{1, 2.5, 4}, {7, 8.5, 10}, {13, 14.5, 16}}}}));
  Tensor g = global_avg_pool2d(reshape(arange(0, 8, 1, float64), {1, 2, 2, 2}));
  CHECK(g.array<double>() == xt::xarray<double>({{1.5, 5.5}}));
}

TEST_CASE("pooling gradients (float64), first and second order") {
  Generator gen(3);
  struct Config {
    const char* name;
    Shape x;
    Size2 kernel;
    OptionalSize2 stride = std::nullopt;
    Size2 padding;
  };
  const std::vector<Config> configs = {
      {"2x2", {2, 3, 4, 6}, 2, std::nullopt, 0},
      {"3x3 stride 2 padding 1", {1, 2, 7, 5}, 3, 2, 1},
      {"non-square, overlapping", {2, 1, 5, 6}, {2, 3}, {1, 2}, {1, 0}},
      {"batch 1, odd sizes", {1, 1, 5, 7}, 3, 3, 0},
  };
  for (const Config& c : configs) {
    INFO(c.name);
    Tensor x = distinct(c.x, gen).requires_grad_();
    const MaxPool2dOptions mo{.kernel = c.kernel, .stride = c.stride, .padding = c.padding};
    auto max_fn = [mo](const TensorList& in) { return max_pool2d(in[0], mo); };
    // Squared so that the second derivative is not identically zero.
    auto max_sq = [mo](const TensorList& in) { return pow(max_pool2d(in[0], mo), 2.0); };
    auto r = gradcheck(max_fn, {x});
    INFO(r.message);
    CHECK(r);
    auto rr = gradgradcheck(max_sq, {x});
    INFO(rr.message);
    CHECK(rr);
    for (bool include : {true, false}) {
      const AvgPool2dOptions ao{
          .kernel = c.kernel, .stride = c.stride, .padding = c.padding, .count_include_pad = include};
      auto a = gradcheck([ao](const TensorList& in) { return avg_pool2d(in[0], ao); }, {x});
      INFO(a.message);
      CHECK(a);
      auto aa = gradgradcheck([ao](const TensorList& in) { return pow(avg_pool2d(in[0], ao), 2.0); }, {x});
      INFO(aa.message);
      CHECK(aa);
    }
    auto gr = gradcheck([](const TensorList& in) { return global_avg_pool2d(in[0]); }, {x});
    INFO(gr.message);
    CHECK(gr);
    auto ggr = gradgradcheck([](const TensorList& in) { return pow(global_avg_pool2d(in[0]), 2.0); }, {x});
    INFO(ggr.message);
    CHECK(ggr);
  }
}

TEST_CASE("pooling works in float32") {
  Generator gen(5);
  Tensor x = distinct({2, 3, 6, 6}, gen);
  Tensor x32 = x.to(float32).requires_grad_();
  Tensor y = max_pool2d(x32, {.kernel = 2});
  CHECK(y.dtype() == float32);
  CHECK(xt::allclose(y.to(float64).array<double>(), max_pool2d(x, {.kernel = 2}).array<double>()));
  sum(y).backward();
  CHECK(sum(x32.grad()).item() == doctest::Approx(2 * 3 * 3 * 3));
  CHECK(xt::allclose(avg_pool2d(x32, {.kernel = 3, .stride = 1}).to(float64).array<double>(),
                     avg_pool2d(x, {.kernel = 3, .stride = 1}).array<double>(), 1e-5));
}

TEST_CASE("pooling rejects bad input with clear messages") {
  Tensor x = zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({3, 4, 4}), {.kernel = 2}),
                       doctest::Contains("max_pool2d: expected input x of rank 4 [N,C,H,W], got shape [3, 4, 4]"),
                       Error);
  CHECK_THROWS_WITH_AS(
      max_pool2d(x, {.kernel = 5}),
      doctest::Contains("max_pool2d: kernel [5, 5] is larger than the padded input 4x4 (x [2, 3, 4, 4]"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(x, {.kernel = 2, .stride = 0}), doctest::Contains("stride must be positive"), Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(x, {.kernel = 2, .stride = {1, -1}}),
                       doctest::Contains("avg_pool2d: stride must be positive, got [1, -1]"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(x, {.kernel = 2, .padding = 2}),
                       doctest::Contains("padding must be between 0 and half the kernel"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(x, {.kernel = 0}), doctest::Contains("kernel must be positive"), Error);
  CHECK_THROWS_WITH_AS(max_pool2d(zeros({1, 1, 2, 2}, int64), {.kernel = 2}),
                       doctest::Contains("expected a float32 or float64 tensor, got int64"), Error);
  CHECK_THROWS_WITH_AS(global_avg_pool2d(zeros({2, 3})),
                       doctest::Contains("global_avg_pool2d: expected input x of rank 4"), Error);
}

TEST_CASE("dropout: inverted scaling, identity in eval, reproducible") {
  Generator gen(42);
  Tensor x = ones({1000}, float64);
  Tensor y = dropout(x, 0.25, true, gen);
  const auto& a = y.array<double>();
  std::size_t kept = 0;
  for (double v : a) {
    CHECK((v == 0.0 || v == doctest::Approx(1.0 / 0.75)));
    kept += v != 0.0;
  }
  CHECK(kept > 700);
  CHECK(kept < 800);
  Generator again(42);
  CHECK(dropout(x, 0.25, true, again).array<double>() == a);
  CHECK(dropout(x, 0.25, false, gen).is_same(x));
  CHECK(dropout(x, 0.0, true, gen).array<double>() == x.array<double>());

  // The gradient is the same mask: g * m / (1-p).
  Tensor xg = x.detach().requires_grad_();
  Generator g1(7), g2(7);
  Tensor yg = dropout(xg, 0.5, true, g1);
  sum(yg).backward();
  CHECK(xg.grad().array<double>() == dropout(x, 0.5, true, g2).array<double>());
  // Differentiable twice (the mask is a constant): a gradient check with a fixed seed per call.
  Tensor z = randn({3, 4}, gen, float64).requires_grad_();
  auto fn = [](const TensorList& in) {
    Generator local(9);
    return pow(dropout(in[0], 0.3, true, local), 2.0);
  };
  auto r = gradcheck(fn, {z});
  INFO(r.message);
  CHECK(r);
  auto rr = gradgradcheck(fn, {z});
  INFO(rr.message);
  CHECK(rr);
}

TEST_CASE("dropout rejects p outside [0, 1)") {
  Generator gen(1);
  Tensor x = ones({2, 3});
  CHECK_THROWS_WITH_AS(dropout(x, 1.0, true, gen), doctest::Contains("dropout: p must be in [0, 1), got 1 (x [2, 3])"),
                       Error);
  CHECK_THROWS_WITH_AS(dropout(x, -0.1, false, gen), doctest::Contains("dropout: p must be in [0, 1), got -0.1"),
                       Error);
  CHECK_THROWS_WITH_AS(dropout(zeros({2}, int64), 0.5, true, gen), doctest::Contains("dropout"), Error);
}
