#include "tapegrad/nn/train/model.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <xtensor/xadapt.hpp>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/distributed/distributed.hpp"
#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/nn/serialize.hpp"
#include "tapegrad/nn/train/detail/model_helpers.hpp"
#include "tapegrad/nn/train/progress.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/loss.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"
#include "tapegrad/optim/adam.hpp"
#include "tapegrad/optim/rmsprop.hpp"
#include "tapegrad/optim/sgd.hpp"

namespace tg::nn {
namespace {

using model_internal::iota_indices;
using model_internal::ModeGuard;
using model_internal::out_stream;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Keras's layer names: the type in snake_case ("MaxPool2d" → "max_pool2d").
std::string snake_case(const std::string& type) {
  std::string out;
  for (std::size_t i = 0; i < type.size(); ++i) {
    const auto c = static_cast<unsigned char>(type[i]);
    if (std::isupper(c) && i > 0 && !std::isupper(static_cast<unsigned char>(type[i - 1]))) out += '_';
    out += static_cast<char>(std::tolower(c));
  }
  return out;
}

std::string with_commas(std::size_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string keras_shape(const Shape& s) {
  std::string out = "(None";
  for (std::size_t i = 1; i < s.size(); ++i) out += ", " + std::to_string(s[i]);
  return out + ")";
}

// Elements of the floating-point tensors: Keras counts a layer's float state (BatchNorm's moving
// mean and variance) as non-trainable parameters, but an int64 counter (num_batches_tracked) is
// bookkeeping, not a parameter.
std::size_t count_elements(const NamedTensors& ts) {
  std::size_t n = 0;
  for (const auto& [name, t] : ts)
    if (is_floating(t.dtype())) n += t.numel();
  return n;
}

}  // namespace

Model::Model(AnyModule module, ModelOptions options) : module_(module.ptr()), options_(std::move(options)) {}

void Model::compile(CompileOptions options) {
  // Optimizer.
  if (auto* name = std::get_if<std::string>(&options.optimizer)) {
    const std::string n = lower(*name);
    TensorList params = module_->parameters();
    TG_CHECK(!params.empty(), "Model::compile: the model has no parameters to optimize");
    if (n == "adam") {
      optimizer_ =
          std::make_shared<optim::Adam>(params, optim::AdamOptions{.lr = options.learning_rate.value_or(1e-3),
                                                                   .formula = optim::AdamOptions::Formula::keras});
    } else if (n == "sgd") {
      optimizer_ = std::make_shared<optim::SGD>(params, optim::SGDOptions{.lr = options.learning_rate.value_or(1e-2)});
    } else if (n == "rmsprop") {
      // Keras's defaults: rho 0.9, epsilon 1e-7.
      optimizer_ = std::make_shared<optim::RMSprop>(
          params, optim::RMSpropOptions{.lr = options.learning_rate.value_or(1e-3), .alpha = 0.9, .eps = 1e-7});
    } else {
      detail::fail("Model::compile: unknown optimizer '{}'; known: adam, sgd, rmsprop, or pass an optimizer object",
                   *name);
    }
  } else {
    optimizer_ = std::get<std::shared_ptr<optim::Optimizer>>(options.optimizer);
    TG_CHECK(optimizer_ != nullptr, "Model::compile: the optimizer is null");
    TG_CHECK(!options.learning_rate,
             "Model::compile: learning_rate applies to an optimizer given by name; "
             "set it on the optimizer object instead");
  }

  // Loss.
  custom_loss_ = nullptr;
  if (auto* name = std::get_if<std::string>(&options.loss)) {
    const std::string n = lower(*name);
    loss_name_ = n;
    if (n == "categorical_crossentropy" || n == "sparse_categorical_crossentropy") {
      loss_kind_ = LossKind::categorical;
    } else if (n == "binary_crossentropy") {
      loss_kind_ = LossKind::binary;
    } else if (n == "mse" || n == "mean_squared_error") {
      loss_kind_ = LossKind::mse;
    } else if (n == "mae" || n == "mean_absolute_error") {
      loss_kind_ = LossKind::mae;
    } else {
      optimizer_.reset();
      detail::fail(
          "Model::compile: unknown loss '{}'; known: categorical_crossentropy, "
          "sparse_categorical_crossentropy, binary_crossentropy, mse, mae, or pass a function",
          *name);
    }
  } else {
    loss_kind_ = LossKind::custom;
    loss_name_ = "custom";
    custom_loss_ = std::get<LossFn>(options.loss);
    TG_CHECK(custom_loss_ != nullptr, "Model::compile: the loss function is empty");
  }

  // A model ending in a softmax trains under cross-entropy on the logits (see the header): the
  // module leaves its softmax out (Module::forward_logits).
  skip_softmax_ = loss_kind_ == LossKind::categorical && module_->has_logits();
  logits_ = skip_softmax_ || options.from_logits;

  metrics_.clear();
  try {
    for (const auto& m : options.metrics) {
      if (auto* name = std::get_if<std::string>(&m)) {
        metrics_.push_back(make_metric(*name));
      } else {
        metrics_.push_back(std::get<std::shared_ptr<Metric>>(m));
        TG_CHECK(metrics_.back() != nullptr, "Model::compile: a metric is null");
      }
    }
  } catch (const Error&) {
    optimizer_.reset();
    throw;
  }
}

optim::Optimizer& Model::optimizer() {
  check_compiled("optimizer");
  return *optimizer_;
}

void Model::check_compiled(const char* verb) const {
  TG_CHECK(optimizer_ != nullptr,
           "Model::{}: the model is not compiled; call compile({{.optimizer = ..., "
           ".loss = ..., .metrics = ...}}) first",
           verb);
}

Tensor Model::prepare_input(const Tensor& x) const {
  // Inputs follow the parameters' dtype (a model moved to float64 takes float32 data).
  for (const Tensor& p : module_->parameters())
    if (is_floating(p.dtype())) return p.dtype() == x.dtype() ? x : x.to(p.dtype());
  return x.dtype() == int64 ? x.to(float32) : x;
}

Tensor Model::forward_for_loss(const Tensor& x) {
  Module& m = ddp_ ? static_cast<Module&>(*ddp_) : *module_;
  return skip_softmax_ ? m.forward_logits(x) : m.forward(x);
}

void Model::distribute(DistributedOptions options) {
  TG_CHECK(!ddp_, "Model::distribute: the model is distributed already");
  TG_CHECK(!compiled(),
           "Model::distribute: call it before compile, so that the optimizer sees the ranks' common "
           "starting weights");
  ddp_ = std::make_shared<DistributedDataParallel>(module_, options);
}

int Model::rank() const { return ddp_ ? distributed::rank() : 0; }
int Model::world_size() const { return ddp_ ? distributed::world_size() : 1; }

DistributedDataParallel& Model::distributed_module() {
  TG_CHECK(ddp_, "Model::distributed_module: the model is not distributed (call distribute())");
  return *ddp_;
}

void Model::reduce_metrics() {
  if (!ddp_ || world_size() == 1) return;
  for (const auto& m : metrics_) {
    const std::vector<double> mine = m->state();
    xt::xarray<double> own = xt::adapt(mine, {mine.size()});
    const Tensor lengths =
        distributed::all_gather(Tensor(xt::xarray<std::int64_t>{static_cast<std::int64_t>(mine.size())}));
    const Tensor all = distributed::all_gather(Tensor(std::move(own)));
    m->reset();
    const double* values = all.data<double>();
    std::size_t at = 0;
    for (std::size_t r = 0; r < lengths.numel(); ++r) {
      const auto len = static_cast<std::size_t>(lengths.data<std::int64_t>()[r]);
      m->merge_state(std::span<const double>(values + at, len));
      at += len;
    }
  }
}

Tensor Model::compute_loss(const Tensor& out, const Tensor& y) const {
  TG_CHECK(y.defined(), "Model: the targets are undefined");
  // Targets of the output's rank are values (one-hot, probabilities, regression targets) in the
  // output's dtype; one rank less and int64 are class indices.
  const bool class_indices = y.dtype() == int64 && y.ndim() + 1 == out.ndim();
  const Tensor target = class_indices ? y : y.to(out.dtype());
  switch (loss_kind_) {
    case LossKind::categorical: {
      if (logits_) return cross_entropy(out, target);
      // Keras's formula on probabilities: -sum(y log clip(p, eps, 1-eps)) averaged over the batch.
      const Tensor logp = log(clamp(out, 1e-7, 1.0 - 1e-7));
      if (class_indices) return neg(mean(gather(logp, -1, unsqueeze(target, -1))));
      TG_CHECK(target.shape() == out.shape(), "Model: categorical cross-entropy targets {} do not match the output {}",
               shape_str(target.shape()), shape_str(out.shape()));
      return neg(mean(sum(target * logp, {-1})));
    }
    case LossKind::binary: {
      TG_CHECK(target.shape() == out.shape(), "Model: binary cross-entropy targets {} do not match the output {}",
               shape_str(target.shape()), shape_str(out.shape()));
      if (logits_) return binary_cross_entropy_with_logits(out, target);
      const Tensor p = clamp(out, 1e-7, 1.0 - 1e-7);
      return neg(mean(target * log(p) + (1.0 - target) * log(1.0 - p)));
    }
    case LossKind::mse:
    case LossKind::mae: {
      TG_CHECK(target.shape() == out.shape(), "Model: {} targets {} do not match the output {}", loss_name_,
               shape_str(target.shape()), shape_str(out.shape()));
      const Tensor d = out - target;
      return loss_kind_ == LossKind::mse ? mean(d * d) : mean(abs(d));
    }
    case LossKind::custom:
      break;
  }
  return custom_loss_(out, y);
}

void Model::update_metrics(const Tensor& out, const Tensor& y) {
  if (metrics_.empty()) return;
  // Metrics read probabilities (argmax is the same on logits; binary thresholds need p).
  const Tensor pred = logits_ && loss_kind_ == LossKind::binary ? sigmoid(out.detach()) : out.detach();
  for (const auto& m : metrics_) m->update(pred, y);
}

Logs Model::current_logs(double loss_sum, std::size_t seen) const {
  Logs logs;
  logs.set("loss", loss_sum / static_cast<double>(std::max<std::size_t>(seen, 1)));
  for (const auto& m : metrics_) logs.set(m->name(), m->result());
  return logs;
}

Logs Model::run_evaluate(const datasets::Dataset& data, std::span<const std::size_t> indices, std::size_t batch_size,
                         int verbose, std::ostream* out, const char* who) {
  check_compiled("evaluate");
  TG_CHECK(batch_size > 0, "{}: batch_size must be positive", who);
  TG_CHECK(!indices.empty(), "{}: no samples to evaluate", who);
  NoGradGuard no_grad;
  ModeGuard mode(*module_, false);
  // Distributed: rank r evaluates positions r, r + world, ... (no padding: every sample once).
  std::vector<std::size_t> shard;
  if (ddp_) {
    for (auto i = static_cast<std::size_t>(rank()); i < indices.size(); i += static_cast<std::size_t>(world_size()))
      shard.push_back(indices[i]);
    indices = shard;
    if (!is_chief()) verbose = 0;
  }
  const std::size_t n = indices.size();
  const std::size_t steps = n / batch_size + (n % batch_size != 0);  // no overflow for a huge batch_size
  ProgressBar bar(steps, out_stream(out), {.live = verbose == 1 && !out && stdout_is_terminal(), .bar = verbose != 2});
  double loss_sum = 0;
  for (const auto& m : metrics_) m->reset();
  for (std::size_t step = 0; step < steps; ++step) {
    const std::size_t begin = step * batch_size, end = std::min(n, begin + batch_size);
    datasets::Batch batch = data.get_batch(indices.subspan(begin, end - begin));
    const Tensor o = forward_for_loss(prepare_input(batch.x));
    loss_sum += compute_loss(o, batch.y).item() * static_cast<double>(end - begin);
    update_metrics(o, batch.y);
    if (verbose > 0) bar.update(step + 1, current_logs(loss_sum, end));
  }
  std::size_t total = n;
  if (ddp_) {
    Tensor sums(xt::xarray<double>{loss_sum, static_cast<double>(n)});
    distributed::all_reduce(sums);
    loss_sum = sums.data<double>()[0];
    total = static_cast<std::size_t>(sums.data<double>()[1]);
    reduce_metrics();
  }
  Logs logs = current_logs(loss_sum, total);
  if (verbose > 0) bar.finish(logs);
  return logs;
}

Logs Model::evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& options) {
  TG_CHECK(x.defined() && y.defined() && x.ndim() >= 1 && y.ndim() >= 1,
           "Model::evaluate: x and y must be "
           "defined tensors with a sample axis");
  TG_CHECK(x.shape(0) == y.shape(0), "Model::evaluate: x has {} samples ({}) but y has {} ({})", x.shape(0),
           shape_str(x.shape()), y.shape(0), shape_str(y.shape()));
  const datasets::TensorDataset data(x, y);
  const auto idx = iota_indices(0, x.shape(0));
  return run_evaluate(data, idx, options.batch_size, options.verbose, options.out, "Model::evaluate");
}

Logs Model::evaluate(const datasets::Dataset& data, const EvaluateOptions& options) {
  const auto idx = iota_indices(0, data.size());
  return run_evaluate(data, idx, options.batch_size, options.verbose, options.out, "Model::evaluate");
}

Tensor Model::predict(const Tensor& x, const EvaluateOptions& options) {
  TG_CHECK(x.defined() && x.ndim() >= 1, "Model::predict: x must be a defined tensor with a sample axis");
  TG_CHECK(options.batch_size > 0, "Model::predict: batch_size must be positive");
  NoGradGuard no_grad;
  ModeGuard mode(*module_, false);
  std::size_t first = 0, n = x.shape(0);
  if (ddp_) {
    // Distributed: rank r predicts the r-th of world_size() contiguous blocks; then every rank
    // gathers all blocks in order.
    const auto world = static_cast<std::size_t>(world_size()), per_rank = n / world + (n % world != 0);
    first = std::min(n, per_rank * static_cast<std::size_t>(rank()));
    n = std::min(x.shape(0), first + per_rank);
  }
  TensorList outs;
  for (std::size_t begin = first; begin < n; begin += options.batch_size) {
    const auto idx = iota_indices(begin, std::min(n, begin + options.batch_size));
    outs.push_back(module_->forward(prepare_input(datasets::take_rows(x, idx))));
  }
  // No samples: the module's output for an empty batch ([0, classes], not the input).
  Tensor local = outs.empty()       ? module_->forward(prepare_input(datasets::take_rows(x, {})))
                 : outs.size() == 1 ? outs.front()
                                    : concat(outs, 0);
  return ddp_ ? distributed::all_gather(local) : local;
}

NamedTensors Model::state() const {
  NamedTensors out;
  NoGradGuard no_grad;
  for (const auto& [name, t] : module_->named_parameters()) out.emplace_back(name, t.detach().clone());
  for (const auto& [name, t] : module_->named_buffers()) out.emplace_back(name, t.detach().clone());
  return out;
}

void Model::load_state(const NamedTensors& state) {
  NoGradGuard no_grad;
  NamedTensors targets = module_->named_parameters();
  for (auto& b : module_->named_buffers()) targets.push_back(b);
  for (const auto& [name, value] : state) {
    const std::string& key = name;  // named: clang 14 cannot capture a structured binding
    auto it = std::find_if(targets.begin(), targets.end(), [&](const auto& p) { return p.first == key; });
    TG_CHECK(it != targets.end(), "Model::load_state: the model has no parameter or buffer '{}'", name);
    TG_CHECK(it->second.shape() == value.shape(), "Model::load_state: '{}' has shape {} in the model but {} given",
             name, shape_str(it->second.shape()), shape_str(value.shape()));
    Tensor target = it->second;
    target.copy_(value);
  }
}

std::string Model::summary_string() const {
  const Shape input = !options_.input_shape.empty() ? options_.input_shape : seen_input_shape_;
  struct Row {
    std::string name, shape;
    std::size_t params;
  };
  std::vector<Row> rows;
  std::vector<std::shared_ptr<Module>> layers;
  if (auto seq = std::dynamic_pointer_cast<Sequential>(module_)) {
    layers.assign(seq->begin(), seq->end());
  } else {
    layers.push_back(module_);
  }
  std::vector<std::string> shapes(layers.size(), "?");
  if (!input.empty()) {
    // Shapes come from a batch-1 forward pass of zeros under no-grad in eval mode.
    NoGradGuard no_grad;
    ModeGuard mode(*module_, false);
    Shape s{1};
    s.insert(s.end(), input.begin(), input.end());
    Tensor h = prepare_input(zeros(s));
    for (std::size_t i = 0; i < layers.size(); ++i) {
      h = layers[i]->forward(h);
      shapes[i] = keras_shape(h.shape());
    }
  }
  std::map<std::string, int> seen;
  std::size_t trainable = 0, total = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string type = layers[i]->name();
    std::string name = layers.size() == 1 && layers[i] == module_ ? options_.name : snake_case(type);
    if (const int k = seen[name]++; k > 0) name += "_" + std::to_string(k);
    std::size_t count = count_elements(layers[i]->named_parameters()) + count_elements(layers[i]->named_buffers());
    rows.push_back({name + " (" + type + ")", shapes[i], count});
  }
  for (const auto& [name, p] : module_->named_parameters()) (p.requires_grad() ? trainable : total) += p.numel();
  total += trainable + count_elements(module_->named_buffers());

