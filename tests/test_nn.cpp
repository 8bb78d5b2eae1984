// Modules: registration and dotted names, train/eval, to(), repr and tree, Sequential, custom
// modules, initializers, bad-input errors, and the generic gradient check of every layer.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [n, t] : named) out.push_back(n);
  return out;
}

Tensor input(const Shape& shape, std::uint64_t seed = 7) {
  Generator gen(seed);
  return randn(shape, gen, float64);
}

// A user-defined model with nested children.
class Block : public nn::Module {
 public:
  Block() {
    conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(1, 2, 3, nn::Conv2dOptions{.padding = "same"}));
    scale_ = register_parameter("scale", ones({1}));
    register_buffer("calls", zeros({}, int64));
  }
  Tensor forward(const Tensor& x) override { return relu((*conv1_)(x)) * scale_; }

 private:
  std::shared_ptr<nn::Conv2d> conv1_;
  Tensor scale_;
};

class Net : public nn::Module {
 public:
  Net() {
    features_ = register_module("features", std::make_shared<Block>());
    head_ = register_module("head",
                            std::make_shared<nn::Sequential>(nn::Sequential{nn::Flatten(), nn::Linear(2 * 4 * 4, 3)}));
  }
  Tensor forward(const Tensor& x) override { return (*head_)((*features_)(x)); }

 private:
  std::shared_ptr<Block> features_;
  std::shared_ptr<nn::Sequential> head_;
};

}  // namespace

TEST_CASE("Sequential names its layers' parameters by index, in order") {
  nn::Sequential model{nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 2, {.bias = false})};
  CHECK(names_of(model.named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "2.weight"});
  CHECK(model.size() == 3);
  CHECK(model.parameters().size() == 3);
  CHECK(model.num_parameters() == 4 * 8 + 8 + 8 * 2);
  CHECK(model.at<nn::Linear>(0)->out_features() == 8);
  CHECK(model[1]->name() == "ReLU");
  CHECK_THROWS_WITH_AS(model.at<nn::Linear>(1), doctest::Contains("layer 1 is a ReLU"), Error);
  CHECK_THROWS_WITH_AS(model[3], doctest::Contains("index 3 out of range for 3 layers"), Error);
  std::size_t count = 0;
  for (const auto& layer : model) count += layer != nullptr;
  CHECK(count == 3);
  auto shared = std::make_shared<nn::Linear>(2, 1);
  model.add(nn::Sigmoid()).add(shared);
  CHECK(model.size() == 5);
  CHECK(model[4] == shared);  // a shared_ptr is shared, not copied
  CHECK(names_of(model.named_parameters()).back() == "4.bias");
  const Tensor y = model(input({5, 4}).to(float32));
  CHECK(y.shape() == Shape{5, 1});
}

TEST_CASE("a custom module with nested children gets dotted names, buffers and a tree") {
  Net net;
  // A module's own parameters come before its children's (as in PyTorch), each in registration order.
  CHECK(names_of(net.named_parameters()) == std::vector<std::string>{"features.scale", "features.conv1.weight",
                                                                     "features.conv1.bias", "head.1.weight",
                                                                     "head.1.bias"});
  CHECK(names_of(net.named_buffers()) == std::vector<std::string>{"features.calls"});
  CHECK(names_of(net.named_parameters(false)).empty());
  CHECK(net.children().size() == 2);
  CHECK(net.name() == "Net");
  CHECK(net(input({2, 1, 4, 4}).to(float32)).shape() == Shape{2, 3});
  const std::string tree = net.to_string();
  CHECK(tree ==
        "Net(\n"
        "  (features): Block(\n"
        "    (conv1): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=same)\n"
        "  )\n"
        "  (head): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=32, out_features=3, bias=true)\n"
        "  )\n"
        ")");
  std::ostringstream os;
  os << net;
  CHECK(os.str() == tree);
}

