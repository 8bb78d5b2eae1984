// Recurrent layers: shapes, PyTorch's parameter names and initialization, float64 gradient
// checks through input, initial state and every parameter, stacking, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <xtensor/xview.hpp>

#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/module_check.hpp"
#include "tapegrad/nn/rnn.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

// Runs fn with the module's parameters holding `given` values where gradcheck's numeric pass
// substituted a shifted copy, and restores them afterwards. In the analytic pass the given
// tensors are the parameters themselves, so the graph reaches them.
Tensor with_parameters(nn::Module& m, const TensorList& given, std::size_t first, const std::function<Tensor()>& fn) {
  TensorList params = m.parameters();
  std::vector<std::pair<std::size_t, Tensor>> saved;
  {
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (given[first + i].is_same(params[i])) continue;
      saved.emplace_back(i, params[i].clone());
      params[i].copy_(given[first + i]);
    }
  }
  Tensor out = fn();
  NoGradGuard no_grad;
  for (auto& [i, value] : saved) params[i].copy_(value);
  return out;
}

// Everything a recurrent layer returns, flattened into one vector for gradcheck.
Tensor everything(const nn::RNNOutput& r) {
  TensorList parts{flatten(r.output), flatten(r.h)};
  if (r.c.defined()) parts.push_back(flatten(r.c));
  return concat(parts, 0);
}

// Gradient check of a recurrent layer (converted to float64) with respect to the input, the
// initial state (when `with_state`) and all parameters.
GradcheckResult check_layer(nn::RecurrentBase& m, bool lstm, bool with_state, std::size_t batch = 2,
                            std::size_t steps = 3) {
  m.to(float64);
  Generator gen(7);
  const std::size_t layers = m.num_layers(), hidden = m.hidden_size();
  TensorList inputs{randn({batch, steps, m.input_size()}, gen, float64).requires_grad_()};
  if (with_state) {
    inputs.push_back(mul(randn({layers, batch, hidden}, gen, float64), 0.5).requires_grad_());
    if (lstm) inputs.push_back(mul(randn({layers, batch, hidden}, gen, float64), 0.5).requires_grad_());
  }
  const std::size_t first = inputs.size();
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  return gradcheck(
      [&](const TensorList& in) {
        return with_parameters(m, in, first, [&] {
          nn::RNNState state;
          if (with_state) state = {.h = in[1], .c = lstm ? in[2] : Tensor()};
          return everything(m.forward_with_state(in[0], state));
        });
      },
      inputs);
}

}  // namespace

TEST_CASE("LSTM has PyTorch's parameter names, shapes and initialization bounds") {
  manual_seed(0);
  nn::LSTM lstm(5, 8, {.num_layers = 2});
  const nn::NamedTensors params = lstm.named_parameters();
  REQUIRE(params.size() == 8);
  const std::vector<std::pair<std::string, Shape>> expected{
      {"weight_ih_l0", {32, 5}}, {"weight_hh_l0", {32, 8}}, {"bias_ih_l0", {32}}, {"bias_hh_l0", {32}},
      {"weight_ih_l1", {32, 8}}, {"weight_hh_l1", {32, 8}}, {"bias_ih_l1", {32}}, {"bias_hh_l1", {32}}};
  const double bound = 1.0 / std::sqrt(8.0);
  for (std::size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].first == expected[i].first);
    CHECK(params[i].second.shape() == expected[i].second);
    CHECK(params[i].second.requires_grad());
    const auto& a = params[i].second.array<float>();
    CHECK(xt::amax(a)() <= bound);
    CHECK(xt::amin(a)() >= -bound);
    CHECK(xt::amax(a)() > 0.5 * bound);  // really drawn, not left at zero
  }
  CHECK(nn::GRU(3, 4).parameters()[0].shape() == Shape{12, 3});
  CHECK(nn::RNN(3, 4, {.bias = false}).parameters().size() == 2);
  CHECK(lstm.repr() == "LSTM(5, 8, num_layers=2, batch_first=true)");
  CHECK(nn::RNN(3, 4, {.nonlinearity = nn::RNNNonlinearity::relu}).repr() ==
        "RNN(3, 4, nonlinearity=relu, batch_first=true)");
}

