#pragma once
// Graph nodes and the public way to define a differentiable op: compute the result, then
// record() it with the backward function right below.
//
//   // d(a*b) = g*b, g*a
//   Tensor mul(const Tensor& a, const Tensor& b) {
//     Tensor out = ...;  // forward
//     return record({.name = "mul", .inputs = {a, b}, .saved = {a, b}}, out,
//                   [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
//                     return {g * ctx.saved(1), g * ctx.saved(0)};
//                   });
//   }
//
// Backward functions must be written with differentiable ops (so create_graph works), may
// return gradients in the output's broadcast shape (the engine sums them back to each input's
// shape), and return an undefined Tensor for inputs that need none. They must capture no
// Tensor: tensors backward needs go through `saved` (version-checked, freed after backward).
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "tapegrad/autograd/tensor.hpp"

namespace tg {

class BackwardContext;
/// grad_out (d loss / d output) → one gradient per input.
using BackwardFn = std::function<TensorList(const BackwardContext&, const Tensor& grad_out)>;

/// A tensor kept for backward, with the storage version it had when saved.
struct SavedTensor {
  /// The tensor as the op saved it.
  Tensor tensor;
  /// Its storage version when saved; BackwardContext::saved throws if it has changed since.
  std::uint64_t version = 0;
};

/// Where a node's gradient goes: another node, or a leaf that accumulates into .grad.
struct Edge {
  std::shared_ptr<Node> node;        // the input's grad_fn, or null for a leaf
  std::shared_ptr<TensorImpl> leaf;  // the leaf input, or null
  Shape shape;                       // the input's shape (gradients are summed back to it)
  /// The input's dtype (gradients are converted to it).
  Dtype dtype = float32;
  /// Whether the edge leads anywhere, i.e. the input needs a gradient.
  bool defined() const { return node || leaf; }
};

/// One recorded op: its inputs' edges, its saved tensors and its backward function. Owns its
/// inputs, never its output (the output's value is saved as storage, re-wrapped on demand).
class Node : public std::enable_shared_from_this<Node> {
 public:
  /// Made by record(): the op's name, one edge per input, the saved tensors, the output's storage (when saved),
  /// offset, shape and strides, and the backward function.
  Node(std::string name, std::vector<Edge> edges, std::vector<SavedTensor> saved, std::shared_ptr<Storage> output,
       std::size_t output_offset, Shape output_shape, Strides output_strides, BackwardFn backward);
  /// Frees the graph behind it iteratively, so that a long chain of nodes cannot overflow the stack.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// The op's name (OpSpec::name), as errors and grad_fn show it.
  const std::string& name() const { return name_; }
  /// Creation order over the process; backward runs later nodes first.
  std::uint64_t sequence_nr() const { return sequence_nr_; }
  /// One edge per input of the op, in order.
  const std::vector<Edge>& edges() const { return edges_; }
  /// Whether release() has run (backward through this node then throws).
  bool released() const { return released_; }

  /// Runs backward for gradient `grad_out` of the output.
  TensorList apply(const Tensor& grad_out);
  /// Frees saved tensors and the backward function (after a backward without retain_graph).
  void release();

 private:
  friend class BackwardContext;
  std::string name_;
  std::uint64_t sequence_nr_;
  std::vector<Edge> edges_;
  std::vector<SavedTensor> saved_;
  std::shared_ptr<Storage> output_;  // non-null when the op saved its output
  std::size_t output_offset_;        // where the output starts in output_
  Shape output_shape_;
  Strides output_strides_;  // empty unless the output is a strided view
  BackwardFn backward_;
  bool released_ = false;
};

/// What a backward function can see: its saved tensors, its output, which inputs need grads.
class BackwardContext {
 public:
  /// The context of `node`'s backward (the engine makes it).
  explicit BackwardContext(Node& node) : node_(node) {}
  /// The i-th saved tensor; throws if it was modified in place after being saved.
  const Tensor& saved(std::size_t i) const;
  /// The op's output (when recorded with save_output), linked to this node for create_graph.
  Tensor output() const;
  /// Whether input i needs a gradient.
  bool needs_grad(std::size_t i) const { return node_.edges_.at(i).defined(); }
  /// Whether this backward is itself being recorded (backward or grad with create_graph): it
  /// must then compute with differentiable ops, so that gradients of gradients work. Otherwise
  /// it may run a fused kernel that records nothing, as most ops' backward does:
  /// `return {ctx.create_graph() ? g * ctx.output() : fused_exp_backward(g, ctx.output())};`
  bool create_graph() const;
  /// The op's name, for error messages.
  const std::string& name() const { return node_.name_; }

 private:
  Node& node_;
};

/// Describes an op for record().
struct OpSpec {
  std::string name;          ///< shown in errors and in grad_fn
  TensorList inputs;         ///< the op's tensor inputs, in order
  TensorList saved = {};     ///< tensors its backward reads
  bool save_output = false;  ///< backward reads the output (BackwardContext::output)
};

/// Links `result` to the graph as the output of op `spec` when grad mode is on, an input
/// requires grad and `result` is floating point; otherwise returns it unchanged.
Tensor record(OpSpec spec, Tensor result, BackwardFn backward);

/// True when an op on `inputs` would be recorded.
bool any_requires_grad(const TensorList& inputs);

namespace autograd {
/// Number of graph nodes alive in the process (returns to zero once graphs are freed).
std::int64_t live_node_count();
/// Runs `callback` once, on this thread, at the end of the next Tensor::backward (or the one
/// running now, when called from a hook): after every gradient of that backward is in place.
/// Callbacks run in the order they were queued; a callback may throw, and backward then throws.
void queue_backward_callback(std::function<void()> callback);
}  // namespace autograd

/// Options of tg::grad.
struct GradOptions {
  TensorList grad_outputs = {};                     ///< seeds, one per output (default: ones for scalars)
  std::optional<bool> retain_graph = std::nullopt;  ///< default: create_graph
  /// Record the backward pass, so that the returned gradients are differentiable.
  bool create_graph = false;
  bool allow_unused = false;  ///< return undefined tensors for inputs the outputs don't reach
};

/// d(sum of outputs · seeds)/d(inputs), without touching any .grad.
TensorList grad(const TensorList& outputs, const TensorList& inputs, GradOptions options = {});

}  // namespace tg
