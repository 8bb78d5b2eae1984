// Graph nodes, record(), and the reverse-mode engine: dependency counting with an explicit
// stack, then nodes run newest-first from a max-heap on sequence number. Nothing recurses,
// neither backward nor the teardown of a long graph.
#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "tapegrad/autograd/broadcast.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/detail/tensor_impl.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/kernels/elementwise.hpp"

namespace tg {
namespace {
std::atomic<std::int64_t> live_nodes{0};
std::atomic<std::uint64_t> next_sequence_nr{0};
}  // namespace

std::int64_t autograd::live_node_count() { return live_nodes.load(); }

namespace {
// Callbacks for the end of this thread's next backward (autograd::queue_backward_callback).
thread_local std::vector<std::function<void()>> backward_callbacks;
}  // namespace

void autograd::queue_backward_callback(std::function<void()> callback) {
  TG_CHECK(callback != nullptr, "queue_backward_callback: the callback is empty");
  backward_callbacks.push_back(std::move(callback));
}

Node::Node(std::string name, std::vector<Edge> edges, std::vector<SavedTensor> saved, std::shared_ptr<Storage> output,
           std::size_t output_offset, Shape output_shape, Strides output_strides, BackwardFn backward)
    : name_(std::move(name)),
      sequence_nr_(next_sequence_nr++),
      edges_(std::move(edges)),
      saved_(std::move(saved)),
      output_(std::move(output)),
      output_offset_(output_offset),
      output_shape_(std::move(output_shape)),
      output_strides_(std::move(output_strides)),
      backward_(std::move(backward)) {
  ++live_nodes;
}

Node::~Node() {
  // Tear the graph down iteratively: take over every input node that only we keep alive, so
  // that its destructor finds nothing left to destroy.
  std::vector<std::shared_ptr<Node>> pending;
  auto take_inputs = [&pending](Node& n) {
    for (Edge& e : n.edges_)
      if (e.node) pending.push_back(std::move(e.node));
    for (SavedTensor& s : n.saved_) {
      const auto& impl = s.tensor.impl_ptr();
      if (impl && impl.use_count() == 1 && impl->grad_fn) pending.push_back(std::move(impl->grad_fn));
    }
    n.edges_.clear();
    n.saved_.clear();
  };
  take_inputs(*this);
  while (!pending.empty()) {
    std::shared_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    if (node.use_count() == 1) take_inputs(*node);
  }
  --live_nodes;
}

void Node::release() {
  saved_.clear();
  output_.reset();
  backward_ = nullptr;
  released_ = true;
}

TensorList Node::apply(const Tensor& grad_out) {
  TG_CHECK(!released_,
           "backward: trying to backward through the graph of '{}' a second time; its saved values were freed "
           "after the first backward. Pass {{.retain_graph = true}} to the first backward() to keep them",
           name_);
  BackwardContext ctx(*this);
  TensorList grads = backward_(ctx, grad_out);
  TG_CHECK(grads.size() == edges_.size(), "backward of '{}' returned {} gradients for {} inputs", name_, grads.size(),
           edges_.size());
  return grads;
}

const Tensor& BackwardContext::saved(std::size_t i) const {
  const SavedTensor& s = node_.saved_.at(i);
  TG_CHECK(s.tensor.version() == s.version,
           "backward of '{}': a tensor of shape {} that it saved was modified in place after being saved "
           "(version {} now, {} when saved). Change a clone() instead, or modify it after backward",
           node_.name_, shape_str(s.tensor.shape()), s.tensor.version(), s.version);
  return s.tensor;
}

// run_backward turns grad mode on exactly when the backward is recorded.
bool BackwardContext::create_graph() const { return is_grad_enabled(); }

Tensor BackwardContext::output() const {
  TG_CHECK(node_.output_, "backward of '{}': the op did not save its output (set save_output)", node_.name_);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = node_.output_;
  impl->shape = node_.output_shape_;
  impl->strides = node_.output_strides_;
  impl->offset = node_.output_offset_;
  // Linked to this node, so that gradients computed from the output are differentiable.
  if (is_grad_enabled()) {
    impl->requires_grad = true;
    impl->grad_fn = node_.shared_from_this();
  }
  return Tensor(impl);
}

bool any_requires_grad(const TensorList& inputs) {
  return std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.defined() && t.requires_grad(); });
}

