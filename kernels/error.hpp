#pragma once
// tg::Error and the one checking macro every layer uses on bad input, from the kernels up (a
// public header: autograd/error.hpp is where users include it from).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace tg {

/// Thrown for every bad input: the message names the op, module or file, the shapes and what
/// was expected.
class Error : public std::runtime_error {
 public:
  /// Takes the message, as std::runtime_error does.
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}
}  // namespace detail

}  // namespace tg

/// Throws tg::Error with a fmt-formatted message when `cond` is false; the message arguments
/// are evaluated only on failure.
#define TG_CHECK(cond, ...)                       \
  do {                                            \
    if (!(cond)) ::tg::detail::fail(__VA_ARGS__); \
  } while (0)
