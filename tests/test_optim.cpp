// Optimizers step by step against values computed by hand (tests/.. formulas in the comments,
// evaluated in double precision), parameter groups, state save/load, schedulers, clipping and
// configuration errors. PyTorch's own numbers are checked in test_conformance_optim.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;
using Expected = std::vector<std::vector<double>>;

namespace {

// Every case starts at p = [1, -2] and receives the gradients [0.5, -1], [0.1, 0.2], [-0.3, 0.4].
const Expected kGrads = {{0.5, -1.0}, {0.1, 0.2}, {-0.3, 0.4}};

Tensor start() { return Tensor(xt::xarray<double>{1.0, -2.0}).requires_grad_(); }

void set_grad(Tensor& p, const std::vector<double>& g) {
  xt::xarray<double> a = xt::xarray<double>::from_shape({g.size()});
  std::copy(g.begin(), g.end(), a.begin());
  p.set_grad(Tensor(std::move(a)));
}

template <class Make>
void check_steps(Make make, const Expected& expected) {
  Tensor p = start();
  auto opt = make(TensorList{p});
  for (std::size_t s = 0; s < kGrads.size(); ++s) {
    set_grad(p, kGrads[s]);
    const auto version = p.version();
    opt.step();
    CHECK(p.version() > version);
    for (std::size_t i = 0; i < 2; ++i) {
      INFO("step ", s + 1, " element ", i);
      CHECK(p.array<double>()(i) == doctest::Approx(expected[s][i]).epsilon(1e-12));
    }
  }
}

}  // namespace

TEST_CASE("SGD: plain, with momentum + dampening + weight decay, and Nesterov") {
  // p ← p - lr·g
  check_steps([](TensorList ps) { return optim::SGD(ps, {.lr = 0.1}); }, {{0.95, -1.9}, {0.94, -1.92}, {0.97, -1.96}});
  // d = g + 0.01·p; buf = d (step 1), else 0.9·buf + 0.9·d; p ← p - 0.1·buf
  check_steps(
      [](TensorList ps) {
        return optim::SGD(ps, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
      },
      {{0.949, -1.898}, {0.8932459, -1.8224918}, {0.86926328869, -1.78889417738}});
  // buf as above (no dampening); p ← p - 0.1·(g + 0.9·buf)
  check_steps([](TensorList ps) { return optim::SGD(ps, {.lr = 0.1, .momentum = 0.9, .nesterov = true}); },
              {{0.905, -1.81}, {0.8455, -1.767}, {0.85795, -1.7863}});
}

TEST_CASE("Adam with PyTorch's formula, with L2 weight decay and AMSGrad") {
  // m, v moments; p ← p - lr/(1-b1^t) · m / (sqrt(v)/sqrt(1-b2^t) + eps)
  check_steps([](TensorList ps) { return optim::Adam(ps, {.lr = 0.1}); }, {{0.900000002, -1.900000001},
                                                                           {0.8196959063846517, -1.8488973939904945},
                                                                           {0.798624611763508, -1.835473434208156}});
  check_steps(
      [](TensorList ps) {
        return optim::Adam(ps, {.lr = 0.1, .betas = {0.8, 0.9}, .weight_decay = 0.1, .amsgrad = true});
      },
      {{0.9000000016666667, -1.9000000008333333},
       {0.814499723535862, -1.8393757130313995},
       {0.7793773542040049, -1.8087939425237494}});
}

TEST_CASE("Adam with Keras's formula: eps 1e-7, bias correction folded into the rate") {
  // lr_t = lr·sqrt(1-b2^t)/(1-b1^t); p ← p - lr_t · m / (sqrt(v) + eps)
  optim::Adam probe(TensorList{start()}, {.formula = optim::AdamOptions::Formula::keras});
  CHECK(probe.eps() == 1e-7);
  CHECK(optim::Adam(TensorList{start()}).eps() == 1e-8);
  check_steps([](TensorList ps) { return optim::Adam(ps, {.lr = 0.1, .formula = optim::AdamOptions::Formula::keras}); },
              {{0.9000006324515321, -1.900000316226766},
               {0.819697032869824, -1.8488978670466378},
               {0.7986258503439517, -1.8354739458364608}});
  check_steps(
      [](TensorList ps) {
        return optim::Adam(
            ps, {.lr = 0.1, .betas = {0.8, 0.9}, .amsgrad = true, .formula = optim::AdamOptions::Formula::keras});
      },
      {{0.9000000632455132, -1.9000000316227665},
       {0.8234220630549696, -1.854053216978791},
       {0.8111349201103177, -1.8486719358777421}});
}

TEST_CASE("Adam on a tensor large enough to be split across threads steps as on one thread") {
  // Each thread takes a range of the elements; an offset wrong in any buffer shows here.
  Generator gen(7);
  const Tensor init = randn({40001}, gen, float64);
  const TensorList grads = {randn({40001}, gen, float64), randn({40001}, gen, float64), randn({40001}, gen, float64)};
  const int before = get_num_threads();
  for (const auto formula : {optim::AdamOptions::Formula::pytorch, optim::AdamOptions::Formula::keras}) {
    std::vector<Tensor> results;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      Tensor p = init.clone().requires_grad_();
      optim::Adam opt({p}, {.lr = 0.1, .weight_decay = 0.01, .amsgrad = true, .formula = formula});
      for (const Tensor& g : grads) {
        p.set_grad(g);
        opt.step();
      }
      results.push_back(p.detach());
    }
    CHECK(xt::all(xt::equal(results[0].array<double>(), results[1].array<double>())));
    CHECK_FALSE(xt::all(xt::equal(results[0].array<double>(), init.array<double>())));
  }
  set_num_threads(before);
}

