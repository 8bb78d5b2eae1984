// softmax, log_softmax and the losses: values by hand, stability at ±1e4, gradients (first and
// second order, fused and recorded backward paths agreeing), and bad input.
#include <doctest/doctest.h>

#include <cmath>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

void check_grad(const DifferentiableFn& fn, const TensorList& in, bool second_order = true) {
  auto r = gradcheck(fn, in);
  INFO(r.message);
  CHECK(r);
  if (!second_order) return;
  auto rr = gradgradcheck(fn, in);
  INFO(rr.message);
  CHECK(rr);
}

// First-order gradients with create_graph (the recorded path) equal the plain (fused) ones.
void check_paths_agree(const DifferentiableFn& fn, const TensorList& in) {
  const Tensor out = fn(in);
  TensorList plain = grad({sum(out)}, in);
  TensorList recorded = grad({sum(mul(fn(in), 1.0))}, in, {.create_graph = true});
  for (std::size_t i = 0; i < in.size(); ++i)
    CHECK(xt::allclose(plain[i].array<double>(), recorded[i].detach().array<double>(), 1e-12, 1e-12));
}

Tensor one_hot_rows(const std::vector<std::int64_t>& classes, std::size_t c) {
  xt::xarray<double> t = xt::zeros<double>({classes.size(), c});
  for (std::size_t i = 0; i < classes.size(); ++i) t(i, static_cast<std::size_t>(classes[i])) = 1.0;
  return Tensor(std::move(t));
}

Tensor labels(const std::vector<std::int64_t>& v) {
  xt::xarray<std::int64_t> a = xt::xarray<std::int64_t>::from_shape({v.size()});
  std::copy(v.begin(), v.end(), a.begin());
  return Tensor(std::move(a));
}

}  // namespace

TEST_CASE("softmax and log_softmax values, any axis, stable at ±1e4") {
  Tensor x = Tensor({{1.0, 2.0, 3.0}, {0.0, 0.0, 0.0}}).to(float64);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  Tensor s = softmax(x);
  CHECK(s.array<double>()(0, 0) == doctest::Approx(std::exp(1.0) / z));
  CHECK(s.array<double>()(1, 2) == doctest::Approx(1.0 / 3));
  CHECK(log_softmax(x).array<double>()(0, 2) == doctest::Approx(3.0 - std::log(z)));
  // Axis 0: columns sum to one.
  Tensor s0 = softmax(x, 0);
  CHECK(s0.array<double>()(0, 0) + s0.array<double>()(1, 0) == doctest::Approx(1.0));
  CHECK(s0.array<double>()(0, 1) == doctest::Approx(std::exp(2.0) / (std::exp(2.0) + 1.0)));

  for (Dtype d : {float32, float64}) {
    Tensor big = Tensor({{1e4, -1e4, 0.0}, {-1e4, -1e4, -1e4}}).to(d);
    const xt::xarray<double> ls = log_softmax(big).to(float64).array<double>();
    CHECK(ls(0, 0) == doctest::Approx(0.0));
    CHECK(ls(0, 1) == doctest::Approx(-2e4));
    CHECK(ls(1, 0) == doctest::Approx(-std::log(3.0)));
    const xt::xarray<double> sm = softmax(big).to(float64).array<double>();
    CHECK(sm(0, 0) == doctest::Approx(1.0));
    CHECK(sm(0, 1) == 0.0);
    CHECK(xt::all(xt::isfinite(ls)));
    Tensor loss = cross_entropy(big, labels({1, 2}));
    CHECK(std::isfinite(loss.item()));
    CHECK(loss.item() == doctest::Approx((2e4 + std::log(3.0)) / 2).epsilon(1e-6));
  }
}

