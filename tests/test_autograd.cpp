// Engine: accumulation, diamonds, retain_graph, released graphs, in-place checks, no-grad,
// long chains, live-node counting, tg::grad and higher order.
#include <doctest/doctest.h>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

TEST_CASE("backward accumulates into leaves across calls") {
  Tensor x = Tensor({1.0, 2.0, 3.0}).to(float64).requires_grad_();
  sum(x * x).backward();
  CHECK(x.grad().array<double>() == xt::xarray<double>({2, 4, 6}));
  sum(x * x).backward();
  CHECK(x.grad().array<double>() == xt::xarray<double>({4, 8, 12}));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("a value used twice gets both gradients (diamond)") {
  Tensor x = Tensor({2.0}).requires_grad_();
  Tensor a = x * 3.0;
  Tensor y = sum(a * a + a);  // 9x² + 3x → 18x + 3
  y.backward();
  CHECK(x.grad().item() == doctest::Approx(39.0));
}

TEST_CASE("second backward through a released graph names the op and the fix") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward();
  try {
    y.backward();
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("second time") != std::string::npos);
    CHECK(msg.find("retain_graph") != std::string::npos);
  }
}

TEST_CASE("retain_graph allows backward twice") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor y = sum(x * x);
  y.backward({.retain_graph = true});
  y.backward();
  CHECK(x.grad().array<float>() == xt::xarray<float>({4, 8}));
}

TEST_CASE("in-place change of a saved tensor is caught at backward") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor w = Tensor({3.0, 4.0});
  Tensor y = sum(x * w);
  w.fill_(0.0);
  try {
    y.backward();
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("mul") != std::string::npos);
    CHECK(msg.find("modified in place") != std::string::npos);
  }
}

TEST_CASE("no-grad records nothing") {
  Tensor x = Tensor({1.0}).requires_grad_();
  const auto before = autograd::live_node_count();
  {
    NoGradGuard guard;
    Tensor y = x * 2.0 + 1.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(autograd::live_node_count() == before);
  }
  CHECK(is_grad_enabled());
}

TEST_CASE("backward from a non-scalar needs a seed") {
  Tensor x = Tensor({1.0, 2.0}).requires_grad_();
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("scalar"), Error);
  y.backward(Tensor({1.0, 10.0}));
  CHECK(x.grad().array<float>() == xt::xarray<float>({2, 20}));
}

TEST_CASE("a 100,000-op chain backs up and is destroyed without overflow; nodes are freed") {
  const auto before = autograd::live_node_count();
  {
    Tensor x = Tensor({1.0}).to(float64).requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.0;
    CHECK(autograd::live_node_count() - before == 100000);
    y.backward();
    CHECK(x.grad().item() == 1.0);
  }
  {
    Tensor x = Tensor({1.0}).requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = y + 1.0;
  }  // destroyed without backward
  CHECK(autograd::live_node_count() == before);
}

TEST_CASE("the live-node counter returns to zero after a training-like step") {
  const auto before = autograd::live_node_count();
  Tensor w = Tensor({0.5, -0.5}).requires_grad_();
  for (int step = 0; step < 3; ++step) {
    Tensor loss = sum(pow(w * 2.0 - 1.0, 2.0));
    loss.backward();
  }
  CHECK(autograd::live_node_count() == before);
}