TEST_CASE("AdamW decays the weights apart from the gradient") {
  // p ← p·(1 - lr·wd), then the Adam step on the raw gradient
  check_steps([](TensorList ps) { return optim::AdamW(ps, {.lr = 0.1, .weight_decay = 0.1}); },
              {{0.890000002, -1.880000001},
               {0.8007959063646517, -1.8100973939804945},
               {0.7717166526798614, -1.778572460258351}});
}

TEST_CASE("RMSprop: plain, and centered with momentum and weight decay") {
  // s ← α·s + (1-α)·g²; p ← p - lr·g/(sqrt(s) + eps)
  check_steps([](TensorList ps) { return optim::RMSprop(ps, {.lr = 0.01}); },
              {{0.900000019999996, -1.900000009999999},
               {0.8802934383202046, -1.9197065936215374},
               {0.9313743740465428, -1.9565342567273971}});
  // g += wd·p; a ← α·a + (1-α)·g; d = sqrt(s - a²) + eps; b ← μ·b + g/d; p ← p - lr·b
  check_steps(
      [](TensorList ps) {
        return optim::RMSprop(ps, {.lr = 0.01, .alpha = 0.9, .weight_decay = 0.1, .momentum = 0.5, .centered = true});
      },
      {{0.9666666685185185, -1.9666666675925926},
       {0.9388013312366748, -1.9500970347679711},
       {0.9359175060796786, -1.947856894715121}});
}

TEST_CASE("float32 parameters step in float32") {
  Tensor p = Tensor({1.0, -2.0}).requires_grad_();
  optim::Adam opt(TensorList{p}, {.lr = 0.1});
  p.set_grad(Tensor({0.5, -1.0}));
  opt.step();
  CHECK(p.dtype() == float32);
  CHECK(p.array<float>()(0) == doctest::Approx(0.9).epsilon(1e-6));
}