Tensor record(OpSpec spec, Tensor result, BackwardFn backward) {
  if (!is_grad_enabled() || !any_requires_grad(spec.inputs) || !is_floating(result.dtype())) return result;
  std::vector<Edge> edges;
  edges.reserve(spec.inputs.size());
  for (const Tensor& in : spec.inputs) {
    Edge e;
    if (in.defined() && in.requires_grad()) {
      if (in.grad_fn())
        e.node = in.grad_fn();
      else
        e.leaf = in.impl_ptr();
      e.shape = in.shape();
      e.dtype = in.dtype();
    }
    edges.push_back(std::move(e));
  }
  std::vector<SavedTensor> saved;
  saved.reserve(spec.saved.size());
  for (Tensor& t : spec.saved) {
    const std::uint64_t version = t.defined() ? t.version() : 0;
    saved.push_back({std::move(t), version});
  }
  auto impl = alias(*result.impl());
  impl->requires_grad = true;
  impl->grad_fn = std::make_shared<Node>(std::move(spec.name), std::move(edges), std::move(saved),
                                         spec.save_output ? impl->storage : nullptr, impl->offset, impl->shape,
                                         impl->strides, std::move(backward));
  return Tensor(impl);
}

namespace {

// True when `t`'s values can be overwritten without anyone noticing: not part of a graph, and
// its handle and its storage are held by the caller's one reference alone. A backward may
// return one tensor for several inputs (add gives {g, g}), or a saved value: those are shared.
bool owned_alone(const Tensor& t) {
  const auto& impl = t.impl_ptr();
  return impl.use_count() == 1 && !impl->grad_fn && !impl->requires_grad && !impl->grad &&
         impl->storage.use_count() == 1;
}

// a + b, two gradients of one shape and dtype, as an op of its own: recorded when the backward
// is (create_graph), so that gradients of gradients see the sum.
// d(a+b) = g, g
Tensor add_gradients(const Tensor& a, const Tensor& b) {
  TG_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), "accumulate: gradients {} {} and {} {} differ", a.dtype(),
           shape_str(a.shape()), b.dtype(), shape_str(b.shape()));
  Tensor out = dispatch_float(a.dtype(), "accumulate", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> r = xt::xarray<T>::from_shape(a.shape());
    if (r.size() > 0)
      kernels::binary(kernels::BinaryOp::add, kernels::broadcast_plan(a.shape(), a.shape(), a.shape()), a.data<T>(),
                      b.data<T>(), r.data());
    return Tensor(std::move(r));
  });
  return record({.name = "accumulate", .inputs = {a, b}}, out,
                [](const BackwardContext&, const Tensor& g) -> TensorList {
                  return {g, g};
                });
}

// sum += g, in place when nothing is being recorded (no create_graph) and `sum` is owned alone;
// otherwise sum becomes a new tensor. g has sum's shape.
void add_into(Tensor& sum, const Tensor& g) {
  if (!is_grad_enabled() && is_floating(sum.dtype()) && sum.dtype() == g.dtype() && owned_alone(sum) &&
      is_contiguous(*sum.impl()) && sum.shape() == g.shape()) {
    dispatch_float(sum.dtype(), "accumulate", [&](auto t) {
      using T = decltype(t);
      T* acc = first_element<T>(*sum.impl());
      kernels::accumulate(acc, g.data<T>(), g.numel());
    });
    return;
  }
  sum = add_gradients(sum, g);
}

// Adds `g` into `slot` (g already has the slot's shape).
void accumulate(Tensor& slot, const Tensor& g) {
  if (slot.defined())
    add_into(slot, g);
  else
    slot = g;
}

// Whether a gradient of shape `from` sums to an input of shape `to`: the input broadcast to it.
bool sums_to(const Shape& from, const Shape& to) {
  if (to.size() > from.size()) return false;
  const std::size_t lead = from.size() - to.size();
  for (std::size_t i = 0; i < to.size(); ++i)
    if (to[i] != 1 && to[i] != from[lead + i]) return false;
  return true;
}

// Brings a gradient returned by a backward function to the input's shape and dtype; a gradient
// that cannot belong to the input (a custom op's mistake) is named with the op.
Tensor fit_to_input(Tensor g, const Edge& e, const std::string& op) {
  if (g.shape() != e.shape) {
    TG_CHECK(sums_to(g.shape(), e.shape), "backward of '{}': gradient of shape {} does not fit its input of shape {}",
             op, shape_str(g.shape()), shape_str(e.shape));
    g = sum_to(g, e.shape);
  }
  if (g.dtype() != e.dtype) g = g.to(e.dtype);
  return g;
}

