#pragma once
// nn::Module: the base of every layer and model. Named registration of parameters, buffers and
// child modules gives stable dotted names ("features.conv1.weight") for optimizers and files.
#include <concepts>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/nn/regularizer.hpp"

namespace tg::nn {

class Module;
/// (dotted name, tensor) pairs in registration order: "0.weight", "0.bias", ...
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
/// (name, child module) pairs in registration order.
using NamedModules = std::vector<std::pair<std::string, std::shared_ptr<Module>>>;

/// A building block with parameters (trained), buffers (saved but not trained, e.g. running
/// statistics) and child modules, all registered under names. Modules are held by
/// std::shared_ptr; copying a Module object shares its parameters (as copying a Tensor does).
///
/// Subclasses register what they own in their constructor and keep the returned handles:
///   weight_ = register_parameter("weight", tg::zeros({out, in}));
///   fc1_ = register_module("fc1", std::make_shared<Linear>(784, 128));
/// A member and its registry entry share one TensorImpl; assigning a new Tensor to the member
/// afterwards would detach it from the registry (use copy_ to change values).
class Module {
 public:
  Module() = default;
  Module(const Module&) = default;
  Module(Module&&) = default;
  Module& operator=(const Module&) = default;
  Module& operator=(Module&&) = default;
  virtual ~Module() = default;

  /// The computation: x → y (shapes are the layer's contract).
  virtual Tensor forward(const Tensor& x) = 0;
  /// forward(x).
  Tensor operator()(const Tensor& x) { return forward(x); }

  /// What forward_chain computed: the output, and how many of the following layers it took.
  struct Chained {
    /// The output of this layer and of the ones it took.
    Tensor output;
    /// How many of the following layers it took (0: this layer alone).
    std::size_t consumed = 0;
  };
  /// This layer and, where it knows one fused op for them, some of the layers that follow it in a
  /// container (`next`, in order; nn::Sequential asks each layer). The default runs forward(x)
  /// and takes none; a Conv2d with a relu takes a MaxPool2d after it, and a Flatten(1, -1 or 3)
  /// after that (tg::conv2d_relu_max_pool2d: the same values and gradients, without the full-size
  /// activation). A layer fuses only while it is exactly its own class, and takes only layers that
  /// are exactly theirs (is_exactly): a subclass may override forward, and its forward then runs.
  virtual Chained forward_chain(const Tensor& x, std::span<const std::shared_ptr<Module>> next);

  /// Whether forward ends in a softmax over the last axis that forward_logits can leave out
  /// (Softmax; a Linear with a softmax activation; a Sequential whose last layer has one). Model
  /// then trains on the logits with the fused, stable cross-entropy.
  virtual bool has_logits() const { return false; }
  /// forward(x) without its final softmax: the logits. Throws unless has_logits().
  virtual Tensor forward_logits(const Tensor& x);

  /// Whether this object is exactly a T, not a subclass of T (whose forward may differ).
  template <class T>
  bool is_exactly() const {
    return typeid(*this) == typeid(T);
  }

  /// Type name shown by repr ("Linear"); by default the class name without namespaces.
  virtual std::string name() const;
  /// The arguments shown by repr ("in_features=5408, out_features=10, bias=true").
  virtual std::string extra_repr() const { return {}; }
  /// One line: name(extra_repr), e.g. "Linear(in_features=5408, out_features=10, bias=true)".
  std::string repr() const;
  /// Indented tree of this module and its descendants, PyTorch style.
  std::string to_string() const;

  /// Parameters of this module, then (recurse) of each child in turn, in registration order;
  /// a tensor registered twice (tied weights) appears once, under its first name.
  TensorList parameters(bool recurse = true) const;
  /// The same with dotted names: "0.weight", "features.conv1.bias".
  NamedTensors named_parameters(bool recurse = true) const;
  /// Buffers of this module, then (recurse) of each child in turn, in registration order.
  TensorList buffers(bool recurse = true) const;
  /// The same with dotted names: "1.running_mean".
  NamedTensors named_buffers(bool recurse = true) const;
  /// Direct children in registration order.
  const NamedModules& named_children() const { return children_; }
  /// The direct children, without their names.
  std::vector<std::shared_ptr<Module>> children() const;
  /// Number of trainable scalar values (parameters that require grad).
  std::size_t num_parameters() const;

  /// Sets training mode on this module and every descendant (Dropout, BatchNorm differ).
  virtual void train(bool on = true);
  /// Same as train(false).
  void eval() { train(false); }
  /// Whether the module is in training mode (the default) rather than eval mode.
  bool is_training() const { return training_; }

  /// Sum of the weight penalties of this module and its descendants (Keras's model.losses), a
  /// 0-d tensor to add to the training loss; undefined when no layer has a regularizer.
  Tensor regularization_loss() const;

  /// Drops the gradients of all parameters (as PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

  /// Converts float parameters and buffers (and their gradients) to `dtype` in place: the
  /// Tensor handles stay the same, so references held elsewhere see the new values. Optimizer
  /// state is not converted: convert the model before creating its optimizer.
  void to(Dtype dtype);

 protected:
  /// Registers a parameter (requires_grad is set unless `requires_grad` is false) and returns
  /// the handle to keep in a member.
  Tensor register_parameter(std::string name, Tensor value, bool requires_grad = true);
  /// Registers a buffer: saved and converted with the module, never trained.
  Tensor register_buffer(std::string name, Tensor value);
  /// Registers a child module and returns it.
  template <class M>
  requires std::derived_from<M, Module> std::shared_ptr<M> register_module(std::string name,
                                                                           std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }
  /// Adds regularizer's penalty on `parameter` (one of this module's) to regularization_loss().
  void add_regularizer(const Tensor& parameter, const Regularizer& regularizer);
  /// Registers a child held as a base pointer (what register_module does).
  void add_child(std::string name, std::shared_ptr<Module> module);

 private:
  void collect(const std::string& prefix, bool recurse, bool buffers, NamedTensors& out,
               std::vector<const TensorImpl*>& seen) const;
  void check_new_name(const std::string& name) const;
  void print_tree(std::ostream& os, int indent) const;

  NamedTensors parameters_;
  NamedTensors buffers_;
  NamedModules children_;
  std::vector<std::pair<Tensor, Regularizer>> regularizers_;
  bool training_ = true;
};

/// Prints the module tree (to_string()).
std::ostream& operator<<(std::ostream& os, const Module& m);

/// A type-erasing handle to any Module, so containers can be built from layers by value or by
/// shared_ptr: `Sequential{Linear(4, 8), ReLU(), std::make_shared<Linear>(8, 1)}`.
class AnyModule {
 public:
  /// Takes ownership of a copy (or the moved value) of `module`.
  template <class M>
  requires std::derived_from<std::remove_cvref_t<M>, Module> AnyModule(M&& module)
      : ptr_(std::make_shared<std::remove_cvref_t<M>>(std::forward<M>(module))) {}
  /// Shares `module`.
  template <class M>
  requires std::derived_from<M, Module> AnyModule(std::shared_ptr<M> module) : ptr_(std::move(module)) {
    if (ptr_ == nullptr) throw Error("AnyModule: got a null module pointer");
  }
  /// The module held.
  const std::shared_ptr<Module>& ptr() const { return ptr_; }

 private:
  std::shared_ptr<Module> ptr_;
};

}  // namespace tg::nn