TEST_CASE("softmax and log_softmax gradients, first and second order") {
  Generator gen(1);
  for (int axis : {-1, 0, 1}) {
    INFO("axis " << axis);
    Tensor x = randn({3, 4, 2}, gen, float64).requires_grad_();
    // Weighted, so that the gradient is not the trivial zero of sum(softmax).
    Tensor w = randn({3, 4, 2}, gen, float64);
    auto sm = [axis, w](const TensorList& in) { return mul(softmax(in[0], axis), w); };
    auto lsm = [axis, w](const TensorList& in) { return mul(log_softmax(in[0], axis), w); };
    check_grad(sm, {x});
    check_grad(lsm, {x});
    check_paths_agree(sm, {x});
    check_paths_agree(lsm, {x});
  }
}

TEST_CASE("cross_entropy with class indices: values, label smoothing, reductions") {
  Tensor logits = Tensor({{2.0, 1.0, 0.1}, {0.5, 2.5, 0.3}}).to(float64);
  Tensor target = labels({0, 1});
  const xt::xarray<double> lsm = log_softmax(logits).array<double>();
  const double l0 = -lsm(0, 0), l1 = -lsm(1, 1);
  CHECK(cross_entropy(logits, target).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(cross_entropy(logits, target, {.reduction = Reduction::sum}).item() == doctest::Approx(l0 + l1));
  const xt::xarray<double> none = cross_entropy(logits, target, {.reduction = Reduction::none}).array<double>();
  CHECK(none(0) == doctest::Approx(l0));
  CHECK(none(1) == doctest::Approx(l1));
  // Label smoothing ε: (1-ε) nll + ε/C Σ_j -log p_j.
  const double eps = 0.1;
  const double s0 = (1 - eps) * l0 - eps / 3 * (lsm(0, 0) + lsm(0, 1) + lsm(0, 2));
  const double s1 = (1 - eps) * l1 - eps / 3 * (lsm(1, 0) + lsm(1, 1) + lsm(1, 2));
  CHECK(cross_entropy(logits, target, {.label_smoothing = eps}).item() == doctest::Approx((s0 + s1) / 2));
  // nll_loss(log_softmax) is the same thing.
  CHECK(nll_loss(log_softmax(logits), target).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(nll_loss(log_softmax(logits), target, {.reduction = Reduction::sum}).item() == doctest::Approx(l0 + l1));
  // One-hot probability targets (Keras categorical_crossentropy) give the same values.
  CHECK(cross_entropy(logits, one_hot_rows({0, 1}, 3)).item() == doctest::Approx((l0 + l1) / 2));
  CHECK(cross_entropy(logits, one_hot_rows({0, 1}, 3), {.label_smoothing = eps}).item() ==
        doctest::Approx((s0 + s1) / 2));
  // float32 agrees.
  CHECK(cross_entropy(logits.to(float32), target).item() == doctest::Approx((l0 + l1) / 2).epsilon(1e-6));
}

TEST_CASE("cross_entropy and nll_loss gradients") {
  Generator gen(2);
  Tensor x = randn({5, 4}, gen, float64).requires_grad_();
  Tensor t = labels({3, 0, 1, 1, 2});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double eps : {0.0, 0.2}) {
      INFO("eps " << eps);
      auto fn = [t, red, eps](const TensorList& in) {
        return cross_entropy(in[0], t, {.reduction = red, .label_smoothing = eps});
      };
      check_grad(fn, {x});
      check_paths_agree(fn, {x});
    }
  // d/dlogits of the mean loss = (softmax - onehot) / N.
  Tensor xg = x.detach().requires_grad_();
  cross_entropy(xg, t).backward();
  const xt::xarray<double> expected =
      (softmax(x.detach()).array<double>() - one_hot_rows({3, 0, 1, 1, 2}, 4).array<double>()) / 5.0;
  CHECK(xt::allclose(xg.grad().array<double>(), expected));

  // Probability targets: differentiable in logits and targets.
  Tensor p = softmax(randn({5, 4}, gen, float64)).detach().requires_grad_();
  check_grad([](const TensorList& in) { return cross_entropy(in[0], in[1]); }, {x, p});
  check_grad([](const TensorList& in) { return cross_entropy(in[0], in[1], {.label_smoothing = 0.3}); }, {x, p});
  check_grad([t](const TensorList& in) { return nll_loss(log_softmax(in[0]), t, {.reduction = Reduction::none}); },
             {x});
}

TEST_CASE("mse_loss and binary_cross_entropy_with_logits") {
  Tensor a = Tensor({1.0, 2.0, 4.0}).to(float64), b = Tensor({0.0, 2.0, 1.0}).to(float64);
  CHECK(mse_loss(a, b).item() == doctest::Approx(10.0 / 3));
  CHECK(mse_loss(a, b, {.reduction = Reduction::sum}).item() == doctest::Approx(10.0));
  CHECK(mse_loss(a, b, {.reduction = Reduction::none}).array<double>() == xt::xarray<double>({1, 0, 9}));

  Tensor z = Tensor({0.0, 2.0, -3.0, 1e4, -1e4}).to(float64), t = Tensor({1.0, 0.0, 0.5, 1.0, 1.0}).to(float64);
  const xt::xarray<double> v = binary_cross_entropy_with_logits(z, t, {.reduction = Reduction::none}).array<double>();
  auto sig = [](double u) { return 1 / (1 + std::exp(-u)); };
  CHECK(v(0) == doctest::Approx(std::log(2.0)));
  CHECK(v(1) == doctest::Approx(-std::log(1 - sig(2.0))));
  CHECK(v(2) == doctest::Approx(-0.5 * std::log(sig(-3.0)) - 0.5 * std::log(1 - sig(-3.0))));
  CHECK(v(3) == doctest::Approx(0.0));
  CHECK(v(4) == doctest::Approx(1e4));

  Generator gen(3);
  Tensor x = randn({3, 4}, gen, float64).requires_grad_();
  Tensor y = randn({3, 4}, gen, float64).requires_grad_();
  Tensor prob = rand({3, 4}, gen, float64).requires_grad_();
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    check_grad([red](const TensorList& in) { return mse_loss(in[0], in[1], {.reduction = red}); }, {x, y});
    check_grad(
        [red](const TensorList& in) { return binary_cross_entropy_with_logits(in[0], in[1], {.reduction = red}); },
        {x, prob});
  }
}

