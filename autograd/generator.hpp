#pragma once
// Seeded random numbers: every random tensor, initializer, dropout mask and shuffle takes an
// explicit Generator, so runs are reproducible from their seeds.
#include <cstdint>
#include <memory>
#include <string>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// A seeded pseudo-random source (mt19937_64). Safe to share between threads: every draw made
/// by tapegrad (random tensors, dropout masks, shuffles, initializers) holds the generator's lock,
/// as PyTorch's generators do. Draws from several threads then interleave in whatever order the
/// threads run; a run is reproducible from its seed when each thread has its own generator (or
/// one thread draws), at any thread count of tapegrad's own loops, which never draw.
///
/// It is also a standard uniform random bit generator: `std::normal_distribution<>(0, 1)(gen)`
/// draws from it, one locked 64-bit draw at a time.
class Generator {
 public:
  using result_type = std::uint64_t;
  /// An engine seeded with `seed`.
  explicit Generator(std::uint64_t seed = 0);
  /// Copies other's engine state (under its lock): the copy draws what other would draw next.
  Generator(const Generator& other);
  /// The same by assignment (both locks held).
  Generator& operator=(const Generator& other);
  ~Generator();
  /// Restarts the engine from seed `s`.
  void seed(std::uint64_t s);
  /// The next 64 random bits (under the lock).
  result_type operator()();
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  /// Uniform double in [0, 1).
  double uniform();
  /// The full engine state as text, and back: for checkpoints that resume exactly. set_state
  /// rejects text that is not a state, and the all-zero state (every draw would be 0).
  std::string state() const;
  /// Restores a state() text; throws tg::Error for other text and for the all-zero state.
  void set_state(const std::string& state);

  /// The engine and its mutex (defined in autograd/detail/generator_state.hpp, internal).
  struct State;

 private:
  friend class LockedEngine;  // tapegrad's own bulk draws: one lock, then the engine directly
  std::unique_ptr<State> state_;
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
