// Conformance of RNN, LSTM and GRU with torch.nn.RNN/LSTM/GRU(batch_first=True), unidirectional
// and bidirectional (a case's "bidirectional", false when absent): the same
// weights (loaded under PyTorch's parameter names) give the same outputs, last states and
// gradients, against tests/conformance/rnn.json (scripts/make_conformance_rnn.py), in float64.
#include <memory>

#include "conformance_support.hpp"
#include "tapegrad/nn/rnn.hpp"

using namespace tg;
using namespace tg::conformance;

namespace {

std::unique_ptr<nn::RecurrentBase> make_layer(const Json& c) {
  const std::string kind = c.at("module");
  const auto in = c.at("input_size").get<std::size_t>(), hidden = c.at("hidden_size").get<std::size_t>();
  const auto layers = c.at("num_layers").get<std::size_t>();
  const bool bias = c.at("bias").get<bool>();
  const bool bidirectional = c.value("bidirectional", false);
  const nn::LSTMOptions options{.num_layers = layers, .bias = bias, .bidirectional = bidirectional};
  if (kind == "LSTM") return std::make_unique<nn::LSTM>(in, hidden, options);
  if (kind == "GRU") return std::make_unique<nn::GRU>(in, hidden, options);
  REQUIRE(kind == "RNN");
  const auto act = c.at("nonlinearity") == "relu" ? nn::RNNNonlinearity::relu : nn::RNNNonlinearity::tanh;
  return std::make_unique<nn::RNN>(
      in, hidden,
      nn::RNNOptions{.num_layers = layers, .nonlinearity = act, .bias = bias, .bidirectional = bidirectional});
}

Tensor optional_tensor(const Json& c, const char* key) {
  return c.at(key).is_null() ? Tensor() : tensor_from(c.at(key), float64).requires_grad_();
}

void run_case(const Json& c) {
  const std::string name = c.at("name");
  INFO("case ", name);
  auto layer = make_layer(c);
  REQUIRE(layer->bidirectional() == c.value("bidirectional", false));
  layer->to(float64);
  // Load PyTorch's weights by name: the names and their order must be the same.
  const nn::NamedTensors params = layer->named_parameters();
  const Json& stored = c.at("parameters");
  REQUIRE(params.size() == stored.size());
  {
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      CHECK(params[i].first == stored[i].at("name").get<std::string>());
      Tensor p = params[i].second;
      p.copy_(tensor_from(stored[i], float64));
    }
  }
  const Tensor x = tensor_from(c.at("input"), float64).requires_grad_();
  const Tensor h0 = optional_tensor(c, "h0"), c0 = optional_tensor(c, "c0");
  const nn::RNNOutput r = layer->forward_with_state(x, {.h = h0, .c = c0});
  check_close(r.output, c.at("output"), float64, name + " output");
  check_close(r.h, c.at("h_n"), float64, name + " h_n");
  Tensor loss = sum(r.output * tensor_from(c.at("w_out"), float64)) + sum(r.h * tensor_from(c.at("w_h"), float64));
  if (!c.at("c_n").is_null()) {
    check_close(r.c, c.at("c_n"), float64, name + " c_n");
    loss = loss + sum(r.c * tensor_from(c.at("w_c"), float64));
  } else {
    CHECK_FALSE(r.c.defined());
  }
  loss.backward();
  const Json& grads = c.at("grads");
  check_close(x.grad(), grads.at("input"), float64, name + " d/d input");
  if (h0.defined()) check_close(h0.grad(), grads.at("h0"), float64, name + " d/d h0");
  if (c0.defined()) check_close(c0.grad(), grads.at("c0"), float64, name + " d/d c0");
  for (const auto& [pname, p] : params)
    check_close(p.grad(), grads.at("parameters").at(pname), float64, name + " d/d " + pname);
}

}  // namespace

TEST_CASE("RNN, LSTM and GRU match PyTorch's values and gradients") {
  const Json& data = load("rnn.json");
  std::set<std::string> modules, bidirectional;
  for (const Json& c : data.at("cases")) {
    run_case(c);
    modules.insert(c.at("module").get<std::string>());
    if (c.value("bidirectional", false)) bidirectional.insert(c.at("module").get<std::string>());
  }
  CHECK(modules == std::set<std::string>{"GRU", "LSTM", "RNN"});
  CHECK(bidirectional == modules);
  MESSAGE("rnn.json (PyTorch ", data.at("torch").get<std::string>(), "): ", data.at("cases").size(), " cases");
}
