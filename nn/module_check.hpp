#pragma once
// A generic gradient check for any module: with respect to its input and every parameter.
#include <cstdint>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/gradcheck.hpp"

namespace tg::nn {

/// Options of check_module.
struct ModuleCheckOptions {
  /// Step and tolerances of the underlying tg::gradcheck.
  GradcheckOptions gradcheck = {};
  /// Reseeded with `seed` before every evaluation, so a random layer (Dropout in train mode)
  /// sees the same mask each time; leave null for deterministic modules.
  Generator* generator = nullptr;
  /// What `generator` is reseeded with before every evaluation.
  std::uint64_t seed = 0;
  bool check_input = true;  ///< also check d(output)/d(input)
};

/// Converts `module` to float64 (in place; it stays float64) and gradient-checks its forward in
/// its current mode (train or eval) at `input` with respect to the input and every parameter.
/// Each evaluation writes the trial parameter values into the module's own parameters, so the
/// gradients checked are the ones backward accumulates into them. Buffers are restored after.
GradcheckResult check_module(Module& module, const Tensor& input, ModuleCheckOptions options = {});

}  // namespace tg::nn
