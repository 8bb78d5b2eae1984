#pragma once
// optim::Optimizer: the base of SGD, Adam, AdamW and RMSprop. Parameters come as one list or as
// groups with their own learning rate and weight decay; state is kept per parameter and can be
// saved as a flat name → Tensor map (state_dict) that safetensors files hold directly.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tapegrad/autograd/tensor.hpp"

namespace tg::optim {

/// Parameters with optional settings of their own; unset ones take the optimizer's options.
struct ParamGroupOptions {
  /// The group's parameters: float leaves, each in one group only.
  TensorList params;
  /// The group's learning rate; unset: the optimizer's.
  std::optional<double> lr = std::nullopt;
  /// The group's weight decay; unset: the optimizer's.
  std::optional<double> weight_decay = std::nullopt;
};

/// A group as the optimizer uses it: schedulers change `lr` here.
struct ParamGroup {
  /// The group's parameters.
  TensorList params;
  /// Its learning rate, which schedulers change.
  double lr = 0.0;
  /// Its weight decay.
  double weight_decay = 0.0;
};

/// Flat optimizer state: "state.<i>.step" (int64 0-d), "state.<i>.<buffer>" (the parameter's
/// shape and dtype, i counting parameters across groups in order), "param_groups.<g>.lr",
/// "param_groups.<g>.weight_decay" (float64 0-d) and "param_groups.<g>.num_params" (int64 0-d).
using StateDict = std::map<std::string, Tensor>;

/// Updates parameters from their gradients. Subclasses implement update() for one parameter.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Applies one update to every parameter that has a gradient, under no-grad; each update
  /// bumps the parameter's version.
  void step();
  /// Drops every parameter's gradient (PyTorch's set_to_none=True).
  void zero_grad();

  /// The groups, to read or change their lr and weight decay (as schedulers do).
  std::vector<ParamGroup>& param_groups() { return groups_; }
  /// The groups, read-only.
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  /// The first group's learning rate.
  double lr() const { return groups_.front().lr; }
  /// Sets the learning rate of every group (must be >= 0).
  void set_lr(double lr);
  /// "SGD", "Adam", ...
  const std::string& name() const { return name_; }

  /// A copy of the state (tensors cloned, so later steps do not change it).
  StateDict state_dict() const;
  /// Restores state saved by state_dict() of an optimizer of the same kind and configuration
  /// over parameters of the same shapes. Strict: a missing or unexpected key, or a shape or
  /// dtype mismatch, throws naming the key, and nothing is changed.
  void load_state_dict(const StateDict& state);

 protected:
  /// Steps taken and named buffers of one parameter.
  struct ParamState {
    std::int64_t step = 0;
    std::map<std::string, Tensor> buffers;
  };

  /// `name` shows in errors; groups without their own lr or weight_decay take these.
  Optimizer(std::string name, std::vector<ParamGroupOptions> groups, double lr, double weight_decay);
  /// One update of `param` (float32 or float64, contiguous) from `grad` of the same shape and
  /// dtype; state.step was already incremented.
  virtual void update(const ParamGroup& group, Tensor& param, const Tensor& grad, ParamState& state) = 0;
  /// Buffers update() keeps for every parameter with this configuration.
  virtual std::vector<std::string> buffer_names() const = 0;
  /// The buffer `name` of `state`, created as zeros like `param` if missing.
  static Tensor& buffer(ParamState& state, const std::string& name, const Tensor& param);
  /// Throws "<name>: <what> must be ..." unless lo <= value (and value < hi when given).
  void check_range(std::string_view what, double value, double lo, std::optional<double> hi = std::nullopt) const;

 private:
  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // one per parameter, across groups in order
};

}  // namespace tg::optim