TEST_CASE("tg::grad returns gradients without touching .grad") {
  Tensor x = Tensor({1.0, 2.0}).to(float64).requires_grad_();
  Tensor y = sum(x * x * x);
  TensorList g = grad({y}, {x});
  CHECK(g[0].array<double>() == xt::xarray<double>({3, 12}));
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("tg::grad of an intermediate tensor") {
  Tensor x = Tensor({1.0, 2.0}).to(float64).requires_grad_();
  Tensor h = x * 2.0;
  Tensor y = sum(h * h);
  TensorList g = grad({y}, {h});
  CHECK(g[0].array<double>() == xt::xarray<double>({4, 8}));
}

TEST_CASE("tg::grad rejects an unused input unless allowed") {
  Tensor x = Tensor({1.0}).requires_grad_();
  Tensor z = Tensor({1.0}).requires_grad_();
  Tensor y = sum(x * 2.0);
  CHECK_THROWS_AS(grad({y}, {z}, {.retain_graph = true}), Error);
  TensorList g = grad({y}, {z}, {.allow_unused = true});
  CHECK_FALSE(g[0].defined());
}

TEST_CASE("Hessian-vector product matches the analytic Hessian") {
  // f(x) = x0² x1 + sin-free cubic: f = x0²·x1 + x1³ → H = [[2x1, 2x0], [2x0, 6x1]]
  Tensor x = Tensor({1.5, -0.5}).to(float64).requires_grad_();
  auto f = [](const Tensor& v) {
    Tensor x0 = slice(v, 0, 0, 1), x1 = slice(v, 0, 1, 2);
    return sum(x0 * x0 * x1 + x1 * x1 * x1);
  };
  Tensor g = grad({f(x)}, {x}, {.create_graph = true})[0];
  Tensor v = Tensor({1.0, 2.0}).to(float64);
  Tensor hv = grad({sum(g * v)}, {x})[0];
  const double x0 = 1.5, x1 = -0.5;
  CHECK(hv.array<double>()(0) == doctest::Approx(2 * x1 * 1 + 2 * x0 * 2));
  CHECK(hv.array<double>()(1) == doctest::Approx(2 * x0 * 1 + 6 * x1 * 2));
}

TEST_CASE("custom op: a user-defined differentiable op is gradient-checked") {
  // softplus(x) = log(1 + e^x), d/dx = sigmoid(x), written with the public record() API.
  auto softplus = [](const Tensor& x) {
    Tensor out;
    {
      NoGradGuard forward_only;
      out = log(exp(x) + 1.0);
    }
    return record(
        {.name = "softplus", .inputs = {x}, .saved = {x}}, out,
        [](const BackwardContext& ctx, const Tensor& g) -> TensorList { return {g * sigmoid(ctx.saved(0))}; });
  };
  Tensor x = Tensor({-1.0, 0.5, 2.0}).to(float64).requires_grad_();
  auto fn = [&](const TensorList& in) { return softplus(in[0]); };
  GradcheckResult r = gradcheck(fn, {x});
  INFO(r.message);
  CHECK(r);
  CHECK(gradgradcheck(fn, {x}));
}

TEST_CASE("gradcheck rejects a deliberately wrong gradient") {
  auto wrong = [](const TensorList& in) {
    const Tensor& x = in[0];
    Tensor out;
    {
      NoGradGuard forward_only;
      out = x * x;
    }
    return record({.name = "bad_square", .inputs = {x}, .saved = {x}}, out,
                  [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                    return {g * ctx.saved(0) * 3.0};  // should be 2x
                  });
  };
  Tensor x = Tensor({0.5, -1.0, 2.0}).to(float64).requires_grad_();
  GradcheckResult r = gradcheck(wrong, {x});
  CHECK_FALSE(r);
  CHECK(r.message.find("FAILED") != std::string::npos);
}

TEST_CASE("a custom op whose backward returns a gradient of the wrong shape is named") {
  auto op = [](const Tensor& x, Shape grad_shape) {
    Tensor out;
    {
      NoGradGuard forward_only;
      out = x * 2.0;
    }
    return record({.name = "my_double", .inputs = {x}}, out,
                  [grad_shape](const BackwardContext&, const Tensor&) -> TensorList { return {ones(grad_shape)}; });
  };
  Tensor x = Tensor({1.0, 2.0, 3.0}).requires_grad_();
  CHECK_THROWS_WITH_AS(sum(op(x, {7})).backward(),
                       "backward of 'my_double': gradient of shape [7] does not fit its input of shape [3]", Error);
  CHECK_THROWS_WITH_AS(sum(op(x, {3, 1})).backward(), doctest::Contains("backward of 'my_double'"), Error);
  sum(op(x, {2, 3})).backward();  // a broadcast gradient is summed back, as for the built-in ops
  CHECK(x.grad().array<float>() == xt::xarray<float>{2, 2, 2});
}

TEST_CASE("gradcheck runs the function with grad mode on, so that it may take gradients itself") {
  // A gradient penalty: f(x) = sum((d sum(x^3)/dx)^2) = sum(9 x^4), whose gradient is 36 x^3.
  auto penalty = [](const TensorList& in) {
    const Tensor inner = sum(pow(in[0], 3.0));
    const Tensor g = grad({inner}, {in[0]}, {.create_graph = true})[0];
    return sum(mul(g, g));
  };
  Tensor x = Tensor({0.5, -1.0, 2.0}).to(float64).requires_grad_();
  GradcheckResult r = gradcheck(penalty, {x});
  INFO(r.message);
  CHECK(r);
  NoGradGuard callers_mode;  // the caller's grad mode does not matter
  CHECK(gradcheck(penalty, {x}));
  CHECK_FALSE(is_grad_enabled());
}

TEST_CASE("a post-accumulate hook runs once per backward, after every contribution to the leaf") {
  Tensor w = Tensor({1.0, 2.0}).requires_grad_();
  Tensor v = Tensor({3.0, 4.0}).requires_grad_();
  std::vector<std::vector<double>> seen;
  const std::size_t handle = w.register_post_accumulate_grad_hook([&](const Tensor& t) {
    seen.push_back({t.grad().data<float>()[0], t.grad().data<float>()[1]});
  });
  // w reaches the loss along three paths (two products and a square); the hook sees the sum.
  const Tensor loss = sum(add(add(mul(w, v), mul(w, w)), mul(w, v)));
  loss.backward();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == std::vector<double>{2 * 3.0 + 2 * 1.0, 2 * 4.0 + 2 * 2.0});
  // A second backward accumulates: the hook sees the running total, once more.
  sum(mul(w, v)).backward();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1] == std::vector<double>{8 + 3, 12 + 4});
  // tg::grad does not accumulate into .grad and so runs no hook.
  grad({sum(mul(w, v))}, {w});
  CHECK(seen.size() == 2);
  // A leaf that is itself the root.
  w.zero_grad();
  w.backward(Tensor({1.0, 1.0}));
  CHECK(seen.size() == 3);
  w.remove_post_accumulate_grad_hook(handle);
  sum(mul(w, v)).backward();
  CHECK(seen.size() == 3);
  CHECK_THROWS_WITH_AS(Tensor({1.0}).register_post_accumulate_grad_hook([](const Tensor&) {}),
                       doctest::Contains("only a leaf that requires grad"), Error);
}

