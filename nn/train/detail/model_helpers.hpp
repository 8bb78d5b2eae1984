// Helpers shared by the files of nn::Model (model.cpp, model_fit.cpp); internal, not installed.
#pragma once

#include <cstddef>
#include <iostream>
#include <numeric>
#include <vector>

#include "tapegrad/nn/module.hpp"

namespace tg::nn::model_internal {

// Restores the module's training flag when leaving a scope that changed it.
class ModeGuard {
 public:
  ModeGuard(Module& m, bool training) : module_(m), previous_(m.is_training()) { module_.train(training); }
  ~ModeGuard() { module_.train(previous_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  Module& module_;
  bool previous_;
};

inline std::vector<std::size_t> iota_indices(std::size_t begin, std::size_t end) {
  std::vector<std::size_t> v(end - begin);
  std::iota(v.begin(), v.end(), begin);
  return v;
}

inline std::ostream& out_stream(std::ostream* os) { return os ? *os : std::cout; }

}  // namespace tg::nn::model_internal
