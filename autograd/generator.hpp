#pragma once
// Seeded random numbers: every random tensor, initializer, dropout mask and shuffle takes an
// explicit Generator, so runs are reproducible from their seeds.
#include <cstdint>
#include <random>
#include <string>

#include "autograd/tensor.hpp"

namespace tg {

/// A seeded pseudo-random source (mt19937_64).
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : engine_(seed) {}
  void seed(std::uint64_t s) { engine_.seed(s); }
  std::mt19937_64& engine() { return engine_; }
  /// Uniform double in [0, 1).
  double uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_); }
  /// The full engine state as text, and back: for checkpoints that resume exactly.
  std::string state() const;
  void set_state(const std::string& state);

 private:
  std::mt19937_64 engine_;
};

/// The process-wide generator used where none is passed (layer initialization, shuffles).
Generator& default_generator();
/// Reseeds the default generator, like torch.manual_seed.
void manual_seed(std::uint64_t seed);

/// Uniform values in [low, high).
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, Dtype dtype = float32);
/// Normal values with the given mean and standard deviation.
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, Dtype dtype = float32);
/// Uniform in [0, 1).
Tensor rand(const Shape& shape, Generator& gen, Dtype dtype = float32);
/// Standard normal.
Tensor randn(const Shape& shape, Generator& gen, Dtype dtype = float32);
/// Uniform integers in [low, high), as int64.
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen);
/// A random permutation of 0..n-1, as int64.
Tensor randperm(std::size_t n, Generator& gen);

}  // namespace tg
