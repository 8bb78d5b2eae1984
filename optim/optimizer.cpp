#include "tapegrad/optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/grad_mode.hpp"

namespace tg::optim {

Optimizer::Optimizer(std::string name, std::vector<ParamGroupOptions> groups, double lr, double weight_decay)
    : name_(std::move(name)) {
  check_range("lr", lr, 0.0);
  check_range("weight_decay", weight_decay, 0.0);
  TG_CHECK(!groups.empty(), "{}: got no parameter groups", name_);
  std::vector<const TensorImpl*> seen;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    ParamGroupOptions& spec = groups[g];
    TG_CHECK(!spec.params.empty(), "{}: parameter group {} is empty", name_, g);
    for (std::size_t i = 0; i < spec.params.size(); ++i) {
      const Tensor& p = spec.params[i];
      TG_CHECK(p.defined(), "{}: parameter {} of group {} is undefined", name_, i, g);
      TG_CHECK(is_floating(p.dtype()), "{}: parameter {} of group {} is {}; only float32 and float64 can be trained",
               name_, i, g, p.dtype());
      TG_CHECK(p.is_leaf(), "{}: parameter {} of group {} is not a leaf tensor (it has grad_fn {})", name_, i, g,
               p.grad_fn() ? p.grad_fn()->name() : "?");
      TG_CHECK(std::find(seen.begin(), seen.end(), p.impl()) == seen.end(),
               "{}: parameter {} of group {} appears more than once", name_, i, g);
      seen.push_back(p.impl());
    }
    ParamGroup group{.params = std::move(spec.params),
                     .lr = spec.lr.value_or(lr),
                     .weight_decay = spec.weight_decay.value_or(weight_decay)};
    check_range(fmt::format("lr of group {}", g), group.lr, 0.0);
    check_range(fmt::format("weight_decay of group {}", g), group.weight_decay, 0.0);
    groups_.push_back(std::move(group));
  }
  state_.resize(seen.size());
}

void Optimizer::check_range(std::string_view what, double value, double lo, std::optional<double> hi) const {
  if (hi) {
    TG_CHECK(value >= lo && value < *hi && std::isfinite(value), "{}: {} must be in [{}, {}), got {}", name_, what, lo,
             *hi, value);
  } else {
    TG_CHECK(value >= lo && std::isfinite(value), "{}: {} must be >= {}, got {}", name_, what, lo, value);
  }
}

void Optimizer::set_lr(double lr) {
  check_range("lr", lr, 0.0);
  for (ParamGroup& g : groups_) g.lr = lr;
}

Tensor& Optimizer::buffer(ParamState& state, const std::string& name, const Tensor& param) {
  auto it = state.buffers.find(name);
  if (it == state.buffers.end()) it = state.buffers.emplace(name, zeros_like(param)).first;
  return it->second;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  std::size_t index = 0;
  for (const ParamGroup& group : groups_) {
    for (const Tensor& p : group.params) {
      ParamState& state = state_[index++];
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      TG_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape(),
               "{}: gradient {} ({}) does not match parameter {} of shape {} ({})", name_, shape_str(g.shape()),
               g.dtype(), index - 1, shape_str(p.shape()), p.dtype());
      for (const auto& [bname, b] : state.buffers) {
        TG_CHECK(b.dtype() == p.dtype() && b.shape() == p.shape(),
                 "{}: state '{}' of parameter {} is {} {} but the parameter is {} {}; convert the model (to()) "
                 "before creating its optimizer",
                 name_, bname, index - 1, b.dtype(), shape_str(b.shape()), p.dtype(), shape_str(p.shape()));
      }
      ++state.step;
      Tensor param = p;
      update(group, param, g, state);
    }
  }
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_)
    for (Tensor& p : group.params) p.zero_grad();
}

StateDict Optimizer::state_dict() const {
  NoGradGuard no_grad;
  StateDict out;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    out.emplace(fmt::format("param_groups.{}.lr", g), scalar_tensor(groups_[g].lr, float64));
    out.emplace(fmt::format("param_groups.{}.weight_decay", g), scalar_tensor(groups_[g].weight_decay, float64));
    out.emplace(fmt::format("param_groups.{}.num_params", g), scalar_tensor(double(groups_[g].params.size()), int64));
  }
  for (std::size_t i = 0; i < state_.size(); ++i) {
    if (state_[i].step == 0) continue;
    out.emplace(fmt::format("state.{}.step", i), scalar_tensor(double(state_[i].step), int64));
    for (const auto& [name, b] : state_[i].buffers)
      out.emplace(fmt::format("state.{}.{}", i, name), b.detach().clone());
  }
  return out;
}

void Optimizer::load_state_dict(const StateDict& dict) {
  NoGradGuard no_grad;
  std::vector<const Tensor*> params;
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) params.push_back(&p);

  auto scalar = [&](const std::string& key, Dtype dtype) {
    auto it = dict.find(key);
    TG_CHECK(it != dict.end(), "{}::load_state_dict: missing key '{}'", name_, key);
    TG_CHECK(it->second.defined() && it->second.numel() == 1 && it->second.dtype() == dtype,
             "{}::load_state_dict: '{}' must be a single {} value", name_, key, dtype);
    return it->second.item();
  };

  std::vector<ParamGroup> groups = groups_;
  std::set<std::string> used;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const std::string prefix = fmt::format("param_groups.{}.", g);
    const double n = scalar(prefix + "num_params", int64);
    TG_CHECK(n == double(groups[g].params.size()),
             "{}::load_state_dict: the saved group {} has {} parameters, this optimizer's has {}", name_, g, n,
             groups[g].params.size());
    groups[g].lr = scalar(prefix + "lr", float64);
    groups[g].weight_decay = scalar(prefix + "weight_decay", float64);
    check_range(fmt::format("loaded lr of group {}", g), groups[g].lr, 0.0);
    check_range(fmt::format("loaded weight_decay of group {}", g), groups[g].weight_decay, 0.0);
    for (const char* k : {"num_params", "lr", "weight_decay"}) used.insert(prefix + k);
  }

  const std::vector<std::string> names = buffer_names();
  std::vector<ParamState> state(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::string prefix = fmt::format("state.{}.", i);
    if (!dict.contains(prefix + "step")) continue;
    const double step = scalar(prefix + "step", int64);
    TG_CHECK(step >= 1, "{}::load_state_dict: '{}step' must be >= 1, got {}", name_, prefix, step);
    state[i].step = static_cast<std::int64_t>(step);
    used.insert(prefix + "step");
    for (const std::string& b : names) {
      const std::string key = prefix + b;
      auto it = dict.find(key);
      TG_CHECK(it != dict.end(), "{}::load_state_dict: missing key '{}'", name_, key);
      const Tensor& t = it->second;
      const Tensor& p = *params[i];
      TG_CHECK(t.defined() && t.shape() == p.shape() && t.dtype() == p.dtype(),
               "{}::load_state_dict: '{}' is {} {} but parameter {} is {} {}", name_, key,
               t.defined() ? dtype_name(t.dtype()) : "undefined", t.defined() ? shape_str(t.shape()) : "", i, p.dtype(),
               shape_str(p.shape()));
      state[i].buffers.emplace(b, t.detach().clone());
      used.insert(key);
    }
  }
  for (const auto& [key, t] : dict)
    TG_CHECK(used.contains(key), "{}::load_state_dict: unexpected key '{}'", name_, key);
  groups_ = std::move(groups);
  state_ = std::move(state);
}

}  // namespace tg::optim
