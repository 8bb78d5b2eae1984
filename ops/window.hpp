#pragma once
// Sizes of sliding windows (kernel, stride, padding, dilation) shared by convolution and pooling.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tapegrad/autograd/error.hpp"

namespace tg {

/// A (height, width) pair; one number means the same for both axes: `.stride = 2` or `{2, 1}`.
/// Signed so that a negative value reaches the op's check and gets a clear error.
struct Size2 {
  /// Height: the first spatial axis.
  std::int64_t h = 0;
  /// Width: the second spatial axis.
  std::int64_t w = 0;
  /// The same size for both axes (implicit, so that `.stride = 2` works).
  constexpr Size2(std::int64_t both) : h(both), w(both) {}
  /// Height and width apart: `{2, 1}`.
  constexpr Size2(std::int64_t height, std::int64_t width) : h(height), w(width) {}
};

/// A Size2 that may be left unset (pooling's stride, which then defaults to the kernel):
/// `.stride = 2`, `.stride = {2, 1}` or nothing. It is a std::optional<Size2>, with the
/// constructors that braces and plain numbers need.
struct OptionalSize2 : std::optional<Size2> {
  constexpr OptionalSize2() = default;
  /// Unset.
  constexpr OptionalSize2(std::nullopt_t) {}
  /// Set, the same for both axes.
  constexpr OptionalSize2(std::int64_t both) : std::optional<Size2>(Size2(both)) {}
  /// Set, height and width apart.
  constexpr OptionalSize2(std::int64_t height, std::int64_t width) : std::optional<Size2>(Size2(height, width)) {}
  /// Set to `size`.
  constexpr OptionalSize2(Size2 size) : std::optional<Size2>(size) {}
  /// From a std::optional<Size2>: unset stays unset.
  constexpr OptionalSize2(const std::optional<Size2>& size) : std::optional<Size2>(size) {}
};

/// Zero padding of a 2-D window op: explicit sizes ({ph, pw}, applied on both sides) or a Keras
/// word. "valid" means no padding. "same" pads so that output = ceil(input / stride); the total
/// padding of an axis is max((out-1)*stride + (k-1)*dilation + 1 - in, 0), and when it is odd
/// the extra row/column goes to the bottom/right, as in Keras/TensorFlow and PyTorch.
struct Padding {
  /// Explicit sizes, or one of the Keras words.
  enum class Kind : std::uint8_t { explicit_size, valid, same };
  /// Which of them this padding is.
  Kind kind = Kind::explicit_size;
  Size2 size = 0;  ///< padding per side, for Kind::explicit_size

  /// `both` rows and columns of zeros on every side.
  constexpr Padding(std::int64_t both) : size(both) {}
  /// `height` rows above and below, `width` columns left and right.
  constexpr Padding(std::int64_t height, std::int64_t width) : size(height, width) {}
  /// "valid" or "same" (a string literal, so that `.padding = "same"` works).
  template <std::size_t N>
  Padding(const char (&word)[N]) : Padding(std::string_view(word, N - 1)) {}
  /// "valid" or "same"; any other word throws tg::Error.
  explicit Padding(std::string_view word) {
    if (word == "valid")
      kind = Kind::valid;
    else if (word == "same")
      kind = Kind::same;
    else
      throw Error("padding: expected \"valid\", \"same\" or sizes {ph, pw}, got \"" + std::string(word) + "\"");
  }
};

}  // namespace tg
