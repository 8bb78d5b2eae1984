// Recurrent layers: shapes, PyTorch's parameter names and initialization, float64 gradient
// checks through input, initial state and every parameter, stacking, bidirectional layers, and
// bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <xtensor/xview.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/module_check.hpp"
#include "tapegrad/nn/rnn.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/tapegrad.hpp"
#include "temp_dir.hpp"

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
  const std::size_t layers = m.num_layers() * (m.bidirectional() ? 2 : 1), hidden = m.hidden_size();
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

// Entry i of a state [L*D, N, H] as [1, N, H], or undefined when no state is given.
Tensor state_entry(const Tensor& s, std::size_t i) {
  return s.defined() ? slice(s, 0, static_cast<std::int64_t>(i), static_cast<std::int64_t>(i + 1)) : Tensor();
}

// A bidirectional layer rebuilt from one-layer unidirectional ones holding its weights: in each
// layer, one runs on the sequence and one on the time-reversed sequence (its outputs reversed
// back), and their outputs are joined on the feature axis; the states stack as layer 0 forward,
// layer 0 reverse, layer 1 forward, ...
using MakeLayer = std::function<std::unique_ptr<nn::RecurrentBase>(std::size_t input_size)>;
nn::RNNOutput bidirectional_by_hand(const nn::RecurrentBase& bi, const MakeLayer& make, const Tensor& x,
                                    const nn::RNNState& state) {
  const auto steps = static_cast<std::int64_t>(x.shape(1));
  const Tensor backwards(xt::xarray<std::int64_t>(xt::arange<std::int64_t>(steps - 1, -1, -1)));
  const auto reversed = [&](const Tensor& t) { return index_select(t, 1, backwards); };
  Tensor seq = x;
  TensorList hs, cs;
  for (std::size_t k = 0; k < bi.num_layers(); ++k) {
    TensorList outs;
    for (bool reverse : {false, true}) {
      auto uni = make(k == 0 ? bi.input_size() : 2 * bi.hidden_size());
      uni->to(x.dtype());
      {
        NoGradGuard no_grad;
        const TensorList mine{bi.weight_ih(k, reverse), bi.weight_hh(k, reverse), bi.bias_ih(k, reverse),
                              bi.bias_hh(k, reverse)};
        TensorList params = uni->parameters();
        for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(mine[i]);
      }
      const std::size_t entry = 2 * k + (reverse ? 1 : 0);
      const nn::RNNOutput r = uni->forward_with_state(
          reverse ? reversed(seq) : seq, {.h = state_entry(state.h, entry), .c = state_entry(state.c, entry)});
      outs.push_back(reverse ? reversed(r.output) : r.output);
      hs.push_back(r.h);
      if (r.c.defined()) cs.push_back(r.c);
    }
    seq = concat(outs, 2);
  }
  return {seq, concat(hs, 0), cs.empty() ? Tensor() : concat(cs, 0)};
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

TEST_CASE("recurrent layers pass the generic module check (last output and whole sequence, both directions)") {
  manual_seed(10);
  Generator gen(12);
  const Tensor x = randn({2, 3, 3}, gen, float64);
  for (bool bi : {false, true})
    for (bool sequences : {false, true}) {
      INFO("return_sequences ", sequences);
      std::vector<std::shared_ptr<nn::Module>> layers{
          std::make_shared<nn::RNN>(3, 2, nn::RNNOptions{.bidirectional = bi, .return_sequences = sequences}),
          std::make_shared<nn::LSTM>(
              3, 2, nn::LSTMOptions{.num_layers = 2, .bidirectional = bi, .return_sequences = sequences}),
          std::make_shared<nn::GRU>(3, 2, nn::GRUOptions{.bidirectional = bi, .return_sequences = sequences})};
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
  Generator gen(9);
  const Tensor x = randn({4, 3, 3}, gen);
  for (bool bi : {false, true}) {
    INFO("bidirectional ", bi);
    // A bidirectional LSTM's last output holds both directions: 2 * 5 features.
    nn::Sequential model{nn::LSTM(3, 5, {.bidirectional = bi}), nn::Linear(bi ? 10 : 5, 2)};
    const Tensor y = model.forward(x);
    CHECK(y.shape() == Shape{4, 2});
    sum(y * y).backward();
    for (const auto& [name, p] : model.named_parameters()) {
      INFO(name);
      REQUIRE(p.grad().defined());
      CHECK(xt::amax(xt::abs(p.grad().array<float>()))() > 0.0f);
    }
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

TEST_CASE("bidirectional layers have PyTorch's parameter names, order, shapes and bounds") {
  manual_seed(11);
  nn::LSTM lstm(5, 8, {.num_layers = 2, .bidirectional = true});
  CHECK(lstm.bidirectional());
  const nn::NamedTensors params = lstm.named_parameters();
  std::vector<std::pair<std::string, Shape>> expected;
  for (const char* layer : {"l0", "l1"})
    for (const char* dir : {"", "_reverse"}) {
      // Layer 1 reads both directions of layer 0: 2H = 16 features.
      const std::size_t in = std::string(layer) == "l0" ? 5 : 16;
      expected.push_back({fmt::format("weight_ih_{}{}", layer, dir), {32, in}});
      expected.push_back({fmt::format("weight_hh_{}{}", layer, dir), {32, 8}});
      expected.push_back({fmt::format("bias_ih_{}{}", layer, dir), {32}});
      expected.push_back({fmt::format("bias_hh_{}{}", layer, dir), {32}});
    }
  REQUIRE(params.size() == expected.size());
  const double bound = 1.0 / std::sqrt(8.0);
  for (std::size_t i = 0; i < params.size(); ++i) {
    INFO(expected[i].first);
    CHECK(params[i].first == expected[i].first);
    CHECK(params[i].second.shape() == expected[i].second);
    const auto& a = params[i].second.array<float>();
    CHECK(xt::amax(a)() <= bound);
    CHECK(xt::amin(a)() >= -bound);
    CHECK(xt::amax(a)() > 0.5 * bound);
  }
  CHECK(lstm.weight_ih(1, true).is_same(params[12].second));
  CHECK(lstm.repr() == "LSTM(5, 8, num_layers=2, batch_first=true, bidirectional=true)");
  CHECK(nn::GRU(3, 4, {.bidirectional = true, .return_sequences = true}).repr() ==
        "GRU(3, 4, batch_first=true, bidirectional=true, return_sequences=true)");
  CHECK(nn::RNN(3, 4, {.bias = false, .bidirectional = true}).parameters().size() == 4);
  CHECK(nn::GRU(3, 4, {.num_layers = 3, .bidirectional = true}).parameters().size() == 24);
  // A unidirectional layer has no reverse weights.
  CHECK_THROWS_AS(nn::RNN(3, 4).weight_ih(0, true), std::out_of_range);
  CHECK_FALSE(nn::RNN(3, 4).bidirectional());

  // Keras's initialization for the reverse direction too.
  nn::LSTM keras(5, 8, {.num_layers = 2, .bidirectional = true, .init = nn::RecurrentInit::keras});
  for (std::size_t k = 0; k < 2; ++k) {
    INFO("layer ", k);
    const Tensor w = keras.weight_hh(k, true).to(float64);
    CHECK(xt::allclose(matmul(transpose(w), w).array<double>(), xt::eye<double>(8), 1e-5, 1e-5));
    const double glorot = std::sqrt(6.0 / ((k == 0 ? 5.0 : 16.0) + 32.0));
    CHECK(xt::amax(xt::abs(keras.weight_ih(k, true).array<float>()))() <= glorot);
    CHECK(xt::amax(xt::abs(keras.weight_ih(k, true).array<float>()))() > 0.5 * glorot);
    // Drawn on their own, not copies of the forward direction's.
    CHECK_FALSE(xt::allclose(keras.weight_ih(k, true).array<float>(), keras.weight_ih(k).array<float>()));
    const xt::xarray<float> b = keras.bias_ih(k, true).array<float>();
    for (std::size_t i = 0; i < 32; ++i) CHECK(b(i) == (i >= 8 && i < 16 ? 1.0f : 0.0f));
    CHECK(xt::amax(xt::abs(keras.bias_hh(k, true).array<float>()))() == 0.0f);
  }
}

TEST_CASE("bidirectional layers return [N, T, 2H], states [2 * num_layers, N, H] and Keras's last output") {
  manual_seed(12);
  Generator gen(13);
  const std::size_t n = 3, steps = 5, hidden = 4;
  const Tensor x = randn({n, steps, 2}, gen);
  nn::LSTM lstm(2, hidden, {.num_layers = 2, .bidirectional = true});
  const nn::RNNOutput r = lstm.forward_with_state(x);
  CHECK(r.output.shape() == Shape{n, steps, 2 * hidden});
  CHECK(r.h.shape() == Shape{4, n, hidden});
  CHECK(r.c.shape() == Shape{4, n, hidden});
  const xt::xarray<float> out = r.output.array<float>(), h = r.h.array<float>();
  // The forward half ends at T-1 and the reverse half at t = 0, where the last layer's final
  // states (entries 2 and 3) come from.
  const auto fwd_last = xt::view(out, xt::all(), steps - 1, xt::range(0, hidden));
  const auto rev_last = xt::view(out, xt::all(), 0, xt::range(hidden, 2 * hidden));
  CHECK(xt::allclose(xt::xarray<float>(fwd_last), xt::xarray<float>(xt::view(h, 2, xt::all(), xt::all()))));
  CHECK(xt::allclose(xt::xarray<float>(rev_last), xt::xarray<float>(xt::view(h, 3, xt::all(), xt::all()))));
  // forward(x) without return_sequences: [forward output at T-1, reverse output at t = 0].
  const Tensor last = lstm.forward(x);
  CHECK(last.shape() == Shape{n, 2 * hidden});
  CHECK(xt::allclose(xt::xarray<float>(xt::view(last.array<float>(), xt::all(), xt::range(0, hidden))),
                     xt::xarray<float>(fwd_last)));
  CHECK(xt::allclose(xt::xarray<float>(xt::view(last.array<float>(), xt::all(), xt::range(hidden, 2 * hidden))),
                     xt::xarray<float>(rev_last)));

  nn::GRU gru(2, hidden, {.bidirectional = true, .return_sequences = true});
  CHECK(gru.forward(x).shape() == Shape{n, steps, 2 * hidden});
  CHECK(xt::allclose(gru.forward(x).array<float>(),
                     gru.forward_with_state(x, {.h = zeros({2, n, hidden})}).output.array<float>()));
}

TEST_CASE("a bidirectional layer equals unidirectional layers run forward and on the reversed sequence") {
  struct Case {
    std::string name;
    std::shared_ptr<nn::RecurrentBase> bi;
    MakeLayer make;
    bool with_state;
  };
  manual_seed(14);
  const std::size_t in = 3, hidden = 4, n = 2, steps = 5;
  const std::vector<Case> cases{
      {"RNN tanh, 2 layers",
       std::make_shared<nn::RNN>(in, hidden, nn::RNNOptions{.num_layers = 2, .bidirectional = true}),
       [](std::size_t i) { return std::make_unique<nn::RNN>(i, 4); }, true},
      {"RNN relu, no bias",
       std::make_shared<nn::RNN>(
           in, hidden, nn::RNNOptions{.nonlinearity = nn::RNNNonlinearity::relu, .bias = false, .bidirectional = true}),
       [](std::size_t i) {
         return std::make_unique<nn::RNN>(i, 4,
                                          nn::RNNOptions{.nonlinearity = nn::RNNNonlinearity::relu, .bias = false});
       },
       false},
      {"LSTM, 2 layers",
       std::make_shared<nn::LSTM>(in, hidden, nn::LSTMOptions{.num_layers = 2, .bidirectional = true}),
       [](std::size_t i) { return std::make_unique<nn::LSTM>(i, 4); }, true},
      {"LSTM, no state", std::make_shared<nn::LSTM>(in, hidden, nn::LSTMOptions{.bidirectional = true}),
       [](std::size_t i) { return std::make_unique<nn::LSTM>(i, 4); }, false},
      {"GRU, 2 layers", std::make_shared<nn::GRU>(in, hidden, nn::GRUOptions{.num_layers = 2, .bidirectional = true}),
       [](std::size_t i) { return std::make_unique<nn::GRU>(i, 4); }, true},
  };
  Generator gen(15);
  for (const Case& c : cases) {
    INFO(c.name);
    c.bi->to(float64);
    const bool lstm = c.name.starts_with("LSTM");
    const std::size_t entries = 2 * c.bi->num_layers();
    const Tensor x = randn({n, steps, in}, gen, float64).requires_grad_();
    nn::RNNState state;
    if (c.with_state) state.h = randn({entries, n, hidden}, gen, float64).requires_grad_();
    if (c.with_state && lstm) state.c = randn({entries, n, hidden}, gen, float64).requires_grad_();
    const nn::RNNOutput got = c.bi->forward_with_state(x, state);
    const nn::RNNOutput want = bidirectional_by_hand(*c.bi, c.make, x, state);
    CHECK(xt::allclose(got.output.array<double>(), want.output.array<double>(), 1e-12, 1e-12));
    CHECK(xt::allclose(got.h.array<double>(), want.h.array<double>(), 1e-12, 1e-12));
    CHECK(got.c.defined() == lstm);
    if (lstm) CHECK(xt::allclose(got.c.array<double>(), want.c.array<double>(), 1e-12, 1e-12));
    // The same gradients reach the input and the initial state.
    const Tensor w = randn({got.output.numel() + got.h.numel() + (lstm ? got.c.numel() : 0)}, gen, float64);
    TensorList inputs{x};
    if (state.h.defined()) inputs.push_back(state.h);
    if (state.c.defined()) inputs.push_back(state.c);
    const TensorList g_got = grad({sum(everything(got) * w)}, inputs);
    const TensorList g_want = grad({sum(everything(want) * w)}, inputs);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      INFO("gradient ", i);
      CHECK(xt::allclose(g_got[i].array<double>(), g_want[i].array<double>(), 1e-12, 1e-12));
    }
  }
}

TEST_CASE("bidirectional gradients through input, initial state and parameters (float64)") {
  manual_seed(16);
  nn::RNN rnn(3, 3, {.num_layers = 2, .bidirectional = true});
  GradcheckResult r = check_layer(rnn, false, true);
  INFO(r.message);
  CHECK(r);
  nn::LSTM lstm(2, 3, {.num_layers = 2, .bidirectional = true});
  r = check_layer(lstm, true, true, 2, 2);
  INFO(r.message);
  CHECK(r);
  nn::GRU gru(2, 3, {.bidirectional = true});
  r = check_layer(gru, false, false, 1, 3);
  INFO(r.message);
  CHECK(r);
  r = check_layer(gru, false, true, 2, 2);
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("bidirectional second-order gradients (create_graph) through input and state") {
  manual_seed(17);
  Generator gen(18);
  nn::LSTM lstm(2, 2, {.bidirectional = true});
  lstm.to(float64);
  const Tensor x = randn({2, 2, 2}, gen, float64).requires_grad_();
  const Tensor h0 = randn({2, 2, 2}, gen, float64).requires_grad_();
  const Tensor c0 = randn({2, 2, 2}, gen, float64).requires_grad_();
  GradcheckResult r = gradgradcheck(
      [&](const TensorList& in) { return everything(lstm.forward_with_state(in[0], {.h = in[1], .c = in[2]})); },
      {x, h0, c0});
  INFO(r.message);
  CHECK(r);
  nn::GRU gru(2, 2, {.num_layers = 2, .bidirectional = true});
  gru.to(float64);
  const Tensor h1 = randn({4, 2, 2}, gen, float64).requires_grad_();
  r = gradgradcheck([&](const TensorList& in) { return everything(gru.forward_with_state(in[0], {.h = in[1]})); },
                    {x, h1});
  INFO(r.message);
  CHECK(r);
}

TEST_CASE("a bidirectional layer saves and loads by name, and keeps its handles through to(float64)") {
  manual_seed(21);
  testing::TempDir dir;
  nn::GRU saved(3, 4, {.num_layers = 2, .bidirectional = true});
  nn::save(saved, dir / "gru.safetensors");
  nn::GRU loaded(3, 4, {.num_layers = 2, .bidirectional = true});
  nn::load(loaded, dir / "gru.safetensors");
  Generator gen(22);
  const Tensor x = randn({2, 3, 3}, gen);
  CHECK(xt::allclose(loaded.forward(x).array<float>(), saved.forward(x).array<float>(), 0.0, 0.0));
  // A unidirectional layer has no *_reverse weights to take them.
  nn::GRU unidirectional(3, 4, {.num_layers = 2});
  CHECK_THROWS_AS(nn::load(unidirectional, dir / "gru.safetensors"), Error);
  loaded.to(float64);
  CHECK(loaded.weight_hh(1, true).is_same(loaded.named_parameters()[13].second));
  CHECK(loaded.weight_hh(1, true).dtype() == float64);
}

TEST_CASE("bidirectional layers reject bad input and initial states, naming the layer") {
  nn::LSTM lstm(3, 4, {.num_layers = 2, .bidirectional = true});
  nn::GRU gru(3, 4, {.bidirectional = true});
  const Tensor x = zeros({2, 5, 3});
  // A unidirectional layout is refused: the state holds both directions of every layer.
  CHECK_THROWS_WITH_AS(
      lstm.forward_with_state(x, {.h = zeros({2, 2, 4})}),
      doctest::Contains("LSTM: initial state h must be [num_layers * 2, N, hidden] = [4, 2, 4], got [2, 2, 4]"), Error);
  CHECK_THROWS_WITH_AS(
      lstm.forward_with_state(x, {.h = zeros({4, 2, 4}), .c = zeros({4, 2, 8})}),
      doctest::Contains("LSTM: initial state c must be [num_layers * 2, N, hidden] = [4, 2, 4], got [4, 2, 8]"), Error);
  CHECK_THROWS_WITH_AS(gru.forward_with_state(x, {.h = zeros({1, 2, 4})}),
                       doctest::Contains("GRU: initial state h must be [num_layers * 2, N, hidden] = [2, 2, 4]"),
                       Error);
  // The input is still checked against input_size, not 2H.
  CHECK_THROWS_WITH_AS(lstm.forward(zeros({2, 5, 8})),
                       doctest::Contains("LSTM: input has 8 features per step but the layer has input_size 3"), Error);
  CHECK_THROWS_WITH_AS(gru.forward(zeros({2, 3})), doctest::Contains("GRU: expected a batch-first sequence [N, T, 3]"),
                       Error);
  nn::Sequential model{nn::GRU(3, 4, {.bidirectional = true}), nn::Linear(4, 2)};
  CHECK_THROWS_WITH_AS(model.forward(x), doctest::Contains("Sequential layer 1: Linear(4 -> 2)"), Error);
}
