#pragma once
// TG_CHECK, the one checking macro every layer uses on bad input, from the kernels up: it throws
// tg::Error with a message formatted by fmt (autograd/check.hpp is where users include it from).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <utility>

#include "tapegrad/kernels/error.hpp"

namespace tg::detail {

/// Throws tg::Error with the fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace tg::detail

/// Throws tg::Error with a fmt-formatted message when `cond` is false; the message arguments
/// are evaluated only on failure.
#define TG_CHECK(cond, ...)                       \
  do {                                            \
    if (!(cond)) ::tg::detail::fail(__VA_ARGS__); \
  } while (0)
