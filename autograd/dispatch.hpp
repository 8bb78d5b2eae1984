#pragma once
// Runs a generic lambda with the C++ element type of a runtime dtype: how an op (a custom one
// too) reaches its data. `dispatch_float(x.dtype(), "my_op", [&](auto t) { using T =
// decltype(t); ... x.data<T>() ... })`.
#include <cstdint>
#include <string_view>

#include "tapegrad/autograd/dtype.hpp"
#include "tapegrad/autograd/error.hpp"

namespace tg {

namespace detail {
/// Throws tg::Error: `op` expected a float32 or float64 tensor and got dtype d.
[[noreturn]] void fail_not_floating(std::string_view op, Dtype d);
}  // namespace detail

/// f(T{}) for float32 (T = float) and float64 (double); throws tg::Error naming `op` for int64.
template <class F>
decltype(auto) dispatch_float(Dtype d, std::string_view op, F&& f) {
  switch (d) {
    case Dtype::float32:
      return f(float{});
    case Dtype::float64:
      return f(double{});
    case Dtype::int64:
      break;
  }
  detail::fail_not_floating(op, d);
}

/// f(T{}) for every dtype: float, double or std::int64_t.
template <class F>
decltype(auto) dispatch_all(Dtype d, F&& f) {
  switch (d) {
    case Dtype::float32:
      return f(float{});
    case Dtype::float64:
      return f(double{});
    case Dtype::int64:
      break;
  }
  return f(std::int64_t{});
}

}  // namespace tg
