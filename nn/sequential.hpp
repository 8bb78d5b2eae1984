#pragma once
// nn::Sequential: layers applied one after the other, as Keras's Sequential([...]).
#include <memory>
#include <vector>

#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// Runs its layers in order; children are named "0", "1", ... (so parameters are "0.weight").
///   nn::Sequential model{nn::Conv2d(1, 32, 3), nn::ReLU(), nn::Flatten(), nn::Linear(21632, 10)};
class Sequential : public Module {
 public:
  Sequential() = default;
  /// The layers in order, each by value or by shared_ptr.
  Sequential(std::initializer_list<AnyModule> layers);

  /// Appends a layer (by value or shared_ptr); returns *this for chaining.
  Sequential& add(AnyModule layer);
  /// x → layer_n(...layer_1(x)); an error inside a layer is prefixed with its index. Each layer
  /// may run some of the ones after it as one fused op (Module::forward_chain: a Conv2d with a
  /// relu takes a MaxPool2d and a Flatten after it), with the same values and gradients.
  Tensor forward(const Tensor& x) override;
  /// The same over the first `count` layers only.
  Tensor forward_first(const Tensor& x, std::size_t count);
  /// Whether the last layer ends in a softmax it can leave out (Softmax, or a Linear with a
  /// softmax activation).
  bool has_logits() const override;
  /// forward(x) with the last layer's softmax left out.
  Tensor forward_logits(const Tensor& x) override;

  /// Number of layers.
  std::size_t size() const { return layers_.size(); }
  /// Whether it has no layer.
  bool empty() const { return layers_.empty(); }
  /// The i-th layer; throws when out of range.
  const std::shared_ptr<Module>& operator[](std::size_t i) const;
  /// The i-th layer as its concrete type; throws when out of range or of another type.
  template <class M>
  std::shared_ptr<M> at(std::size_t i) const {
    auto typed = std::dynamic_pointer_cast<M>((*this)[i]);
    if (typed == nullptr) fail_not_type(i);
    return typed;
  }
  /// The layers (shared_ptr<Module>) in order, for range-for.
  auto begin() const { return layers_.begin(); }
  /// The end of the layers.
  auto end() const { return layers_.end(); }

 private:
  [[noreturn]] void fail_not_type(std::size_t i) const;  // at<M>'s error: layer i is not an M
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace tg::nn
