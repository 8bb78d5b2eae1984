#include "nn/sequential.hpp"

#include <string>

namespace tg::nn {

Sequential::Sequential(std::initializer_list<AnyModule> layers) {
  for (const AnyModule& layer : layers) add(layer);
}

Sequential& Sequential::add(AnyModule layer) {
  add_child(std::to_string(layers_.size()), layer.ptr());
  layers_.push_back(layer.ptr());
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    try {
      y = layers_[i]->forward(y);
    } catch (const Error& e) {
      throw Error(fmt::format("Sequential layer {}: {}", i, e.what()));
    }
  }
  return y;
}

const std::shared_ptr<Module>& Sequential::operator[](std::size_t i) const {
  TG_CHECK(i < layers_.size(), "Sequential: index {} out of range for {} layers", i, layers_.size());
  return layers_[i];
}

}  // namespace tg::nn