TEST_CASE("a post-accumulate hook runs before the nodes that are still to come, not after backward") {
  // Two layers: the last layer's weight is final while the first layer's backward has not run.
  Tensor w1 = Tensor({0.5}).requires_grad_();
  Tensor w2 = Tensor({2.0}).requires_grad_();
  std::vector<std::string> order;
  w1.register_post_accumulate_grad_hook([&](const Tensor&) { order.push_back("w1"); });
  w2.register_post_accumulate_grad_hook([&](const Tensor&) { order.push_back("w2"); });
  autograd::queue_backward_callback([&] { order.push_back("end"); });
  const Tensor x = Tensor({3.0});
  sum(mul(relu(mul(x, w1)), w2)).backward();
  CHECK(order == std::vector<std::string>{"w2", "w1", "end"});
  // Callbacks run once: the next backward runs none.
  sum(mul(x, w1)).backward();
  CHECK(order == std::vector<std::string>{"w2", "w1", "end", "w1"});
}

TEST_CASE("leaves' gradients never share storage: an in-place change of one leaves the others alone") {
  // add's backward hands the same gradient to both inputs, and a view op's backward a view of
  // its incoming one: each leaf must still own its gradient, as clip_grad_norm_ and optimizers
  // change gradients in place.
  Tensor x = Tensor(xt::xarray<double>{1.0, 2.0}).requires_grad_();
  Tensor y = Tensor(xt::xarray<double>{3.0, 4.0}).requires_grad_();
  Tensor w = Tensor(xt::xarray<double>{{5.0, 6.0}}).requires_grad_();
  sum(x + y + reshape(w, {2})).backward();
  CHECK_FALSE(x.grad().shares_storage(y.grad()));
  CHECK_FALSE(x.grad().shares_storage(w.grad()));
  CHECK_FALSE(y.grad().shares_storage(w.grad()));
  optim::clip_grad_value_({x, y, w}, 0.5);
  x.grad().mul_(2.0);
  CHECK(y.grad().array<double>() == xt::xarray<double>{0.5, 0.5});
  CHECK(w.grad().array<double>() == xt::xarray<double>{{0.5, 0.5}});
  // A second backward accumulates into each leaf's own gradient.
  sum(x + y).backward();
  CHECK(x.grad().array<double>() == xt::xarray<double>{2.0, 2.0});
  CHECK(y.grad().array<double>() == xt::xarray<double>{1.5, 1.5});
}
