#pragma once
// Shared by the op tests: seeded float64 inputs and gradient-check assertions that print the
// worst element when they fail.
#include <doctest/doctest.h>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/tapegrad.hpp"

namespace tg::testing {

/// Uniform float64 values in [low, high) that require grad.
inline Tensor input(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  Generator gen(seed);
  return uniform(shape, low, high, gen, float64).requires_grad_();
}

/// Float64 values with |v| in [0.2, 1.5) and a random sign: away from the kinks at 0.
inline Tensor away_from_zero(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  xt::xarray<double> a = uniform(shape, 0.2, 1.5, gen, float64).array<double>();
  for (double& v : a)
    if (gen.uniform() < 0.5) v = -v;
  return Tensor(std::move(a)).requires_grad_();
}

/// Distinct float64 values (a shuffled grid 0.1 apart, plus a small offset): no ties for
/// max/min, even after gradcheck's perturbation.
inline Tensor distinct(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  const Tensor order = randperm(zeros(shape).numel(), gen);
  xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
  for (std::size_t i = 0; i < a.size(); ++i)
    a.data()[i] = 0.1 * static_cast<double>(order.data<std::int64_t>()[i]) - 0.5 + 0.013;
  return Tensor(std::move(a)).requires_grad_();
}

/// An array of `shape` holding `values` in row-major order: for column shapes, where nested
/// braces with one-element rows ({{1}, {2}}) are ambiguous in C++.
template <class T>
xt::xarray<T> shaped(const Shape& shape, std::initializer_list<T> values) {
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  REQUIRE(a.size() == values.size());
  std::copy(values.begin(), values.end(), a.begin());
  return a;
}

}  // namespace tg::testing

/// Gradient check that names the worst element on failure.
#define CHECK_GRADCHECK(fn, ...)                                       \
  do {                                                                 \
    const ::tg::GradcheckResult r_ = ::tg::gradcheck(fn, __VA_ARGS__); \
    INFO(r_.message);                                                  \
    CHECK(r_.passed);                                                  \
  } while (0)

/// Second-order gradient check that names the worst element on failure.
#define CHECK_GRADGRADCHECK(fn, ...)                                       \
  do {                                                                     \
    const ::tg::GradcheckResult r_ = ::tg::gradgradcheck(fn, __VA_ARGS__); \
    INFO(r_.message);                                                      \
    CHECK(r_.passed);                                                      \
  } while (0)
