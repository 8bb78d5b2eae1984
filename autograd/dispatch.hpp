#pragma once
// Internal: runs a generic lambda with the C++ element type of a runtime dtype.
#include <cstdint>

#include "autograd/dtype.hpp"
#include "autograd/error.hpp"

namespace tg::detail {

/// f(T{}) for float and double; throws naming `op` for int64.
template <class F>
decltype(auto) dispatch_float(Dtype d, std::string_view op, F&& f) {
  switch (d) {
    case Dtype::float32: return f(float{});
    case Dtype::float64: return f(double{});
    default: fail("{}: expected a float32 or float64 tensor, got {}", op, d);
  }
}

/// f(T{}) for every dtype.
template <class F>
decltype(auto) dispatch_all(Dtype d, F&& f) {
  switch (d) {
    case Dtype::float32: return f(float{});
    case Dtype::float64: return f(double{});
    default: return f(std::int64_t{});
  }
}

}  // namespace tg::detail
