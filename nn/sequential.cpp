#include "tapegrad/nn/sequential.hpp"

#include <string>

#include "tapegrad/autograd/check.hpp"

namespace tg::nn {

Sequential::Sequential(std::initializer_list<AnyModule> layers) {
  for (const AnyModule& layer : layers) add(layer);
}

Sequential& Sequential::add(AnyModule layer) {
  add_child(std::to_string(layers_.size()), layer.ptr());
  layers_.push_back(layer.ptr());
  return *this;
}

Tensor Sequential::forward(const Tensor& x) { return forward_first(x, layers_.size()); }

Tensor Sequential::forward_first(const Tensor& x, std::size_t count) {
  TG_CHECK(count <= layers_.size(), "Sequential::forward_first: {} layers asked for, the model has {}", count,
           layers_.size());
  Tensor y = x;
  for (std::size_t i = 0; i < count;) {
    try {
      // Each layer may compute some of the ones after it in one fused op (Module::forward_chain).
      const std::span<const std::shared_ptr<Module>> next(layers_.data() + i + 1, count - i - 1);
      Chained step = layers_[i]->forward_chain(y, next);
      y = std::move(step.output);
      i += 1 + step.consumed;
    } catch (const Error& e) {
      throw Error(fmt::format("Sequential layer {}: {}", i, e.what()));
    }
  }
  return y;
}

bool Sequential::has_logits() const {
  // A subclass may override forward: only Sequential's own forward is known to end in its last layer.
  return is_exactly<Sequential>() && !layers_.empty() && layers_.back()->has_logits();
}

Tensor Sequential::forward_logits(const Tensor& x) {
  TG_CHECK(has_logits(), "Sequential::forward_logits: the last layer does not end in a softmax it can leave out");
  const Tensor h = forward_first(x, layers_.size() - 1);
  try {
    return layers_.back()->forward_logits(h);
  } catch (const Error& e) {
    throw Error(fmt::format("Sequential layer {}: {}", layers_.size() - 1, e.what()));
  }
}

const std::shared_ptr<Module>& Sequential::operator[](std::size_t i) const {
  TG_CHECK(i < layers_.size(), "Sequential: index {} out of range for {} layers", i, layers_.size());
  return layers_[i];
}

void Sequential::fail_not_type(std::size_t i) const {
  detail::fail("Sequential::at: layer {} is a {}, not the type asked for", i, (*this)[i]->name());
}

}  // namespace tg::nn
