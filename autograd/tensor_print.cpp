// Printing a Tensor as PyTorch does: tensor([[1.0000, 2.5000], [3.0000, 4.0000]], dtype=float64).
// One element format for the whole tensor (whole numbers as "3.", else 4 decimals, or scientific
// when the magnitudes are far apart), right-aligned to one width; rows on lines of their own; more
// than 1000 elements summarized with "..." (3 at each edge), as torch's printing options default.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/tensor.hpp"

namespace tg {
namespace {

constexpr std::size_t summarize_above = 1000;  // elements
constexpr std::size_t edge_items = 3;
constexpr std::size_t line_width = 80;

// How every element of one tensor is written.
class ElementFormat {
 public:
  explicit ElementFormat(const std::vector<long double>& values, bool integer_dtype) : integer_(integer_dtype) {
    long double max_abs = 0, min_abs = 0;
    bool any = false, whole = true;
    for (long double v : values) {
      if (!std::isfinite(v)) continue;
      whole = whole && v == std::ceil(v);
      if (v == 0) continue;
      const long double a = std::abs(v);
      max_abs = any ? std::max(max_abs, a) : a;
      min_abs = any ? std::min(min_abs, a) : a;
      any = true;
    }
    if (!integer_) {
      whole_ = whole && max_abs <= 1e8;
      scientific_ = any && (whole ? max_abs > 1e8 : (max_abs / min_abs > 1000 || max_abs > 1e8 || min_abs < 1e-4));
    }
    // As torch: floats align to the widest nonzero finite value (nan, inf and 0 just fit in).
    for (long double v : values)
      if (integer_ || (std::isfinite(v) && v != 0)) width_ = std::max(width_, plain(v).size());
  }
  std::string operator()(long double v) const {
    std::string s = plain(v);
    return std::string(width_ - std::min(width_, s.size()), ' ') + s;
  }
  std::size_t width() const { return width_; }

 private:
  std::string plain(long double v) const {
    if (integer_) return fmt::format("{}", static_cast<std::int64_t>(v));
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (scientific_) return fmt::format("{:.4e}", v);
    if (whole_) return fmt::format("{:.0f}.", v);
    return fmt::format("{:.4f}", v);
  }
  bool integer_;
  bool whole_ = false, scientific_ = false;
  std::size_t width_ = 0;
};

// The indices of an axis of size n that are printed: all, or the edges around a "...".
std::vector<std::size_t> shown(std::size_t n, bool summarize) {
  std::vector<std::size_t> out;
  if (!summarize || n <= 2 * edge_items) {
    for (std::size_t i = 0; i < n; ++i) out.push_back(i);
  } else {
    for (std::size_t i = 0; i < edge_items; ++i) out.push_back(i);
    out.push_back(n);  // stands for "..."
    for (std::size_t i = n - edge_items; i < n; ++i) out.push_back(i);
  }
  return out;
}

struct Printer {
  const std::vector<long double>& values;  // all elements, row-major
  const Shape& shape;
  const ElementFormat& format;
  bool summarize;
  std::size_t indent;  // columns before the outermost '['

  // The sub-tensor at axis `dim` starting at flat `offset` (its elements `stride` apart).
  void print(std::ostream& os, std::size_t dim, std::size_t offset, std::size_t stride) const {
    const std::size_t n = shape[dim], inner = stride / n;
    const std::vector<std::size_t> idx = shown(n, summarize);
    os << '[';
    if (dim + 1 == shape.size()) {
      // A row: wrapped to the line width, continuation lines aligned after the brackets.
      const std::size_t per_line =
          std::max<std::size_t>(1, (line_width - std::min(line_width - 1, indent + dim + 1)) / (format.width() + 2));
      for (std::size_t k = 0; k < idx.size(); ++k) {
        if (k > 0) os << (k % per_line == 0 ? ",\n" + std::string(indent + dim + 1, ' ') : ", ");
        os << (idx[k] == n ? std::string(" ...") : format(values[offset + idx[k]]));
      }
    } else {
      // Sub-tensors separated by as many newlines as axes remain below, aligned under the '['.
      const std::string separator =
          "," + std::string(shape.size() - dim - 1, '\n') + std::string(indent + dim + 1, ' ');
      for (std::size_t k = 0; k < idx.size(); ++k) {
        if (k > 0) os << separator;
        if (idx[k] == n)
          os << "...";
        else
          print(os, dim + 1, offset + idx[k] * inner, inner);
      }
    }
    os << ']';
  }
};

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const Shape shape = t.shape();
  std::vector<long double> values(t.numel());
  dispatch_all(t.dtype(), [&](auto z) {
    using T = decltype(z);
    const T* p = t.data<T>();
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<long double>(p[i]);
  });
  const ElementFormat format(values, t.dtype() == int64);
  std::ostringstream body;
  if (values.empty()) {
    body << "[]";
  } else if (shape.empty()) {
    body << format(values[0]);
  } else {
    const Printer printer{values, shape, format, values.size() > summarize_above, std::string("tensor(").size()};
    printer.print(body, 0, 0, values.size());
  }
  os << "tensor(" << body.str();
  if (values.empty() && shape != Shape{0}) {
    os << ", size=(";
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << (shape.size() == 1 ? ",)" : ")");
  }
  // As torch: the default dtypes (float32, int64) are not named.
  if (t.dtype() == float64) os << ", dtype=float64";
  if (t.grad_fn())
    os << ", grad_fn=<" << t.grad_fn()->name() << ">";
  else if (t.requires_grad())
    os << ", requires_grad=True";
  return os << ")";
}

}  // namespace tg