  std::size_t w0 = 29, w1 = 26;
  for (const auto& r : rows) {
    w0 = std::max(w0, r.name.size() + 2);
    w1 = std::max(w1, r.shape.size() + 2);
  }
  const std::size_t width = w0 + w1 + 12;
  std::string out = fmt::format("Model: \"{}\"\n{}\n", options_.name, std::string(width, '_'));
  out += fmt::format(" {:<{}}{:<{}}{}\n", "Layer (type)", w0 - 1, "Output Shape", w1, "Param #");
  out += std::string(width, '=') + "\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    out += fmt::format(" {:<{}}{:<{}}{}\n", rows[i].name, w0 - 1, rows[i].shape, w1, with_commas(rows[i].params));
    out += i + 1 < rows.size() ? "\n" : "";
  }
  out += std::string(width, '=') + "\n";
  out += fmt::format("Total params: {}\nTrainable params: {}\nNon-trainable params: {}\n{}\n", with_commas(total),
                     with_commas(trainable), with_commas(total - trainable), std::string(width, '_'));
  return out;
}

void Model::summary(std::ostream* os) const { out_stream(os) << summary_string() << std::flush; }

void Model::save(const std::string& path) const { nn::save(*module_, path); }

void Model::load(const std::string& path) { nn::load(*module_, path); }

}  // namespace tg::nn
