#pragma once
// Gradient checks: analytic gradients from the engine against float64 central differences.
#include <cstdint>
#include <functional>
#include <string>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

/// Options of gradcheck; the defaults are PyTorch's.
struct GradcheckOptions {
  double eps = 1e-6;   ///< central-difference step
  double atol = 1e-5;  ///< |numeric - analytic| <= atol + rtol * |numeric|
  /// Relative tolerance (see atol).
  double rtol = 1e-3;
  /// Full Jacobian while (inputs' elements × outputs' elements) stays below this; random
  /// projections above it.
  std::size_t max_full_jacobian = 50000;
  int projections = 6;        ///< random projections for large inputs
  std::uint64_t seed = 1234;  ///< for the projections and gradgradcheck's random weights
};

/// Outcome of a check; converts to true when it passed. `message` names the worst element.
struct GradcheckResult {
  /// Whether every element was within tolerance.
  bool passed = true;
  /// One line naming the worst element, with its numeric and analytic values.
  std::string message;
  std::size_t input = 0;     ///< input of the worst element
  std::size_t position = 0;  ///< flat index in that input (or projection number)
  /// The worst element's central difference.
  double numeric = 0.0;
  /// The worst element's gradient from the engine.
  double analytic = 0.0;
  /// `passed`, so that `if (!gradcheck(...))` reads naturally.
  explicit operator bool() const { return passed; }
};

/// The function checked: the inputs → one output tensor of any shape.
using DifferentiableFn = std::function<Tensor(const TensorList&)>;

/// Checks the gradients of fn (any output shape) with respect to every input that requires
/// grad; the inputs must be float64. fn always runs with grad mode on (it may call tg::grad).
GradcheckResult gradcheck(const DifferentiableFn& fn, const TensorList& inputs, GradcheckOptions options = {});

/// Second order: gradient-checks the first-order gradients of fn (built with create_graph),
/// projected on fixed random weights.
GradcheckResult gradgradcheck(const DifferentiableFn& fn, const TensorList& inputs, GradcheckOptions options = {});

}  // namespace tg
