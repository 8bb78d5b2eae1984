#include "tapegrad/nn/init.hpp"

#include <cmath>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/grad_mode.hpp"

namespace tg::nn::init {
namespace {
void check_float(const Tensor& t, std::string_view op) {
  TG_CHECK(t.defined(), "init::{}: the tensor is undefined", op);
  TG_CHECK(is_floating(t.dtype()), "init::{}: expected a float32 or float64 tensor, got {}", op, t.dtype());
}

void assign(Tensor t, const Tensor& values) {
  NoGradGuard no_grad;
  t.copy_(values);
}

double fan(const Shape& shape, FanMode mode) {
  const auto [in, out] = calculate_fans(shape);
  return mode == FanMode::fan_in ? in : out;
}
}  // namespace

std::pair<double, double> calculate_fans(const Shape& shape) {
  TG_CHECK(!shape.empty(), "init: fans need a tensor of rank >= 1, got a scalar");
  if (shape.size() == 1) return {double(shape[0]), double(shape[0])};
  double receptive = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= double(shape[i]);
  return {double(shape[1]) * receptive, double(shape[0]) * receptive};
}

double calculate_gain(std::string_view nonlinearity, double param) {
  if (nonlinearity == "linear" || nonlinearity == "conv2d" || nonlinearity == "sigmoid") return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nonlinearity == "selu") return 0.75;
  detail::fail(
      "init::calculate_gain: unknown nonlinearity \"{}\" (expected linear, conv2d, sigmoid, tanh, relu, "
      "leaky_relu or selu)",
      nonlinearity);
}

void uniform_(Tensor t, double low, double high, Generator& gen) {
  check_float(t, "uniform_");
  if (t.numel() == 0) return;
  assign(t, uniform(t.shape(), low, high, gen, t.dtype()));
}

void normal_(Tensor t, double mean, double std, Generator& gen) {
  check_float(t, "normal_");
  if (t.numel() == 0) return;
  assign(t, normal(t.shape(), mean, std, gen, t.dtype()));
}

void constant_(Tensor t, double value) {
  check_float(t, "constant_");
  NoGradGuard no_grad;
  t.fill_(value);
}
void zeros_(Tensor t) { constant_(t, 0.0); }
void ones_(Tensor t) { constant_(t, 1.0); }

void xavier_uniform_(Tensor t, double gain, Generator& gen) {
  check_float(t, "xavier_uniform_");
  const auto [in, out] = calculate_fans(t.shape());
  const double a = gain * std::sqrt(6.0 / (in + out));
  uniform_(t, -a, a, gen);
}

void xavier_normal_(Tensor t, double gain, Generator& gen) {
  check_float(t, "xavier_normal_");
  const auto [in, out] = calculate_fans(t.shape());
  normal_(t, 0.0, gain * std::sqrt(2.0 / (in + out)), gen);
}

void kaiming_uniform_(Tensor t, double a, FanMode mode, std::string_view nonlinearity, Generator& gen) {
  check_float(t, "kaiming_uniform_");
  const double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / fan(t.shape(), mode));
  uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor t, double a, FanMode mode, std::string_view nonlinearity, Generator& gen) {
  check_float(t, "kaiming_normal_");
  normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(fan(t.shape(), mode)), gen);
}

void glorot_uniform_(Tensor t, Generator& gen) { xavier_uniform_(t, 1.0, gen); }
void glorot_normal_(Tensor t, Generator& gen) { xavier_normal_(t, 1.0, gen); }
void he_uniform_(Tensor t, Generator& gen) { kaiming_uniform_(t, 0.0, FanMode::fan_in, "relu", gen); }
void he_normal_(Tensor t, Generator& gen) { kaiming_normal_(t, 0.0, FanMode::fan_in, "relu", gen); }

}  // namespace tg::nn::init