struct Run {
  // Gradients of the tensors asked for by tg::grad, keyed by their node or leaf.
  std::unordered_map<const Node*, Tensor>* captured_nodes = nullptr;
  std::unordered_map<const TensorImpl*, Tensor>* captured_leaves = nullptr;
  bool accumulate_into_leaves = true;
};

void run_backward(const TensorList& roots, const TensorList& seeds, bool retain_graph, bool create_graph,
                  const Run& run) {
  GradModeGuard grad_mode(create_graph);
  std::unordered_map<Node*, Tensor> buffers;
  std::unordered_map<Node*, std::size_t> dependencies;
  // Edges still to deliver into each leaf that has post-accumulate hooks (backward() only).
  std::unordered_map<TensorImpl*, std::size_t> leaf_pending;
  auto count_leaf = [&](const std::shared_ptr<TensorImpl>& leaf) {
    if (run.accumulate_into_leaves && !leaf->post_accumulate_hooks.empty()) ++leaf_pending[leaf.get()];
  };

  // Count, for every reachable node, how many edges lead into it.
  std::vector<Node*> stack;
  for (const Tensor& r : roots)
    if (r.grad_fn() && !dependencies.count(r.grad_fn().get())) {
      dependencies[r.grad_fn().get()] = 0;
      stack.push_back(r.grad_fn().get());
    }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->edges()) {
      if (e.leaf) count_leaf(e.leaf);
      if (!e.node) continue;
      auto [it, inserted] = dependencies.try_emplace(e.node.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(e.node.get());
    }
  }

  std::unordered_set<const Storage*> leaf_storages;  // of the gradients first given to leaves
  auto deliver_to_leaf = [&](const std::shared_ptr<TensorImpl>& leaf, const Tensor& g) {
    if (run.captured_leaves) {
      auto it = run.captured_leaves->find(leaf.get());
      if (it != run.captured_leaves->end()) accumulate(it->second, g);
    }
    if (run.accumulate_into_leaves) {
      Tensor stored = create_graph ? g : g.detach();
      if (leaf->grad) {
        // Taken out of the leaf, so that add_into can tell whether anyone else holds it.
        Tensor current(std::move(leaf->grad));
        add_into(current, stored);
        stored = create_graph || !current.requires_grad() ? current : current.detach();
      } else if (!is_contiguous(*stored.impl()) || !leaf_storages.insert(stored.impl()->storage.get()).second) {
        // A strided view (a permute's gradient), or a storage another leaf got (add hands g to
        // both inputs, a view op a view of g): each leaf owns a row-major gradient, which
        // optimizers and clip_grad_* change in place.
        stored = stored.clone();
      }
      leaf->grad = stored.impl_ptr();
    }
  };

  // Called once per edge into `leaf`, delivered or not: the last one makes its gradient final.
  auto leaf_edge_done = [&](const std::shared_ptr<TensorImpl>& leaf) {
    auto it = leaf_pending.find(leaf.get());
    if (it == leaf_pending.end() || --it->second > 0) return;
    leaf_pending.erase(it);
    if (!leaf->grad) return;
    const Tensor handle(leaf);
    // A copy: a hook may add or remove hooks.
    const auto hooks = leaf->post_accumulate_hooks;
    for (const auto& [id, hook] : hooks) hook(handle);
  };

  auto cmp = [](const Node* a, const Node* b) { return a->sequence_nr() < b->sequence_nr(); };
  std::priority_queue<Node*, std::vector<Node*>, decltype(cmp)> ready(cmp);
  for (std::size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    if (r.grad_fn()) {
      accumulate(buffers[r.grad_fn().get()], seeds[i]);
    } else if (r.requires_grad()) {
      count_leaf(r.impl_ptr());
      deliver_to_leaf(r.impl_ptr(), seeds[i]);
      leaf_edge_done(r.impl_ptr());
    }
  }
  for (auto& [node, count] : dependencies)
    if (count == 0) ready.push(node);

  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    Tensor grad_out = std::move(buffers[node]);
    buffers.erase(node);
    if (run.captured_nodes) {
      auto it = run.captured_nodes->find(node);
      if (it != run.captured_nodes->end()) accumulate(it->second, grad_out);
    }
    TensorList grads = grad_out.defined() ? node->apply(grad_out) : TensorList(node->edges().size());
    if (!retain_graph) node->release();
    for (std::size_t i = 0; i < node->edges().size(); ++i) {
      const Edge& e = node->edges()[i];
      if (!e.defined()) continue;
      Tensor g = grads[i].defined() ? fit_to_input(grads[i], e, node->name()) : Tensor();
      if (e.leaf) {
        if (g.defined()) deliver_to_leaf(e.leaf, g);
        leaf_edge_done(e.leaf);
        continue;
      }
      if (g.defined()) accumulate(buffers[e.node.get()], g);
      if (--dependencies[e.node.get()] == 0) ready.push(e.node.get());
    }
  }
}

