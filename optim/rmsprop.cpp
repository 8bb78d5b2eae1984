#include "tapegrad/optim/rmsprop.hpp"

#include <cmath>

#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"

namespace tg::optim {

RMSprop::RMSprop(TensorList params, RMSpropOptions options)
    : RMSprop(std::vector<ParamGroupOptions>{{.params = std::move(params)}}, options) {}

RMSprop::RMSprop(std::vector<ParamGroupOptions> groups, RMSpropOptions options)
    : Optimizer("RMSprop", std::move(groups), options.lr, options.weight_decay), options_(options) {
  check_range("alpha", options.alpha, 0.0);
  check_range("eps", options.eps, 0.0);
  check_range("momentum", options.momentum, 0.0);
}

std::vector<std::string> RMSprop::buffer_names() const {
  std::vector<std::string> names{"square_avg"};
  if (options_.momentum > 0) names.emplace_back("momentum_buffer");
  if (options_.centered) names.emplace_back("grad_avg");
  return names;
}

void RMSprop::update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) {
  dispatch_float(param.dtype(), "RMSprop", [&](auto type) {
    using T = decltype(type);
    const std::size_t n = param.numel();
    T* s = buffer(state, "square_avg", param).template mutable_array<T>().data();
    T* b = options_.momentum > 0 ? buffer(state, "momentum_buffer", param).template mutable_array<T>().data() : nullptr;
    T* a = options_.centered ? buffer(state, "grad_avg", param).template mutable_array<T>().data() : nullptr;
    T* p = param.mutable_array<T>().data();
    const T* g = grad.data<T>();
    const T alpha = T(options_.alpha), one_minus_alpha = T(1.0 - options_.alpha), eps = T(options_.eps);
    const T lr = T(group.lr), wd = T(group.weight_decay), mu = T(options_.momentum);
    const bool l2 = group.weight_decay != 0;
    for (std::size_t i = 0; i < n; ++i) {
      const T gi = l2 ? g[i] + wd * p[i] : g[i];
      s[i] = s[i] * alpha + one_minus_alpha * gi * gi;
      T d;
      if (a) {
        a[i] = a[i] * alpha + one_minus_alpha * gi;
        d = std::sqrt(s[i] - a[i] * a[i]) + eps;
      } else {
        d = std::sqrt(s[i]) + eps;
      }
      if (b) {
        b[i] = b[i] * mu + gi / d;
        p[i] = p[i] - lr * b[i];
      } else {
        p[i] = p[i] - lr * (gi / d);
      }
    }
  });
}

}  // namespace tg::optim
