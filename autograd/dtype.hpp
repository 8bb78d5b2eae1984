#pragma once
// Runtime element types of a Tensor.
#include <cstdint>
#include <iosfwd>
#include <string_view>

namespace tg {

/// Element type of a Tensor, chosen at run time. int64 holds labels and indices and is never
/// differentiable.
enum class Dtype : std::uint8_t { float32, float64, int64 };

/// tg::float32, short for Dtype::float32 (as torch.float32).
inline constexpr Dtype float32 = Dtype::float32;
/// tg::float64, short for Dtype::float64.
inline constexpr Dtype float64 = Dtype::float64;
/// tg::int64, short for Dtype::int64.
inline constexpr Dtype int64 = Dtype::int64;

/// "float32", "float64" or "int64".
constexpr std::string_view dtype_name(Dtype d) {
  switch (d) {
    case Dtype::float32:
      return "float32";
    case Dtype::float64:
      return "float64";
    case Dtype::int64:
      return "int64";
  }
  return "?";
}

/// Writes dtype_name(d): `std::cout << x.dtype()` prints "float32".
std::ostream& operator<<(std::ostream& os, Dtype d);

/// Whether d is float32 or float64: the dtypes that can require grad.
constexpr bool is_floating(Dtype d) { return d != Dtype::int64; }

/// The dtype both operands of a binary op take (torch.promote_types): float64 over float32 over
/// int64, so float32 with float64 is float64 and int64 with either float is that float.
constexpr Dtype promote_types(Dtype a, Dtype b) {
  if (a == Dtype::float64 || b == Dtype::float64) return Dtype::float64;
  if (a == Dtype::float32 || b == Dtype::float32) return Dtype::float32;
  return Dtype::int64;
}

/// The floating dtype ops produce from integers (a true division, exp of an int64 tensor, an
/// int64 tensor times 0.5): float32, PyTorch's default.
inline constexpr Dtype default_float = Dtype::float32;

/// Bytes per element: 4 for float32, 8 for float64 and int64.
constexpr std::size_t dtype_size(Dtype d) { return d == Dtype::float32 ? 4 : 8; }

/// The Dtype of element type T; defined for float, double and std::int64_t only.
template <class T>
constexpr Dtype dtype_of();
/// float → float32.
template <>
constexpr Dtype dtype_of<float>() {
  return Dtype::float32;
}
/// double → float64.
template <>
constexpr Dtype dtype_of<double>() {
  return Dtype::float64;
}
/// std::int64_t → int64.
template <>
constexpr Dtype dtype_of<std::int64_t>() {
  return Dtype::int64;
}

}  // namespace tg
