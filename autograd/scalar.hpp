#pragma once
// tg::Scalar: a number used as an operand of a tensor op (x * 2, x / 0.5), which remembers
// whether it was written as an integer or a floating value: that decides the result's dtype, as
// a Python int or float does in PyTorch (an int64 tensor times 2 stays int64; times 0.5 is
// float32).
#include <concepts>
#include <cstdint>

namespace tg {

/// A number operand of an op: an integer (int, long, ...) or a floating value (float, double).
class Scalar {
 public:
  /// From an integer: an int64 tensor op this keeps its dtype.
  template <std::integral T>
  Scalar(T v) : value_(static_cast<double>(v)), integer_(static_cast<std::int64_t>(v)), is_integral_(true) {}
  /// From a floating value: promotes an int64 tensor to float32, as in PyTorch.
  template <std::floating_point T>
  Scalar(T v) : value_(static_cast<double>(v)) {}

  /// The value as a double.
  double value() const { return value_; }
  /// The value as an integer (exact for integral scalars; truncated otherwise).
  std::int64_t integer() const { return is_integral_ ? integer_ : static_cast<std::int64_t>(value_); }
  /// Whether it was written as an integer.
  bool is_integral() const { return is_integral_; }

 private:
  double value_;
  std::int64_t integer_ = 0;
  bool is_integral_ = false;
};

}  // namespace tg