TEST_CASE("parameter groups have their own lr and weight decay; parameters without gradient are skipped") {
  Tensor a = Tensor(xt::xarray<double>{1.0}).requires_grad_();
  Tensor b = Tensor(xt::xarray<double>{1.0}).requires_grad_();
  Tensor c = Tensor(xt::xarray<double>{1.0}).requires_grad_();
  optim::SGD opt(
      std::vector<optim::ParamGroupOptions>{{.params = {a}}, {.params = {b, c}, .lr = 0.5, .weight_decay = 1.0}},
      {.lr = 0.1});
  CHECK(opt.param_groups().size() == 2);
  CHECK(opt.param_groups()[1].lr == 0.5);
  a.set_grad(ones({1}, float64));
  b.set_grad(ones({1}, float64));
  opt.step();
  CHECK(a.item() == doctest::Approx(0.9));
  CHECK(b.item() == doctest::Approx(0.0));  // 1 - 0.5·(1 + 1·1)
  CHECK(c.item() == 1.0);
  CHECK(opt.state_dict().contains("state.0.step"));
  CHECK_FALSE(opt.state_dict().contains("state.2.step"));
  opt.set_lr(0.25);
  CHECK(opt.param_groups()[0].lr == 0.25);
  CHECK(opt.param_groups()[1].lr == 0.25);
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("optimizer configuration errors are clear") {
  Tensor p = start();
  CHECK_THROWS_WITH_AS(optim::SGD(TensorList{p}, {.lr = -0.1}), "SGD: lr must be >= 0, got -0.1", Error);
  CHECK_THROWS_WITH_AS(optim::SGD(TensorList{p}, {.momentum = -1}), doctest::Contains("momentum must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(TensorList{p}, {.nesterov = true}), doctest::Contains("nesterov needs momentum > 0"),
                       Error);
  CHECK_THROWS_WITH_AS(optim::Adam(TensorList{p}, {.betas = {0.9, 1.0}}), "Adam: betas.second must be in [0, 1), got 1",
                       Error);
  CHECK_THROWS_WITH_AS(optim::Adam(TensorList{p}, {.betas = {-0.1, 0.9}}), doctest::Contains("betas.first"), Error);
  CHECK_THROWS_WITH_AS(optim::AdamW(TensorList{p}, {.eps = -1.0}), doctest::Contains("AdamW: eps must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(optim::RMSprop(TensorList{p}, {.alpha = -0.5}), doctest::Contains("alpha must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(TensorList{}, {}), doctest::Contains("group 0 is empty"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(TensorList{p, p}, {}), doctest::Contains("appears more than once"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(TensorList{p * 2.0}, {}), doctest::Contains("not a leaf tensor"), Error);
  CHECK_THROWS_WITH_AS(optim::SGD(TensorList{zeros({2}, int64)}, {}), doctest::Contains("only float32 and float64"),
                       Error);
  CHECK_THROWS_WITH_AS(optim::SGD(std::vector<optim::ParamGroupOptions>{{.params = {p}, .lr = -1.0}}, {}),
                       doctest::Contains("lr of group 0 must be >= 0"), Error);
  optim::SGD ok(TensorList{p}, {});
  CHECK_THROWS_WITH_AS(ok.set_lr(-1), doctest::Contains("lr must be >= 0"), Error);
}

TEST_CASE("state converted apart from its parameter is caught at step") {
  nn::Linear layer(2, 1);
  optim::Adam opt(layer.parameters(), {});
  sum(layer(ones({1, 2}))).backward();
  opt.step();
  layer.to(float64);  // too late: the optimizer's moments are still float32
  sum(layer(ones({1, 2}, float64))).backward();
  CHECK_THROWS_WITH_AS(opt.step(), doctest::Contains("convert the model (to()) before creating its optimizer"), Error);
}

TEST_CASE("state_dict round trip continues identically; loading is strict") {
  auto run = [](optim::Optimizer& opt, Tensor& p, std::size_t from, std::size_t to) {
    for (std::size_t s = from; s < to; ++s) {
      set_grad(p, kGrads[s]);
      opt.step();
    }
  };
  Tensor p1 = start();
  optim::Adam a1(TensorList{p1}, {.lr = 0.1, .amsgrad = true});
  run(a1, p1, 0, 2);
  const optim::StateDict saved = a1.state_dict();
  CHECK(saved.size() == 3 + 4);  // group lr, weight_decay, num_params; step + three moments
  CHECK(saved.at("state.0.step").item() == 2);

  Tensor p2 = Tensor(p1.detach().clone()).requires_grad_();
  optim::Adam a2(TensorList{p2}, {.lr = 0.1, .amsgrad = true});
  a2.load_state_dict(saved);
  run(a1, p1, 2, 3);
  run(a2, p2, 2, 3);
  CHECK(p1.array<double>() == p2.array<double>());

  optim::StateDict missing = saved;
  missing.erase("state.0.exp_avg_sq");
  CHECK_THROWS_WITH_AS(a2.load_state_dict(missing), "Adam::load_state_dict: missing key 'state.0.exp_avg_sq'", Error);
  optim::StateDict extra = saved;
  extra.emplace("state.0.momentum_buffer", zeros({2}, float64));
  CHECK_THROWS_WITH_AS(a2.load_state_dict(extra), "Adam::load_state_dict: unexpected key 'state.0.momentum_buffer'",
                       Error);
  optim::StateDict wrong = saved;
  wrong["state.0.exp_avg"] = zeros({3}, float64);
  CHECK_THROWS_WITH_AS(a2.load_state_dict(wrong),
                       doctest::Contains("'state.0.exp_avg' is float64 [3] but parameter 0 is float64 [2]"), Error);
  Tensor q = start();
  optim::Adam two(TensorList{q, start()}, {});
  CHECK_THROWS_WITH_AS(two.load_state_dict(saved),
                       doctest::Contains("the saved group 0 has 1 parameters, this optimizer's has 2"), Error);
  // A failed load changes nothing.
  CHECK(a2.state_dict().at("state.0.step").item() == 3);
}

TEST_CASE("schedulers follow PyTorch's closed forms") {
  Tensor p = start();
  optim::SGD opt(TensorList{p}, {.lr = 1.0});
  auto lrs = [&](optim::LRScheduler& s, int n) {
    std::vector<double> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(opt.lr());
      s.step();
    }
    return out;
  };
  {
    optim::StepLR s(opt, 2, 0.5);
    const auto got = lrs(s, 5);
    CHECK(got == std::vector<double>{1.0, 1.0, 0.5, 0.5, 0.25});
  }
  opt.set_lr(1.0);
  {
    optim::ExponentialLR s(opt, 0.5);
    CHECK(lrs(s, 4) == std::vector<double>{1.0, 0.5, 0.25, 0.125});
  }
  opt.set_lr(1.0);
  {
    optim::CosineAnnealingLR s(opt, 4, 0.2);
    const auto got = lrs(s, 5);  // 0.2 + 0.8·(1 + cos(πe/4))/2
    const std::vector<double> want{1.0, 0.2 + 0.4 * (1 + std::sqrt(0.5)), 0.6, 0.2 + 0.4 * (1 - std::sqrt(0.5)), 0.2};
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
  }
  opt.set_lr(1.0);
  {
    optim::LinearWarmup s(opt, 0.25, 1.0, 3);
    const auto got = lrs(s, 5);
    const std::vector<double> want{0.25, 0.5, 0.75, 1.0, 1.0};
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]));
    s.set_last_epoch(1);
    CHECK(opt.lr() == doctest::Approx(0.5));
    CHECK(s.get_last_lr() == std::vector<double>{opt.lr()});
  }
  CHECK_THROWS_WITH_AS(optim::StepLR(opt, 0), doctest::Contains("step_size must be positive"), Error);
  CHECK_THROWS_WITH_AS(optim::LinearLR(opt, 0.0), doctest::Contains("start_factor must be in (0, 1]"), Error);
  CHECK_THROWS_WITH_AS(optim::CosineAnnealingLR(opt, 0), doctest::Contains("T_max must be positive"), Error);
}

TEST_CASE("ReduceLROnPlateau: patience, threshold, cooldown, min_lr and max mode") {
  Tensor p = start();
  optim::SGD opt(TensorList{p}, {.lr = 1.0});
  optim::ReduceLROnPlateau s(opt, {.factor = 0.5, .patience = 1, .threshold = 0.1, .cooldown = 1, .min_lr = 0.3});
  std::vector<double> got;
  // 10 best; 9.5 is not 10% better (bad 1); 9.4 bad 2 > patience → 0.5, cooldown; 9.3 ignored;
  // 9.2 bad 1; 9.1 bad 2 → max(0.25, 0.3) = 0.3; then nothing can go lower.
  for (double metric : {10.0, 9.5, 9.4, 9.3, 9.2, 9.1, 9.0, 8.9, 8.8}) {
    s.step(metric);
    got.push_back(opt.lr());
  }
  CHECK(got == std::vector<double>{1.0, 1.0, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3});

  opt.set_lr(1.0);
  optim::ReduceLROnPlateau acc(opt, {.mode = optim::ReduceLROnPlateauOptions::Mode::max, .patience = 0});
  acc.step(0.5);
  acc.step(0.6);
  CHECK(opt.lr() == 1.0);
  acc.step(0.6);
  CHECK(opt.lr() == doctest::Approx(0.1));
  CHECK_THROWS_WITH_AS(optim::ReduceLROnPlateau(opt, {.factor = 1.0}), doctest::Contains("factor must be in [0, 1)"),
                       Error);
}

TEST_CASE("gradient clipping by global norm and by value") {
  Tensor a = Tensor(xt::xarray<double>{3.0, 4.0}).requires_grad_();
  Tensor b = Tensor(xt::xarray<double>{12.0}).requires_grad_();
  Tensor none = Tensor(xt::xarray<double>{1.0}).requires_grad_();
  auto set = [&] {
    a.set_grad(Tensor(xt::xarray<double>{3.0, 4.0}));
    b.set_grad(Tensor(xt::xarray<double>{12.0}));
  };
  set();
  CHECK(optim::clip_grad_norm_({a, b, none}, 26.0) == doctest::Approx(13.0));
  CHECK(a.grad().array<double>()(0) == 3.0);  // below max_norm: unchanged
  const double norm = optim::clip_grad_norm_({a, b, none}, 6.5);
  CHECK(norm == doctest::Approx(13.0));
  const double coef = 6.5 / (13.0 + 1e-6);
  CHECK(a.grad().array<double>()(1) == doctest::Approx(4.0 * coef).epsilon(1e-14));
  CHECK(b.grad().item() == doctest::Approx(12.0 * coef).epsilon(1e-14));
  set();
  CHECK(optim::clip_grad_norm_({a, b}, 100.0, 1.0) == doctest::Approx(19.0));
  CHECK(optim::clip_grad_norm_({a, b}, 100.0, std::numeric_limits<double>::infinity()) == 12.0);
  b.set_grad(Tensor(xt::xarray<double>{std::nan("")}));
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({a, b}, 1.0, 2.0, true),
                       doctest::Contains("total norm of the gradients is nan"), Error);
  set();
  optim::clip_grad_value_({a, b}, 3.5);
  CHECK(a.grad().array<double>() == xt::xarray<double>{3.0, 3.5});
  CHECK(b.grad().item() == 3.5);
  CHECK_THROWS_WITH_AS(optim::clip_grad_value_({a}, -1.0), doctest::Contains("clip_value must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(optim::clip_grad_norm_({a}, 1.0, 0.0), doctest::Contains("norm_type must be > 0"), Error);
}

TEST_CASE("a small model trains with each optimizer") {
  for (int which = 0; which < 4; ++which) {
    Generator gen(3);
    nn::Sequential model{nn::Linear(2, 8, {.activation = nn::Activation::tanh, .generator = &gen}),
                         nn::Linear(8, 1, {.generator = &gen})};
    std::unique_ptr<optim::Optimizer> opt;
    if (which == 0)
      opt = std::make_unique<optim::SGD>(model.parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
    if (which == 1) opt = std::make_unique<optim::Adam>(model.parameters(), optim::AdamOptions{.lr = 0.05});
    if (which == 2) opt = std::make_unique<optim::AdamW>(model.parameters(), optim::AdamWOptions{.lr = 0.05});
    if (which == 3) opt = std::make_unique<optim::RMSprop>(model.parameters(), optim::RMSpropOptions{.lr = 0.01});
    const Tensor x = randn({32, 2}, gen);
    const Tensor y = sum(x * x, {1}, true);
    double first = 0, last = 0;
    for (int step = 0; step < 200; ++step) {
      opt->zero_grad();
      const Tensor loss = mean(pow(model(x) - y, 2.0));
      loss.backward();
      opt->step();
      (step == 0 ? first : last) = loss.item();
    }
    INFO(opt->name());
    CHECK(last < 0.2 * first);
  }
}