TEST_CASE("Keras initialization: glorot kernel, orthogonal recurrent kernel, unit forget bias") {
  manual_seed(0);
  nn::LSTM lstm(5, 8, {.init = nn::RecurrentInit::keras});
  const Tensor w = lstm.weight_hh(0).to(float64);  // [32, 8]
  CHECK(xt::allclose(matmul(transpose(w), w).array<double>(), xt::eye<double>(8), 1e-5, 1e-5));
  const double glorot = std::sqrt(6.0 / (5 + 32));
  CHECK(xt::amax(xt::abs(lstm.weight_ih(0).array<float>()))() <= glorot);
  const xt::xarray<float> b = lstm.bias_ih(0).array<float>();
  for (std::size_t i = 0; i < 32; ++i) CHECK(b(i) == (i >= 8 && i < 16 ? 1.0f : 0.0f));
  CHECK(xt::amax(xt::abs(lstm.bias_hh(0).array<float>()))() == 0.0f);
  nn::GRU gru(3, 4, {.init = nn::RecurrentInit::keras});
  CHECK(xt::amax(xt::abs(gru.bias_ih(0).array<float>()))() == 0.0f);
}

TEST_CASE("recurrent layers return the sequence or the last output, and the last states") {
  manual_seed(1);
  Generator gen(3);
  const Tensor x = randn({4, 6, 5}, gen);
  nn::LSTM lstm(5, 7, {.num_layers = 2});
  const nn::RNNOutput r = lstm.forward_with_state(x);
  CHECK(r.output.shape() == Shape{4, 6, 7});
  CHECK(r.h.shape() == Shape{2, 4, 7});
  CHECK(r.c.shape() == Shape{2, 4, 7});
  // The last layer's last state is the last output.
  const Tensor last = lstm.forward(x);
  CHECK(last.shape() == Shape{4, 7});
  CHECK(
      xt::allclose(last.array<float>(), xt::xarray<float>(xt::view(r.output.array<float>(), xt::all(), 5, xt::all()))));
  CHECK(xt::allclose(last.array<float>(), xt::xarray<float>(xt::view(r.h.array<float>(), 1, xt::all(), xt::all()))));

  nn::GRU gru(5, 3, {.return_sequences = true});
  CHECK(gru.forward(x).shape() == Shape{4, 6, 3});
  CHECK_FALSE(gru.forward_with_state(x).c.defined());
  // A zero initial state is the default.
  const Tensor h0 = zeros({1, 4, 3});
  CHECK(xt::allclose(gru.forward_with_state(x, {.h = h0}).output.array<float>(), gru.forward(x).array<float>()));
}

TEST_CASE("one RNN step matches its formula") {
  manual_seed(2);
  nn::RNN rnn(2, 3);
  rnn.to(float64);
  const Tensor x = Tensor(xt::xarray<double>{{{0.5, -1.0}}});
  const Tensor h0 = Tensor(xt::xarray<double>{{{0.1, 0.2, -0.3}}});
  const nn::RNNOutput r = rnn.forward_with_state(x, {.h = h0});
  const xt::xarray<double> w_ih = rnn.weight_ih(0).array<double>(), w_hh = rnn.weight_hh(0).array<double>();
  const xt::xarray<double> b = rnn.bias_ih(0).array<double>() + rnn.bias_hh(0).array<double>();
  for (std::size_t j = 0; j < 3; ++j) {
    double a = b(j);
    for (std::size_t k = 0; k < 2; ++k) a += w_ih(j, k) * x.array<double>()(0, 0, k);
    for (std::size_t k = 0; k < 3; ++k) a += w_hh(j, k) * h0.array<double>()(0, 0, k);
    CHECK(r.output.array<double>()(0, 0, j) == doctest::Approx(std::tanh(a)).epsilon(1e-12));
  }
}

TEST_CASE("RNN (tanh and relu) gradients through input, initial state and parameters") {
  manual_seed(3);
  for (auto act : {nn::RNNNonlinearity::tanh, nn::RNNNonlinearity::relu}) {
    nn::RNN rnn(3, 4, {.num_layers = 2, .nonlinearity = act});
    const GradcheckResult r = check_layer(rnn, false, true);
    INFO(r.message);
    CHECK(r);
  }
}

