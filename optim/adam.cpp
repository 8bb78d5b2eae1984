#include "optim/adam.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/dispatch.hpp"

namespace tg::optim {
namespace {
AdamOptions as_adam(const AdamWOptions& o) {
  return {.lr = o.lr,
          .betas = o.betas,
          .eps = o.eps,
          .weight_decay = o.weight_decay,
          .amsgrad = o.amsgrad,
          .formula = o.formula};
}
}  // namespace

Adam::Adam(TensorList params, AdamOptions options)
    : Adam("Adam", std::vector<ParamGroupOptions>{{.params = std::move(params)}}, options, false) {}
Adam::Adam(std::vector<ParamGroupOptions> groups, AdamOptions options)
    : Adam("Adam", std::move(groups), options, false) {}

Adam::Adam(std::string name, std::vector<ParamGroupOptions> groups, AdamOptions options, bool decoupled)
    : Optimizer(std::move(name), std::move(groups), options.lr, options.weight_decay),
      options_(options),
      eps_(options.eps.value_or(options.formula == AdamOptions::Formula::keras ? 1e-7 : 1e-8)),
      decoupled_(decoupled) {
  check_range("betas.first", options.betas.first, 0.0, 1.0);
  check_range("betas.second", options.betas.second, 0.0, 1.0);
  check_range("eps", eps_, 0.0);
}

AdamW::AdamW(TensorList params, AdamWOptions options)
    : Adam("AdamW", std::vector<ParamGroupOptions>{{.params = std::move(params)}}, as_adam(options), true) {}
AdamW::AdamW(std::vector<ParamGroupOptions> groups, AdamWOptions options)
    : Adam("AdamW", std::move(groups), as_adam(options), true) {}

std::vector<std::string> Adam::buffer_names() const {
  if (options_.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

void Adam::update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) {
  const double b1 = options_.betas.first, b2 = options_.betas.second;
  const auto t = static_cast<double>(state.step);
  const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
  const bool keras = options_.formula == AdamOptions::Formula::keras;
  detail::dispatch_float(param.dtype(), name(), [&](auto type) {
    using T = decltype(type);
    const std::size_t n = param.numel();
    T* m = buffer(state, "exp_avg", param).template mutable_array<T>().data();
    T* v = buffer(state, "exp_avg_sq", param).template mutable_array<T>().data();
    T* vmax = options_.amsgrad ? buffer(state, "max_exp_avg_sq", param).template mutable_array<T>().data() : nullptr;
    T* p = param.mutable_array<T>().data();
    const T* g = grad.data<T>();
    const T eps = T(eps_), one_minus_b1 = T(1.0 - b1), one_minus_b2 = T(1.0 - b2);
    const bool l2 = !decoupled_ && group.weight_decay != 0;
    const T wd = T(group.weight_decay);
    if (decoupled_ && group.weight_decay != 0) {
      const T shrink = T(1.0 - group.lr * group.weight_decay);
      for (std::size_t i = 0; i < n; ++i) p[i] *= shrink;
    }
    if (keras) {
      // Keras: moments as m += (g - m)(1 - b1), the bias correction folded into the rate.
      const T lr_t = T(group.lr * std::sqrt(bc2) / bc1);
      for (std::size_t i = 0; i < n; ++i) {
        const T gi = l2 ? g[i] + wd * p[i] : g[i];
        m[i] += (gi - m[i]) * one_minus_b1;
        v[i] += (gi * gi - v[i]) * one_minus_b2;
        T vi = v[i];
        if (vmax) vi = vmax[i] = std::max(vmax[i], v[i]);
        p[i] -= m[i] * lr_t / (std::sqrt(vi) + eps);
      }
    } else {
      // PyTorch: eps added after dividing sqrt(v) by sqrt(1 - b2^t).
      const T b1t = T(b1), b2t = T(b2), bc2_sqrt = T(std::sqrt(bc2)), step_size = T(group.lr / bc1);
      for (std::size_t i = 0; i < n; ++i) {
        const T gi = l2 ? g[i] + wd * p[i] : g[i];
        m[i] = m[i] * b1t + gi * one_minus_b1;
        v[i] = v[i] * b2t + one_minus_b2 * gi * gi;
        T vi = v[i];
        if (vmax) vi = vmax[i] = std::max(vmax[i], v[i]);
        const T denom = std::sqrt(vi) / bc2_sqrt + eps;
        p[i] = p[i] - step_size * (m[i] / denom);
      }
    }
  });
}

}  // namespace tg::optim