TEST_CASE("repr is one line with the layer's arguments") {
  CHECK(nn::Linear(5408, 10).repr() == "Linear(in_features=5408, out_features=10, bias=true)");
  CHECK(nn::Linear(3, 2, {.bias = false, .activation = nn::Activation::relu}).repr() ==
        "Linear(in_features=3, out_features=2, bias=false, activation=relu)");
  CHECK(nn::Conv2d(1, 32, 3).repr() == "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))");
  CHECK(nn::Conv2d(4, 8, {3, 5}, {.stride = 2, .padding = {1, 2}, .groups = 2, .bias = false}).repr() ==
        "Conv2d(4, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), groups=2, bias=false)");
  CHECK(nn::MaxPool2d(2).repr() == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");
  CHECK(nn::LeakyReLU(0.2).repr() == "LeakyReLU(negative_slope=0.2)");
  CHECK(nn::ReLU().repr() == "ReLU()");
  CHECK(nn::Sequential{nn::ReLU()}.repr() == "Sequential()");
}

TEST_CASE("train and eval reach every descendant") {
  Net net;
  CHECK(net.is_training());
  net.eval();
  std::function<void(const nn::Module&)> all_eval = [&](const nn::Module& m) {
    CHECK_FALSE(m.is_training());
    for (const auto& c : m.children()) all_eval(*c);
  };
  all_eval(net);
  net.train();
  CHECK(net.children()[1]->children()[1]->is_training());
}

TEST_CASE("to(float64) converts parameters, gradients and float buffers in place, keeping the handles") {
  nn::Linear layer(3, 2);
  const Tensor w = layer.weight();
  const xt::xarray<double> before = xt::cast<double>(w.array<float>());
  sum(layer(ones({1, 3}))).backward();
  layer.to(float64);
  CHECK(w.dtype() == float64);  // the handle taken before sees the change
  CHECK(w.is_same(layer.weight()));
  CHECK(w.array<double>() == before);
  CHECK(w.grad().dtype() == float64);
  CHECK(w.requires_grad());
  CHECK(layer(ones({1, 3}, float64)).dtype() == float64);

  Net net;
  net.to(float64);
  for (const auto& [name, b] : net.named_buffers()) CHECK(b.dtype() == int64);  // counters stay integers
  CHECK_THROWS_WITH_AS(net.to(int64), doctest::Contains("float32 or float64"), Error);
}

TEST_CASE("zero_grad drops every parameter's gradient") {
  nn::Sequential model{nn::Linear(3, 4), nn::Tanh(), nn::Linear(4, 1)};
  sum(model(ones({2, 3}))).backward();
  for (const Tensor& p : model.parameters()) CHECK(p.grad().defined());
  model.zero_grad();
  for (const Tensor& p : model.parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("registration refuses duplicate and dotted names") {
  struct Bad : nn::Module {
    explicit Bad(int mode) {
      register_parameter("w", zeros({1}));
      if (mode == 0) register_buffer("w", zeros({1}));
      if (mode == 1) register_parameter("a.b", zeros({1}));
    }
    Tensor forward(const Tensor& x) override { return x; }
  };
  CHECK_THROWS_WITH_AS(Bad(0), doctest::Contains("\"w\" is already registered"), Error);
  CHECK_THROWS_WITH_AS(Bad(1), doctest::Contains("contain no '.'"), Error);
}

TEST_CASE("tied parameters are listed once") {
  struct Tied : nn::Module {
    Tied() {
      a_ = register_module("a", std::make_shared<nn::Linear>(2, 2));
      register_module("b", a_);
    }
    Tensor forward(const Tensor& x) override { return (*a_)(x); }
    std::shared_ptr<nn::Linear> a_;
  };
  Tied t;
  CHECK(names_of(t.named_parameters()) == std::vector<std::string>{"a.weight", "a.bias"});
}

TEST_CASE("layers take leading axes and unbatched inputs where PyTorch's do") {
  Generator gen(5);
  nn::Linear fc(4, 3);
  fc.to(float64);
  const Tensor x = randn({2, 5, 4}, gen, float64);
  const Tensor y = fc(x);  // [N, T, D] → [N, T, out], as torch.nn.Linear and Keras's Dense
  CHECK(y.shape() == Shape{2, 5, 3});
  CHECK(xt::allclose(y.array<double>(), reshape(fc(reshape(x, {10, 4})), {2, 5, 3}).array<double>()));
  CHECK(fc(randn({4}, gen, float64)).shape() == Shape{3});
  const GradcheckResult check =
      gradcheck([&](const TensorList& in) { return fc(in[0]); }, {x.detach().requires_grad_()});
  INFO(check.message);
  CHECK(check);

  nn::Conv2d conv(2, 3, 3);
  nn::MaxPool2d pool(2);
  nn::AvgPool2d avg(2);
  const Tensor image = randn({2, 8, 8}, gen);  // one unbatched [C, H, W] image
  CHECK(xt::allclose(conv(image).array<float>(), squeeze(conv(unsqueeze(image, 0)), 0).array<float>()));
  CHECK(xt::allclose(pool(image).array<float>(), squeeze(pool(unsqueeze(image, 0)), 0).array<float>()));
  CHECK(avg(image).shape() == Shape{2, 4, 4});
  nn::Sequential net{nn::Conv2d(2, 4, 3, {.activation = nn::Activation::relu}), nn::MaxPool2d(2), nn::Flatten(0)};
  CHECK(net(image).shape() == Shape{36});  // the fused conv+pool path is for batches only
}

TEST_CASE("a layer given the wrong shape names itself and what it expected") {
  nn::Linear fc(5408, 10);
  CHECK_THROWS_WITH_AS(fc(zeros({32, 5000})), "Linear(5408 -> 10): expected input [..., 5408], got [32, 5000]", Error);
  nn::Conv2d conv(1, 32, 3);
  CHECK_THROWS_WITH_AS(
      conv(zeros({2, 3, 8, 8})),
      "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1)): expected input [N, 1, H, W] or [1, H, W], got [2, 3, 8, 8]",
      Error);
  CHECK_THROWS_WITH_AS(conv(zeros({3, 8, 8})), doctest::Contains("got [1, 3, 8, 8]"), Error);
  CHECK_THROWS_WITH_AS(nn::MaxPool2d(2)(zeros({8, 8})),
                       doctest::Contains("expected input [N, C, H, W] or [C, H, W], got [8, 8]"), Error);
  CHECK_THROWS_WITH_AS(nn::Flatten(1)(zeros({3})), doctest::Contains("Flatten(start_dim=1, end_dim=-1)"), Error);
  nn::Sequential model{nn::Flatten(), nn::Linear(784, 10)};
  CHECK_THROWS_WITH_AS(model(zeros({4, 1, 27, 27})),
                       "Sequential layer 1: Linear(784 -> 10): expected input [..., 784], got [4, 729]", Error);
  CHECK_THROWS_WITH_AS(nn::Linear(0, 3), doctest::Contains("must be positive"), Error);
  CHECK_THROWS_WITH_AS(nn::Conv2d(3, 4, 3, {.groups = 2}), doctest::Contains("groups (2) must be positive and divide"),
                       Error);
}

TEST_CASE("initializers: Keras defaults, fans, gains, bounds and seeds") {
  CHECK(nn::init::calculate_fans({10, 4, 3, 3}) == std::pair<double, double>{36.0, 90.0});
  CHECK(nn::init::calculate_fans({7, 5}) == std::pair<double, double>{5.0, 7.0});
  CHECK(nn::init::calculate_gain("relu") == doctest::Approx(std::sqrt(2.0)));
  CHECK(nn::init::calculate_gain("leaky_relu", 0.2) == doctest::Approx(std::sqrt(2.0 / 1.04)));
  CHECK(nn::init::calculate_gain("tanh") == doctest::Approx(5.0 / 3.0));
  CHECK_THROWS_WITH_AS(nn::init::calculate_gain("swish"), doctest::Contains("unknown nonlinearity \"swish\""), Error);

  // Linear: glorot_uniform weights within sqrt(6 / (in + out)), zero bias, reproducible from a seed.
  Generator g1(42), g2(42);
  nn::Linear a(300, 200, {.generator = &g1}), b(300, 200, {.generator = &g2});
  CHECK(a.weight().array<float>() == b.weight().array<float>());
  const double limit = std::sqrt(6.0 / 500.0);
  const auto& w = a.weight().array<float>();
  CHECK(xt::amax(xt::abs(w))() <= limit);
  CHECK(xt::amax(xt::abs(w))() > 0.99 * limit);
  CHECK(std::abs(xt::mean(w)()) < 0.01 * limit);
  CHECK(xt::variance(w)() == doctest::Approx(limit * limit / 3).epsilon(0.02));
  CHECK(xt::all(xt::equal(a.bias().array<float>(), 0.0f)));

  Generator gen(1);
  Tensor t = zeros({400, 250}, float64);
  nn::init::kaiming_normal_(t, 0.0, nn::init::FanMode::fan_in, "relu", gen);
  CHECK(std::sqrt(xt::variance(t.array<double>())()) == doctest::Approx(std::sqrt(2.0 / 250)).epsilon(0.02));
  nn::init::kaiming_uniform_(t, 0.0, nn::init::FanMode::fan_out, "relu", gen);
  CHECK(xt::amax(xt::abs(t.array<double>()))() <= std::sqrt(6.0 / 400));
  nn::init::xavier_normal_(t, 1.0, gen);
  CHECK(std::sqrt(xt::variance(t.array<double>())()) == doctest::Approx(std::sqrt(2.0 / 650)).epsilon(0.02));
  nn::init::he_uniform_(t, gen);
  CHECK(xt::amax(xt::abs(t.array<double>()))() <= std::sqrt(6.0 / 250));
  nn::init::normal_(t, 3.0, 0.5, gen);
  CHECK(xt::mean(t.array<double>())() == doctest::Approx(3.0).epsilon(0.01));
  nn::init::uniform_(t, -2.0, -1.0, gen);
  CHECK(xt::amax(t.array<double>())() < -1.0);
  CHECK(xt::amin(t.array<double>())() >= -2.0);
  nn::init::constant_(t, 0.25);
  CHECK(xt::all(xt::equal(t.array<double>(), 0.25)));
  nn::init::zeros_(t);
  CHECK(xt::all(xt::equal(t.array<double>(), 0.0)));
  Tensor labels = zeros({3}, int64);
  CHECK_THROWS_WITH_AS(nn::init::ones_(labels), doctest::Contains("expected a float32 or float64 tensor"), Error);

  // A parameter can be re-initialized in place (the module keeps the same handle).
  nn::Linear c(4, 4);
  nn::init::he_normal_(c.weight());
  CHECK(c.parameters()[0].is_same(c.weight()));
}

TEST_CASE("check_module passes every parameterless layer") {
  const Tensor x = input({2, 3, 5, 4});
  for (auto layer : std::vector<nn::AnyModule>{
           nn::ReLU(), nn::LeakyReLU(0.1), nn::Sigmoid(), nn::Tanh(), nn::Identity(), nn::Flatten(), nn::Flatten(0, 2),
           nn::MaxPool2d(2), nn::MaxPool2d(3, 1, 1), nn::AvgPool2d(2),
           nn::AvgPool2d({3, 2}, Size2{1, 2}, Size2{1, 0}, false), nn::GlobalAvgPool2d()}) {
    INFO(layer.ptr()->repr());
    const auto r = nn::check_module(*layer.ptr(), x);
    INFO(r.message);
    CHECK(r);
  }
}

TEST_CASE("check_module passes Linear and Conv2d w.r.t. input and parameters") {
  nn::Linear fc(4, 3);
  auto r = nn::check_module(fc, input({5, 4}));
  INFO(r.message);
  CHECK(r);
  CHECK(fc.weight().dtype() == float64);

  nn::Linear fused(4, 3, {.bias = false, .activation = nn::Activation::tanh});
  r = nn::check_module(fused, input({2, 4}));
  INFO(r.message);
  CHECK(r);

  nn::Linear sig(3, 2, {.activation = nn::Activation::sigmoid});
  r = nn::check_module(sig, input({2, 3}));
  INFO(r.message);
  CHECK(r);

  for (auto conv : {nn::Conv2d(2, 3, 3), nn::Conv2d(2, 4, {3, 2}, {.stride = {2, 1}, .padding = "same", .groups = 2}),
                    nn::Conv2d(2, 2, 2, {.padding = "valid", .dilation = 2, .bias = false})}) {
    INFO(conv.repr());
    r = nn::check_module(conv, input({2, 2, 6, 5}));
    INFO(r.message);
    CHECK(r);
  }
}

TEST_CASE("check_module passes a whole custom model and a Sequential") {
  Net net;
  auto r = nn::check_module(net, input({2, 1, 4, 4}, 3));
  INFO(r.message);
  CHECK(r);
  nn::Sequential mlp{nn::Linear(3, 5, {.activation = nn::Activation::relu}), nn::LeakyReLU(), nn::Linear(5, 2)};
  r = nn::check_module(mlp, input({4, 3}));
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("check_module catches a module with a wrong gradient") {
  // forward uses a detached parameter, so its gradient is missing (zero) while the output depends on it.
  struct Broken : nn::Module {
    Broken() { w_ = register_parameter("w", ones({3})); }
    Tensor forward(const Tensor& x) override { return x * w_ + x * w_.detach(); }
    Tensor w_;
  };
  Broken b;
  const auto r = nn::check_module(b, input({3}));
  CHECK_FALSE(r);
  CHECK(r.message.find("Broken()") != std::string::npos);
}

TEST_CASE("Dropout: fixed-seed masks pass the module check in train mode; eval mode is the identity") {
  Generator gen(5);
  nn::Dropout drop(0.4, &gen);
  CHECK(drop.repr() == "Dropout(p=0.4)");
  const Tensor x = input({4, 6});
  auto r = nn::check_module(drop, x, {.generator = &gen, .seed = 11});
  INFO(r.message);
  CHECK(r);
  const Tensor y = drop(x);
  const auto& ya = y.array<double>();
  CHECK(xt::any(xt::equal(ya, 0.0)));  // some dropped
  drop.eval();
  CHECK(drop(x).array<double>() == x.array<double>());
  r = nn::check_module(drop, x);
  INFO(r.message);
  CHECK(r);
  CHECK_THROWS_WITH_AS(nn::Dropout(1.0), doctest::Contains("p must be in [0, 1)"), Error);

  // A model with dropout between layers, checked in both modes.
  Generator g2(9);
  nn::Sequential model{nn::Linear(3, 6, {.activation = nn::Activation::tanh, .generator = &g2}), nn::Dropout(0.5, &g2),
                       nn::Linear(6, 2, {.generator = &g2})};
  r = nn::check_module(model, input({5, 3}), {.generator = &g2, .seed = 3});
  INFO(r.message);
  CHECK(r);
  model.eval();
  r = nn::check_module(model, input({5, 3}));
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("Softmax and LogSoftmax layers, and the fused softmax activation") {
  const Tensor x = input({3, 4});
  CHECK(nn::Softmax().repr() == "Softmax(dim=-1)");
  const Tensor s = nn::Softmax()(x);
  const xt::xarray<double> row_sums = xt::sum(s.array<double>(), {1});
  CHECK(xt::allclose(row_sums, xt::ones<double>({3})));
  CHECK(xt::allclose(nn::LogSoftmax(1)(x).array<double>(), xt::log(s.array<double>())));
  for (auto layer : std::vector<nn::AnyModule>{nn::Softmax(), nn::Softmax(0), nn::LogSoftmax(), nn::LogSoftmax(0)}) {
    INFO(layer.ptr()->repr());
    const auto r = nn::check_module(*layer.ptr(), x);
    INFO(r.message);
    CHECK(r);
  }
  nn::Linear fc(4, 3, {.activation = nn::Activation::softmax});
  const auto r = nn::check_module(fc, x);
  INFO(r.message);
  CHECK(r);
  CHECK_THROWS_WITH_AS(nn::Softmax(2)(x),
                       doctest::Contains("Softmax(dim=2): expected an input with axis 2, got shape [3, 4]"), Error);
}

TEST_CASE("BatchNorm: buffers, running statistics, train and eval checks") {
  nn::BatchNorm2d bn(3);
  CHECK(bn.repr() == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)");
  CHECK(names_of(bn.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(names_of(bn.named_buffers()) == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
  bn.to(float64);
  const Tensor x = input({4, 3, 2, 2}) * 2.0 + 1.0;
  const Tensor y = bn(x);
  CHECK(bn.num_batches_tracked().item() == 1);
  // running_mean = 0.9·0 + 0.1·batch mean of each channel
  const xt::xarray<double> batch_mean = xt::mean(x.array<double>(), {0, 2, 3});
  CHECK(xt::allclose(bn.running_mean().array<double>(), 0.1 * batch_mean));
  // In train mode each channel of y has mean 0.
  CHECK(xt::allclose(xt::mean(y.array<double>(), {0, 2, 3}), xt::zeros<double>({3}), 1e-9, 1e-9));

  auto r = nn::check_module(bn, x);
  INFO(r.message);
  CHECK(r);
  CHECK(bn.num_batches_tracked().item() == 1);  // check_module restores buffers
  bn.eval();
  r = nn::check_module(bn, x);
  INFO(r.message);
  CHECK(r);
  const xt::xarray<double> running = bn.running_mean().array<double>();
  bn(x);
  CHECK(bn.running_mean().array<double>() == running);  // eval leaves the statistics alone

  nn::BatchNorm1d bn1(4, {.affine = false});
  CHECK(bn1.parameters().empty());
  r = nn::check_module(bn1, input({5, 4}), {});
  INFO(r.message);
  CHECK(r);
  r = nn::check_module(bn1, input({5, 4, 3}), {});
  INFO(r.message);
  CHECK(r);
  nn::BatchNorm1d no_stats(4, {.track_running_stats = false});
  no_stats.eval();
  CHECK(no_stats.buffers().empty());
  r = nn::check_module(no_stats, input({5, 4}));
  INFO(r.message);
  CHECK(r);

  CHECK_THROWS_WITH_AS(bn(zeros({4, 2, 2, 2}, float64)),
                       doctest::Contains("expected input [N, 3, H, W], got [4, 2, 2, 2]"), Error);
  CHECK_THROWS_WITH_AS(bn1(zeros({4, 4, 2, 2}, float64)), doctest::Contains("expected input [N, 4] or [N, 4, L]"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::BatchNorm2d(3, {.momentum = 2}), doctest::Contains("momentum must be in [0, 1]"), Error);
}

TEST_CASE("loss objects compute the ops' losses and their gradients") {
  const Tensor logits = input({4, 3});
  const Tensor labels = Tensor(xt::xarray<std::int64_t>{0, 2, 1, 2});
  nn::CrossEntropyLoss ce;
  CHECK(ce.repr() == "CrossEntropyLoss(reduction=mean)");
  CHECK(ce(logits, labels).item() == doctest::Approx(cross_entropy(logits, labels).item()));
  nn::NLLLoss nll;
  CHECK(nll(log_softmax(logits, 1), labels).item() == doctest::Approx(ce(logits, labels).item()));
  CHECK(nn::CrossEntropyLoss({.reduction = Reduction::none})(logits, labels).shape() == Shape{4});
  CHECK(nn::CrossEntropyLoss({.label_smoothing = 0.1}).repr() ==
        "CrossEntropyLoss(reduction=mean, label_smoothing=0.1)");
  nn::MSELoss mse({.reduction = Reduction::sum});
  const Tensor target = input({4, 3}, 99);
  CHECK(mse(logits, target).item() ==
        doctest::Approx(xt::sum(xt::square(logits.array<double>() - target.array<double>()))()));
  nn::BCEWithLogitsLoss bce;
  const Tensor probs = sigmoid(target);
  const xt::xarray<double> sig = 1.0 / (1.0 + xt::exp(-logits.array<double>()));
  const double want =
      xt::mean(-(probs.array<double>() * xt::log(sig) + (1.0 - probs.array<double>()) * xt::log(1.0 - sig)))();
  CHECK(bce(logits, probs).item() == doctest::Approx(want));

  std::vector<std::pair<std::string, std::function<Tensor(const TensorList&)>>> fns = {
      {"ce", [&](const TensorList& in) { return ce(in[0], labels); }},
      {"mse", [&](const TensorList& in) { return mse(in[0], target); }},
      {"bce", [&](const TensorList& in) { return bce(in[0], probs); }}};
  for (const auto& [name, fn] : fns) {
    INFO(name);
    const auto r = gradcheck(fn, {logits.detach().clone().requires_grad_()});
    INFO(r.message);
    CHECK(r);
  }
  CHECK_THROWS_WITH_AS(nn::CrossEntropyLoss({.label_smoothing = 1.5}),
                       doctest::Contains("label_smoothing must be in [0, 1]"), Error);
}

TEST_CASE("the tutorial's model builds from a braced list and runs") {
  nn::Sequential model{nn::Conv2d(1, 32, 3, {.activation = nn::Activation::relu}),
                       nn::MaxPool2d(2),
                       nn::Flatten(),
                       nn::Dropout(0.5),
                       nn::Linear(5408, 10),
                       nn::Softmax()};
  CHECK(model.num_parameters() == 32 * 9 + 32 + 5408 * 10 + 10);
  model.eval();
  const Tensor y = model(zeros({2, 1, 28, 28}));
  CHECK(y.shape() == Shape{2, 10});
  CHECK(y.array<float>()(0, 0) == doctest::Approx(0.1));  // zero input, zero biases: uniform
  CHECK(model.to_string() ==
        "Sequential(\n"
        "  (0): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), activation=relu)\n"
        "  (1): MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))\n"
        "  (2): Flatten(start_dim=1, end_dim=-1)\n"
        "  (3): Dropout(p=0.5)\n"
        "  (4): Linear(in_features=5408, out_features=10, bias=true)\n"
        "  (5): Softmax(dim=-1)\n"
        ")");
}
