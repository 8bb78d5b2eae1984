#pragma once
// Weight initializers. Each fills a tensor in place (under no-grad) from a seeded Generator.
// Fans follow PyTorch and Keras: for a weight [out, in, k...], fan_in = in * prod(k) and
// fan_out = out * prod(k); a 1-D tensor has fan_in = fan_out = its size.
//
// Defaults of the layers here: Linear and Conv2d kernels glorot_uniform with zero bias, as
// Keras's Dense and Conv2D (PyTorch instead uses kaiming_uniform(a=sqrt(5)) with a uniform bias).
#include <string_view>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/tensor.hpp"

namespace tg::nn::init {

/// Which fan scales kaiming initializers: fan_in keeps forward variance, fan_out backward.
enum class FanMode { fan_in, fan_out };

/// (fan_in, fan_out) of a weight of rank >= 1.
std::pair<double, double> calculate_fans(const Shape& shape);
/// The gain PyTorch recommends for a nonlinearity: "linear"/"conv2d"/"sigmoid" 1, "tanh" 5/3,
/// "relu" sqrt(2), "leaky_relu" sqrt(2 / (1 + slope²)), "selu" 3/4.
double calculate_gain(std::string_view nonlinearity, double param = 0.01);

/// t ← U(low, high).
void uniform_(Tensor t, double low = 0.0, double high = 1.0, Generator& gen = default_generator());
/// t ← N(mean, std²).
void normal_(Tensor t, double mean = 0.0, double std = 1.0, Generator& gen = default_generator());
/// t ← value.
void constant_(Tensor t, double value);
/// t ← 0.
void zeros_(Tensor t);
/// t ← 1.
void ones_(Tensor t);
/// Glorot/Xavier uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor t, double gain = 1.0, Generator& gen = default_generator());
/// Glorot/Xavier normal: N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(Tensor t, double gain = 1.0, Generator& gen = default_generator());
/// Kaiming/He uniform: U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a).
void kaiming_uniform_(Tensor t, double a = 0.0, FanMode mode = FanMode::fan_in,
                      std::string_view nonlinearity = "leaky_relu", Generator& gen = default_generator());
/// Kaiming/He normal: N(0, std²) with std = gain / sqrt(fan) (a plain normal, as PyTorch; Keras's
/// he_normal truncates at two standard deviations).
void kaiming_normal_(Tensor t, double a = 0.0, FanMode mode = FanMode::fan_in,
                     std::string_view nonlinearity = "leaky_relu", Generator& gen = default_generator());

/// Keras names: glorot_* = xavier_* (gain 1); he_* = kaiming_* with fan_in and ReLU gain.
void glorot_uniform_(Tensor t, Generator& gen = default_generator());
/// xavier_normal_ with gain 1 (Keras's glorot_normal, not truncated).
void glorot_normal_(Tensor t, Generator& gen = default_generator());
/// kaiming_uniform_ with fan_in and relu's gain: U(-b, b), b = sqrt(6 / fan_in).
void he_uniform_(Tensor t, Generator& gen = default_generator());
/// kaiming_normal_ with fan_in and relu's gain: N(0, 2 / fan_in), not truncated.
void he_normal_(Tensor t, Generator& gen = default_generator());

}  // namespace tg::nn::init