Tensor default_seed(const Tensor& out, std::string_view op) {
  TG_CHECK(out.numel() == 1,
           "{}: gradient can be implicitly created only for a scalar output, got shape {}; pass a seed gradient "
           "of that shape",
           op, shape_str(out.shape()));
  return ones_like(out);
}

void check_seed(const Tensor& out, const Tensor& seed, std::string_view op) {
  TG_CHECK(seed.shape() == out.shape(), "{}: seed gradient of shape {} does not match the output of shape {}", op,
           shape_str(seed.shape()), shape_str(out.shape()));
}

}  // namespace

void Tensor::backward(BackwardOptions options) const { backward_with_seed(Tensor(), options); }

void Tensor::backward_with_seed(const Tensor& seed, BackwardOptions options) const {
  TG_CHECK(requires_grad(),
           "backward: the tensor does not require grad and has no grad_fn (no input of the ops that made it "
           "requires grad, or it was computed under NoGradGuard)");
  Tensor s = seed.defined() ? seed : default_seed(*this, "backward");
  check_seed(*this, s, "backward");
  if (s.dtype() != dtype()) s = s.to(dtype());
  run_backward({*this}, {s}, options.retain_graph || options.create_graph ? true : false, options.create_graph, Run{});
  // Callbacks queued before or during this backward; taken first, so that one may queue another
  // for the next backward.
  std::vector<std::function<void()>> callbacks;
  callbacks.swap(backward_callbacks);
  for (auto& callback : callbacks) callback();
}

TensorList grad(const TensorList& outputs, const TensorList& inputs, GradOptions options) {
  TG_CHECK(options.grad_outputs.empty() || options.grad_outputs.size() == outputs.size(),
           "grad: {} grad_outputs given for {} outputs", options.grad_outputs.size(), outputs.size());
  TensorList seeds;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    TG_CHECK(out.defined() && out.requires_grad(), "grad: output {} does not require grad", i);
    Tensor s = options.grad_outputs.empty() || !options.grad_outputs[i].defined() ? default_seed(out, "grad")
                                                                                  : options.grad_outputs[i];
    check_seed(out, s, "grad");
    seeds.push_back(s.dtype() == out.dtype() ? s : s.to(out.dtype()));
  }
  std::unordered_map<const Node*, Tensor> captured_nodes;
  std::unordered_map<const TensorImpl*, Tensor> captured_leaves;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    TG_CHECK(in.defined() && in.requires_grad(), "grad: input {} does not require grad", i);
    if (in.grad_fn())
      captured_nodes.emplace(in.grad_fn().get(), Tensor());
    else
      captured_leaves.emplace(in.impl(), Tensor());
  }
  const bool retain = options.retain_graph.value_or(options.create_graph);
  run_backward(
      outputs, seeds, retain, options.create_graph,
      Run{.captured_nodes = &captured_nodes, .captured_leaves = &captured_leaves, .accumulate_into_leaves = false});
  TensorList result;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    Tensor g = in.grad_fn() ? captured_nodes[in.grad_fn().get()] : captured_leaves[in.impl()];
    TG_CHECK(g.defined() || options.allow_unused,
             "grad: input {} (shape {}) is not reached from the outputs; pass .allow_unused = true to get an "
             "undefined gradient for it",
             i, shape_str(in.shape()));
    if (g.defined() && !options.create_graph) g = g.detach();
    result.push_back(g);
  }
  return result;
}

}  // namespace tg
