#include "tapegrad/autograd/dtype.hpp"

#include <fmt/format.h>

#include <ostream>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"

namespace tg {

std::ostream& operator<<(std::ostream& os, Dtype d) { return os << dtype_name(d); }

void detail::fail_not_floating(std::string_view op, Dtype d) {
  detail::fail("{}: expected a float32 or float64 tensor, got {}", op, d);
}

}  // namespace tg

auto fmt::formatter<tg::Dtype>::format(tg::Dtype d, format_context& ctx) const -> format_context::iterator {
  return fmt::formatter<std::string_view>::format(tg::dtype_name(d), ctx);
}
