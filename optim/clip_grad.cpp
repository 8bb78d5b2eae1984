#include "tapegrad/optim/clip_grad.hpp"

#include <algorithm>
#include <cmath>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"

namespace tg::optim {

double clip_grad_norm_(const TensorList& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  TG_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got {}", max_norm);
  TG_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be > 0 (or infinity), got {}", norm_type);
  const bool inf = std::isinf(norm_type);
  double acc = 0.0;  // max |g| for infinity, else sum |g|^p
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    dispatch_float(g.dtype(), "clip_grad_norm_", [&](auto type) {
      using T = decltype(type);
      const T* d = g.data<T>();
      for (std::size_t i = 0, n = g.numel(); i < n; ++i) {
        const double a = std::abs(double(d[i]));
        if (inf)
          acc = std::max(acc, a);
        else if (norm_type == 2.0)
          acc += a * a;
        else
          acc += std::pow(a, norm_type);
      }
    });
  }
  const double total = inf ? acc : norm_type == 2.0 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type);
  TG_CHECK(!error_if_nonfinite || std::isfinite(total),
           "clip_grad_norm_: the total norm of the gradients is {}; set error_if_nonfinite=false to clip anyway",
           total);
  const double coef = max_norm / (total + 1e-6);
  if (coef >= 1.0) return total;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) g.mul_(coef);
  }
  return total;
}

void clip_grad_value_(const TensorList& params, double clip_value) {
  TG_CHECK(clip_value >= 0, "clip_grad_value_: clip_value must be >= 0, got {}", clip_value);
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    dispatch_float(g.dtype(), "clip_grad_value_", [&](auto type) {
      using T = decltype(type);
      const T c = T(clip_value);
      for (T& v : g.mutable_array<T>()) v = std::clamp(v, -c, c);
    });
  }
}

}  // namespace tg::optim
