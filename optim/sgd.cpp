#include "tapegrad/optim/sgd.hpp"

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"

namespace tg::optim {

SGD::SGD(TensorList params, SGDOptions options)
    : SGD(std::vector<ParamGroupOptions>{{.params = std::move(params)}}, options) {}

SGD::SGD(std::vector<ParamGroupOptions> groups, SGDOptions options)
    : Optimizer("SGD", std::move(groups), options.lr, options.weight_decay), options_(options) {
  check_range("momentum", options.momentum, 0.0);
  check_range("dampening", options.dampening, 0.0);
  TG_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
           "SGD: nesterov needs momentum > 0 and dampening 0, got momentum {} and dampening {}", options.momentum,
           options.dampening);
}

std::vector<std::string> SGD::buffer_names() const {
  if (options_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void SGD::update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) {
  const bool first = state.step == 1;
  dispatch_float(param.dtype(), "SGD", [&](auto type) {
    using T = decltype(type);
    const std::size_t n = param.numel();
    T* p = param.mutable_array<T>().data();
    const T* g = grad.data<T>();
    const T wd = T(group.weight_decay), lr = T(group.lr);
    const T momentum = T(options_.momentum), keep = T(1.0 - options_.dampening);
    T* buf =
        options_.momentum != 0 ? buffer(state, "momentum_buffer", param).template mutable_array<T>().data() : nullptr;
    for (std::size_t i = 0; i < n; ++i) {
      T d = group.weight_decay != 0 ? g[i] + wd * p[i] : g[i];
      if (buf) {
        buf[i] = first ? d : momentum * buf[i] + keep * d;
        d = options_.nesterov ? d + momentum * buf[i] : buf[i];
      }
      p[i] = p[i] - lr * d;
    }
  });
}

}  // namespace tg::optim
