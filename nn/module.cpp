#include "tapegrad/nn/module.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>
#include <sstream>
#include <typeinfo>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/ops/elementwise.hpp"

namespace tg::nn {

std::string Module::name() const {
  // The dynamic class name, demangled, without its namespaces ("tg::nn::Linear" → "Linear").
  int status = 0;
  const char* mangled = typeid(*this).name();
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string full = status == 0 && demangled ? demangled : mangled;
  std::free(demangled);
  const auto template_start = full.find('<');
  const auto last_colon = full.rfind("::", template_start);
  return last_colon == std::string::npos ? full : full.substr(last_colon + 2);
}

std::string Module::repr() const { return name() + "(" + extra_repr() + ")"; }

void Module::print_tree(std::ostream& os, int indent) const {
  if (children_.empty()) {
    os << repr();
    return;
  }
  os << name() << "(";
  const std::string extra = extra_repr();
  if (!extra.empty()) os << "\n" << std::string(static_cast<std::size_t>(indent + 2), ' ') << extra;
  for (const auto& [child_name, child] : children_) {
    os << "\n" << std::string(static_cast<std::size_t>(indent + 2), ' ') << "(" << child_name << "): ";
    child->print_tree(os, indent + 2);
  }
  os << "\n" << std::string(static_cast<std::size_t>(indent), ' ') << ")";
}

std::string Module::to_string() const {
  std::ostringstream os;
  print_tree(os, 0);
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.to_string(); }

void Module::collect(const std::string& prefix, bool recurse, bool buffers, NamedTensors& out,
                     std::vector<const TensorImpl*>& seen) const {
  for (const auto& [n, t] : buffers ? buffers_ : parameters_) {
    // A tensor shared between modules (tied weights) is listed once, under its first name.
    if (std::find(seen.begin(), seen.end(), t.impl()) != seen.end()) continue;
    seen.push_back(t.impl());
    out.emplace_back(prefix + n, t);
  }
  if (!recurse) return;
  for (const auto& [n, child] : children_) child->collect(prefix + n + ".", true, buffers, out, seen);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  std::vector<const TensorImpl*> seen;
  collect("", recurse, false, out, seen);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  std::vector<const TensorImpl*> seen;
  collect("", recurse, true, out, seen);
  return out;
}

TensorList Module::parameters(bool recurse) const {
  TensorList out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

TensorList Module::buffers(bool recurse) const {
  TensorList out;
  for (auto& [n, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [n, c] : children_) out.push_back(c);
  return out;
}

std::size_t Module::num_parameters() const {
  std::size_t n = 0;
  for (const Tensor& p : parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

Module::Chained Module::forward_chain(const Tensor& x, std::span<const std::shared_ptr<Module>>) {
  return {forward(x), 0};
}

Tensor Module::forward_logits(const Tensor&) {
  detail::fail("{}: forward_logits: the module does not end in a softmax it can leave out (has_logits() is false)",
               name());
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

namespace {
// Replaces the values behind `t` by their conversion, keeping the handle (which the module's
// members and registry share).
void convert_in_place(Tensor& t, Dtype dtype) {
  if (!is_floating(t.dtype()) || t.dtype() == dtype) return;
  t.set_data(t.detach().to(dtype));
}
}  // namespace

void Module::to(Dtype dtype) {
  TG_CHECK(is_floating(dtype), "{}.to: modules convert to float32 or float64, got {}", name(), dtype);
  NoGradGuard no_grad;
  for (Tensor& t : parameters()) {
    convert_in_place(t, dtype);
    if (Tensor g = t.grad(); g.defined()) t.set_grad(g.detach().to(dtype));
  }
  for (Tensor& t : buffers()) convert_in_place(t, dtype);
}

void Module::check_new_name(const std::string& n) const {
  TG_CHECK(!n.empty() && n.find('.') == std::string::npos,
           "{}: a parameter, buffer or child name must be non-empty and contain no '.', got \"{}\"", name(), n);
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == n; });
  };
  TG_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), "{}: the name \"{}\" is already registered",
           name(), n);
}

Tensor Module::register_parameter(std::string n, Tensor value, bool requires_grad) {
  check_new_name(n);
  TG_CHECK(value.defined(), "{}: parameter \"{}\" is an undefined tensor", name(), n);
  TG_CHECK(value.is_leaf(), "{}: parameter \"{}\" must be a leaf tensor (detach it first)", name(), n);
  value.requires_grad_(requires_grad);
  parameters_.emplace_back(std::move(n), value);
  return value;
}

Tensor Module::register_buffer(std::string n, Tensor value) {
  check_new_name(n);
  TG_CHECK(value.defined(), "{}: buffer \"{}\" is an undefined tensor", name(), n);
  buffers_.emplace_back(std::move(n), value);
  return value;
}

void Module::add_child(std::string n, std::shared_ptr<Module> module) {
  check_new_name(n);
  TG_CHECK(module != nullptr, "{}: child \"{}\" is a null module", name(), n);
  TG_CHECK(module.get() != this, "{}: a module cannot be its own child", name());
  children_.emplace_back(std::move(n), std::move(module));
}

void Module::add_regularizer(const Tensor& parameter, const Regularizer& regularizer) {
  TG_CHECK(parameter.defined(), "{}: add_regularizer needs a defined parameter", name());
  regularizers_.emplace_back(parameter, regularizer);
}

Tensor Module::regularization_loss() const {
  Tensor total;
  for (const auto& [parameter, regularizer] : regularizers_) {
    const Tensor p = regularizer.penalty(parameter);
    total = total.defined() ? add(total, p) : p;
  }
  for (const auto& [child_name, child] : children_) {
    const Tensor p = child->regularization_loss();
    if (p.defined()) total = total.defined() ? add(total, p) : p;
  }
  return total;
}

}  // namespace tg::nn