TEST_CASE("losses reject bad input with clear messages") {
  Tensor logits = zeros({3, 4});
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels({0, 4, 1})),
                       doctest::Contains("cross_entropy: target[1] = 4 is out of range for 4 classes (logits [3, 4])"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels({0, -1, 1})), doctest::Contains("target[1] = -1 is out of range"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor({0.0, 1.0, 2.0})),
                       doctest::Contains("cross_entropy: class-index target must be int64, got float32 [3]"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels({0, 1})),
                       doctest::Contains("target has shape [2], expected [3] class indices for logits [3, 4]"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({3, 4, 5}), labels({0, 1, 2})),
                       doctest::Contains("cross_entropy: expected logits of rank 2 [N,C], got shape [3, 4, 5]"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels({0, 1, 2}), {.label_smoothing = 1.5}),
                       doctest::Contains("label_smoothing must be in [0, 1]"), Error);
  CHECK_THROWS_WITH_AS(nll_loss(logits, labels({0, 1, 9})),
                       doctest::Contains("nll_loss: target[2] = 9 is out of range"), Error);
  CHECK_THROWS_WITH_AS(nll_loss(logits, Tensor({0.0, 1.0, 2.0})),
                       doctest::Contains("nll_loss: class-index target must be int64"), Error);
  CHECK_THROWS_WITH_AS(mse_loss(zeros({3}), zeros({4})),
                       doctest::Contains("mse_loss: input [3] and target [4] must have the same shape"), Error);
  CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(zeros({3}), zeros({3}, float64)),
                       doctest::Contains("must have the same float dtype"), Error);
  CHECK_THROWS_WITH_AS(softmax(zeros({3}), 1), doctest::Contains("softmax: axis 1 is out of range"), Error);
  CHECK_THROWS_WITH_AS(log_softmax(zeros({3}, int64)), doctest::Contains("log_softmax: expected a float32 or float64"),
                       Error);
}
