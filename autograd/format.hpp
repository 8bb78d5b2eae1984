#pragma once
// fmt's formatters for Dtype and Tensor (opt-in: fmt is not part of tapegrad.hpp; autograd/check.hpp
// includes this): fmt::format("{}", tg::float32) is "float32", a Tensor prints as operator<<.
#include <fmt/core.h>

#include <string_view>

#include "tapegrad/autograd/dtype.hpp"
#include "tapegrad/autograd/tensor.hpp"

/// Lets fmt print a Dtype by name.
template <>
struct fmt::formatter<tg::Dtype> : fmt::formatter<std::string_view> {
  /// Writes dtype_name(d).
  auto format(tg::Dtype d, format_context& ctx) const -> format_context::iterator;
};

/// Lets fmt print a Tensor as operator<< does.
template <>
struct fmt::formatter<tg::Tensor> : fmt::formatter<std::string_view> {
  /// Writes the tensor as operator<< prints it.
  auto format(const tg::Tensor& t, format_context& ctx) const -> format_context::iterator;
};
