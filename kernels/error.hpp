#pragma once
// tg::Error, thrown on every bad input from the kernels up (a public header: autograd/error.hpp
// is where users include it from). Lean on purpose, as every public header includes it: the
// checking macro that formats messages, TG_CHECK, is in kernels/check.hpp.
#include <stdexcept>

namespace tg {

/// Thrown for every bad input: the message names the op, module or file, the shapes and what
/// was expected.
class Error : public std::runtime_error {
 public:
  /// Takes the message, as std::runtime_error does.
  using std::runtime_error::runtime_error;
};

}  // namespace tg
