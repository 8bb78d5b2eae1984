#include "nn/sequential.hpp"

#include <string>
#include <typeinfo>

#include "nn/conv.hpp"
#include "nn/flatten.hpp"
#include "nn/pooling.hpp"

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
  for (std::size_t i = 0; i < count; ++i) {
    try {
      // Conv2d then MaxPool2d (Keras's Conv2D → MaxPooling2D): one op, with the same values and
      // gradients as the two layers, that need not write the full-size activation. Only the
      // layers themselves: a subclass may override forward.
      // A Flatten after them joins too: the op writes [N, features] directly, saving a copy of
      // the activation each way.
      if (i + 1 < count && typeid(*layers_[i]) == typeid(Conv2d) && typeid(*layers_[i + 1]) == typeid(MaxPool2d)) {
        const auto& pool = static_cast<const MaxPool2d&>(*layers_[i + 1]);
        const bool flatten = i + 2 < count && typeid(*layers_[i + 2]) == typeid(Flatten) &&
                             static_cast<const Flatten&>(*layers_[i + 2]).flattens_features_of_4d();
        y = static_cast<Conv2d&>(*layers_[i]).forward_max_pool(y, pool.options(), flatten);
        i += flatten ? 2 : 1;
        continue;
      }
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