TEST_CASE("LSTM gradients through input, initial state and parameters") {
  manual_seed(4);
  nn::LSTM lstm(3, 4, {.num_layers = 2});
  GradcheckResult r = check_layer(lstm, true, true);
  INFO(r.message);
  CHECK(r);
  nn::LSTM single(2, 3, {.bias = false});
  r = check_layer(single, true, false);
  INFO(r.message);
  CHECK(r);
}

TEST_CASE_TEMPLATE("the fused LSTM cell equals its formula in composed ops, values and gradients", T, float, double) {
  // Hidden 20: the gate blocks run SIMD bodies and scalar tails in both float types.
  constexpr Dtype d = std::is_same_v<T, float> ? float32 : float64;
  const std::size_t batch = 3, steps = 4, in_size = 5, hs = 20;
  manual_seed(8);
  nn::LSTM lstm(in_size, hs);
  lstm.to(d);
  Generator gen(13);
  const Tensor x = randn({batch, steps, in_size}, gen, d);
  for (bool with_state : {false, true}) {
    INFO("initial state given: ", with_state);
    const Tensor h0 = with_state ? randn({1, batch, hs}, gen, d) : Tensor();
    const Tensor c0 = with_state ? randn({1, batch, hs}, gen, d) : Tensor();
    // The cell in plain ops: gates i, f, g, o.
    const auto composed = [&] {
      const auto block = [&](const Tensor& t, std::size_t k) {
        return slice(t, 1, static_cast<std::int64_t>(k * hs), static_cast<std::int64_t>((k + 1) * hs));
      };
      const auto n = static_cast<std::int64_t>(batch), h_size = static_cast<std::int64_t>(hs);
      Tensor h = with_state ? reshape(h0, {n, h_size}) : zeros({batch, hs}, d);
      Tensor c = with_state ? reshape(c0, {n, h_size}) : zeros({batch, hs}, d);
      TensorList outs;
      for (std::size_t t = 0; t < steps; ++t) {
        const Tensor xt = reshape(slice(x, 1, static_cast<std::int64_t>(t), static_cast<std::int64_t>(t + 1)),
                                  {n, static_cast<std::int64_t>(in_size)});
        const Tensor gates =
            linear(xt, lstm.weight_ih(0), lstm.bias_ih(0)) + linear(h, lstm.weight_hh(0), lstm.bias_hh(0));
        c = sigmoid(block(gates, 1)) * c + sigmoid(block(gates, 0)) * tanh(block(gates, 2));
        h = sigmoid(block(gates, 3)) * tanh(c);
        outs.push_back(h);
      }
      return concat({flatten(stack(outs, 1)), flatten(c)}, 0);
    };
    const auto fused = [&] {
      const nn::RNNOutput r = lstm.forward_with_state(x, {.h = h0, .c = c0});
      return concat({flatten(r.output), flatten(r.c)}, 0);
    };
    const double tol = d == float32 ? 2e-5 : 1e-12;
    const Tensor weights = randn({batch * steps * hs + batch * hs}, gen, d);
    TensorList grads[2];
    Tensor values[2];
    for (int k = 0; k < 2; ++k) {
      lstm.zero_grad();
      values[k] = k == 0 ? composed() : fused();
      sum(values[k] * weights).backward();
      for (const Tensor& p : lstm.parameters()) grads[k].push_back(p.grad());
    }
    CHECK(xt::allclose(values[1].array<T>(), values[0].array<T>(), tol, tol));
    for (std::size_t i = 0; i < grads[0].size(); ++i) {
      INFO("parameter ", i);
      CHECK(xt::allclose(grads[1][i].array<T>(), grads[0][i].array<T>(), tol, tol));
    }
  }
}

