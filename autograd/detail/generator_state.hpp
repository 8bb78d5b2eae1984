#pragma once
// Internal: what a tg::Generator holds, for the library's own bulk draws (random tensors, dropout
// masks, shuffles), which take the lock once and then draw from the engine directly.
#include <mutex>
#include <random>

#include "tapegrad/autograd/generator.hpp"

namespace tg {

struct Generator::State {
  std::mt19937_64 engine;
  std::mutex mutex;
};

/// Holds `gen`'s lock for the scope and hands out its engine.
class LockedEngine {
 public:
  explicit LockedEngine(Generator& gen) : state_(*gen.state_), held_(state_.mutex) {}
  std::mt19937_64& engine() { return state_.engine; }

 private:
  Generator::State& state_;
  std::lock_guard<std::mutex> held_;
};

}  // namespace tg
