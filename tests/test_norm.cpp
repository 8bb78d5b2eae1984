// batch_norm: values and running statistics by hand, gradients (first and second order) in
// training and evaluation, the fused and recorded backward paths agreeing, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <xtensor/xview.hpp>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

void check_grad(const DifferentiableFn& fn, const TensorList& in) {
  auto r = gradcheck(fn, in);
  INFO(r.message);
  CHECK(r);
  auto rr = gradgradcheck(fn, in);
  INFO(rr.message);
  CHECK(rr);
}

}  // namespace

TEST_CASE("batch_norm training: values and running statistics by hand") {
  Tensor x = Tensor({{1.0, 2.0}, {3.0, 6.0}}).to(float64);
  Tensor rm = zeros({2}, float64), rv = ones({2}, float64);
  Tensor w = Tensor({1.0, 0.5}).to(float64), b = Tensor({0.0, 1.0}).to(float64);
  const double eps = 1e-5;
  Tensor y = batch_norm(x, rm, rv, w, b, {.training = true});
  // Channel 0: mean 2, biased var 1; channel 1: mean 4, biased var 4.
  const xt::xarray<double> expected = {{-1 / std::sqrt(1 + eps), 0.5 * -2 / std::sqrt(4 + eps) + 1},
                                       {1 / std::sqrt(1 + eps), 0.5 * 2 / std::sqrt(4 + eps) + 1}};
  CHECK(xt::allclose(y.array<double>(), expected, 1e-12, 1e-12));
  // Running statistics: 0.9·old + 0.1·batch, with the unbiased variance (2 and 8).
  CHECK(xt::allclose(rm.array<double>(), xt::xarray<double>({0.2, 0.4})));
  CHECK(xt::allclose(rv.array<double>(), xt::xarray<double>({0.9 + 0.2, 0.9 + 0.8})));
  CHECK(rm.version() > 0);

  // Evaluation normalizes with the running statistics and leaves them alone.
  Tensor ye = batch_norm(x, rm, rv, w, b);
  CHECK(ye.array<double>()(1, 1) == doctest::Approx((6.0 - 0.4) / std::sqrt(1.7 + eps) * 0.5 + 1.0));
  CHECK(rm.array<double>()(0) == doctest::Approx(0.2));

  // [N,C,H,W]: statistics over N, H and W of each channel.
  Tensor x4 = reshape(arange(0, 16, 1, float64), {2, 2, 2, 2});
  Tensor y4 = batch_norm(x4, {}, {}, {}, {}, {.training = true, .momentum = 0.5});
  const xt::xarray<double> a = y4.array<double>();
  // Channel 0 holds 0..3 and 8..11: mean 5.5, biased variance 138/8.
  CHECK(xt::sum(xt::view(a, xt::all(), 0))() == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(a(0, 0, 0, 0) == doctest::Approx((0 - 5.5) / std::sqrt(138.0 / 8 + eps)));
  // float32 gives the same.
  Tensor y32 = batch_norm(x4.to(float32), {}, {}, {}, {}, {.training = true});
  CHECK(xt::allclose(y32.to(float64).array<double>(), a, 1e-5, 1e-5));
}

TEST_CASE("batch_norm gradients in training and evaluation") {
  Generator gen(4);
  for (Shape s : {Shape{5, 3}, Shape{2, 3, 3, 2}, Shape{1, 2, 3, 3}}) {
    INFO(shape_str(s));
    const std::size_t c = s[1];
    Tensor x = randn(s, gen, float64).requires_grad_();
    Tensor w = randn({c}, gen, float64).requires_grad_();
    Tensor b = randn({c}, gen, float64).requires_grad_();
    Tensor rm = randn({c}, gen, float64), rv = add(rand({c}, gen, float64), 0.5);
    // Weighted sum of squares, so that the loss is not invariant to the normalization.
    Tensor r = randn(s, gen, float64);
    check_grad(
        [r](const TensorList& in) {
          return mul(pow(batch_norm(in[0], {}, {}, in[1], in[2], {.training = true}), 2.0), r);
        },
        {x, w, b});
    check_grad([r](const TensorList& in) { return mul(batch_norm(in[0], {}, {}, {}, {}, {.training = true}), r); },
               {x});
    check_grad([r, rm, rv](const TensorList& in) { return mul(pow(batch_norm(in[0], rm, rv, in[1], in[2]), 2.0), r); },
               {x, w, b});
    // The recorded (create_graph) backward gives the fused backward's numbers.
    auto fn = [r](const TensorList& in) { return mul(batch_norm(in[0], {}, {}, in[1], in[2], {.training = true}), r); };
    TensorList plain = grad({sum(fn({x, w, b}))}, {x, w, b});
    TensorList recorded = grad({sum(fn({x, w, b}))}, {x, w, b}, {.create_graph = true});
    for (std::size_t i = 0; i < 3; ++i)
      CHECK(xt::allclose(plain[i].array<double>(), recorded[i].detach().array<double>(), 1e-10, 1e-10));
  }
}

TEST_CASE("batch_norm rejects bad input with clear messages") {
  Tensor x = zeros({4, 3, 2, 2});
  CHECK_THROWS_WITH_AS(batch_norm(zeros({4}), {}, {}, {}, {}, {.training = true}),
                       doctest::Contains("batch_norm: expected x of rank >= 2 [N,C,...], got shape [4]"), Error);
  CHECK_THROWS_WITH_AS(
      batch_norm(x, {}, {}, zeros({4}), {}, {.training = true}),
      doctest::Contains("batch_norm: weight has shape [4], expected [3] (the channels of x [4, 3, 2, 2])"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, zeros({2}), ones({2}), {}, {}),
                       doctest::Contains("running_mean has shape [2], expected [3]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, {}, {}, {}, {}), doctest::Contains("evaluation mode needs running_mean"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(zeros({1, 3}), {}, {}, {}, {}, {.training = true}),
                       doctest::Contains("training needs more than one value per channel, got x [1, 3]"), Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, zeros({3}), {}, {}, {}),
                       doctest::Contains("give both running_mean and running_var"), Error);
}