TEST_CASE("LSTM gradients with SIMD-wide gates (float64)") {
  manual_seed(9);
  nn::LSTM lstm(2, 9);
  const GradcheckResult r = check_layer(lstm, true, true, 2, 2);
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("GRU gradients through input, initial state and parameters") {
  manual_seed(5);
  nn::GRU gru(3, 4, {.num_layers = 2});
  GradcheckResult r = check_layer(gru, false, true);
  INFO(r.message);
  CHECK(r);
  nn::GRU single(2, 3);
  r = check_layer(single, false, false, 1, 4);
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("recurrent layers pass the generic module check (last output and whole sequence)") {
  manual_seed(10);
  Generator gen(12);
  const Tensor x = randn({2, 3, 3}, gen, float64);
  for (bool sequences : {false, true}) {
    INFO("return_sequences ", sequences);
    std::vector<std::shared_ptr<nn::Module>> layers{
        std::make_shared<nn::RNN>(3, 2, nn::RNNOptions{.return_sequences = sequences}),
        std::make_shared<nn::LSTM>(3, 2, nn::LSTMOptions{.num_layers = 2, .return_sequences = sequences}),
        std::make_shared<nn::GRU>(3, 2, nn::GRUOptions{.return_sequences = sequences})};
    for (const auto& layer : layers) {
      const GradcheckResult r = nn::check_module(*layer, x);
      INFO(layer->repr(), ": ", r.message);
      CHECK(r);
    }
  }
}

TEST_CASE("LSTM second-order gradients (create_graph) through input and state") {
  manual_seed(6);
  nn::LSTM lstm(2, 3);
  lstm.to(float64);
  Generator gen(11);
  const Tensor x = randn({2, 2, 2}, gen, float64).requires_grad_();
  const Tensor h0 = randn({1, 2, 3}, gen, float64).requires_grad_();
  const Tensor c0 = randn({1, 2, 3}, gen, float64).requires_grad_();
  const GradcheckResult r = gradgradcheck(
      [&](const TensorList& in) { return everything(lstm.forward_with_state(in[0], {.h = in[1], .c = in[2]})); },
      {x, h0, c0});
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("recurrent layers train inside Sequential") {
  manual_seed(8);
  nn::Sequential model{nn::LSTM(3, 5), nn::Linear(5, 2)};
  Generator gen(9);
  const Tensor x = randn({4, 3, 3}, gen);
  const Tensor y = model.forward(x);
  CHECK(y.shape() == Shape{4, 2});
  sum(y * y).backward();
  for (const auto& [name, p] : model.named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    CHECK(xt::amax(xt::abs(p.grad().array<float>()))() > 0.0f);
  }
}

TEST_CASE("recurrent layers reject bad input, naming the layer") {
  nn::LSTM lstm(3, 4, {.num_layers = 2});
  nn::GRU gru(3, 4);
  nn::RNN rnn(3, 4);
  CHECK_THROWS_WITH_AS(lstm.forward(zeros({2, 3})),
                       doctest::Contains("LSTM: expected a batch-first sequence [N, T, 3]"), Error);
  CHECK_THROWS_WITH_AS(gru.forward(zeros({2, 5, 4})), doctest::Contains("GRU: input has 4 features per step"), Error);
  CHECK_THROWS_WITH_AS(rnn.forward(zeros({2, 0, 3})), doctest::Contains("RNN: the sequence is empty"), Error);
  CHECK_THROWS_WITH_AS(
      lstm.forward_with_state(zeros({2, 5, 3}), {.h = zeros({1, 2, 4})}),
      doctest::Contains("LSTM: initial state h must be [num_layers, N, hidden] = [2, 2, 4], got [1, 2, 4]"), Error);
  CHECK_THROWS_WITH_AS(lstm.forward_with_state(zeros({2, 5, 3}), {.c = zeros({2, 3, 4})}),
                       doctest::Contains("LSTM: initial state c must be"), Error);
  CHECK_THROWS_WITH_AS(gru.forward_with_state(zeros({2, 5, 3}), {.h = zeros({1, 2, 4}), .c = zeros({1, 2, 4})}),
                       doctest::Contains("GRU: has no cell state"), Error);
  CHECK_THROWS_WITH_AS(rnn.forward(zeros({2, 5, 3}, float64)),
                       doctest::Contains("RNN: input is float64 but the parameters are float32"), Error);
  CHECK_THROWS_WITH_AS(nn::LSTM(0, 4),
                       doctest::Contains("LSTM: input_size, hidden_size and num_layers must be positive"), Error);
}
