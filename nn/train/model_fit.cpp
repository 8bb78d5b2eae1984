// nn::Model's training loop: fit on tensors or a Dataset, with Keras's validation split, callbacks,
// progress and, under MPI, the sharded data and reduced logs of data-parallel training.
#include <algorithm>
#include <cmath>
#include <optional>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/distributed/distributed.hpp"
#include "tapegrad/nn/train/detail/model_helpers.hpp"
#include "tapegrad/nn/train/model.hpp"
#include "tapegrad/nn/train/progress.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg::nn {
namespace {

using model_internal::iota_indices;
using model_internal::ModeGuard;
using model_internal::out_stream;

// Keras's split: the first ceil(N * (1 - split)) samples train, the rest validate.
std::size_t split_point(std::size_t n, double split) {
  TG_CHECK(split >= 0.0 && split < 1.0, "Model::fit: validation_split must be in [0, 1), got {}", split);
  const auto at = static_cast<std::size_t>(std::ceil(static_cast<double>(n) * (1.0 - split)));
  if (split > 0.0) {
    TG_CHECK(at < n && at > 0,
             "Model::fit: validation_split {} of {} samples leaves {} for training and {} for validation; "
             "both need at least one",
             split, n, at, n - at);
  }
  return at;
}

}  // namespace

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& options) {
  check_compiled("fit");
  TG_CHECK(x.defined() && y.defined(), "Model::fit: x and y must be defined tensors");
  TG_CHECK(x.ndim() >= 1 && y.ndim() >= 1, "Model::fit: x {} and y {} need a sample axis", shape_str(x.shape()),
           shape_str(y.shape()));
  TG_CHECK(x.shape(0) == y.shape(0), "Model::fit: x has {} samples ({}) but y has {} ({})", x.shape(0),
           shape_str(x.shape()), y.shape(0), shape_str(y.shape()));
  const datasets::TensorDataset data(x, y);
  const std::size_t n = x.shape(0);
  if (options.validation_data.x.defined() || options.validation_data.y.defined()) {
    const auto& v = options.validation_data;
    TG_CHECK(v.x.defined() && v.y.defined() && v.x.ndim() >= 1 && v.y.ndim() >= 1 && v.x.shape(0) == v.y.shape(0),
             "Model::fit: validation_data needs x and y with the same number of samples, got {} and {}",
             v.x.defined() ? shape_str(v.x.shape()) : "undefined",
             v.y.defined() ? shape_str(v.y.shape()) : "undefined");
    const datasets::TensorDataset val(v.x, v.y);
    return run_fit(data, iota_indices(0, n), &val, iota_indices(0, v.x.shape(0)), options);
  }
  if (options.validation_dataset) {
    return run_fit(data, iota_indices(0, n), options.validation_dataset,
                   iota_indices(0, options.validation_dataset->size()), options);
  }
  const std::size_t at = split_point(n, options.validation_split);
  return run_fit(data, iota_indices(0, at), at < n ? &data : nullptr, iota_indices(at, n), options);
}

History Model::fit(const datasets::Dataset& data, const FitOptions& options) {
  check_compiled("fit");
  const std::size_t n = data.size();
  TG_CHECK(!options.validation_data.x.defined(),
           "Model::fit: with a Dataset, give validation data as .validation_dataset, not .validation_data");
  if (options.validation_dataset) {
    return run_fit(data, iota_indices(0, n), options.validation_dataset,
                   iota_indices(0, options.validation_dataset->size()), options);
  }
  const std::size_t at = split_point(n, options.validation_split);
  return run_fit(data, iota_indices(0, at), at < n ? &data : nullptr, iota_indices(at, n), options);
}

History Model::run_fit(const datasets::Dataset& data, std::vector<std::size_t> train_indices,
                       const datasets::Dataset* val_data, std::vector<std::size_t> val_indices,
                       const FitOptions& options) {
  TG_CHECK(options.batch_size > 0, "Model::fit: batch_size must be positive");
  TG_CHECK(options.epochs >= 0 && options.initial_epoch >= 0,
           "Model::fit: epochs ({}) and initial_epoch ({}) must be >= 0", options.epochs, options.initial_epoch);
  TG_CHECK(!train_indices.empty(), "Model::fit: no training samples");
  TG_CHECK(options.verbose >= 0 && options.verbose <= 2, "Model::fit: verbose must be 0, 1 or 2, got {}",
           options.verbose);
  std::ostream& os = out_stream(options.out);
  const auto world = static_cast<std::size_t>(world_size());
  TG_CHECK(options.batch_size % world == 0,
           "Model::fit: batch_size {} (the global batch) does not split evenly over {} ranks", options.batch_size,
           world);
  const int verbose = is_chief() ? options.verbose : 0;
  const bool live = verbose == 1 && !options.out && stdout_is_terminal();
  // Distributed: this rank's shard and its part of the global batch.
  std::optional<datasets::DistributedSampler> sampler;
  if (ddp_)
    sampler.emplace(train_indices.size(), datasets::DistributedSamplerOptions{.rank = static_cast<std::size_t>(rank()),
                                                                              .world_size = world,
                                                                              .shuffle = options.shuffle,
                                                                              .seed = options.seed});
  const std::size_t n = sampler ? sampler->size() : train_indices.size();
  const std::size_t batch_size = options.batch_size / world;
  // Rounded up without overflow: a batch_size beyond n is one batch of all samples, as in Keras.
  const std::size_t steps = n / batch_size + (n % batch_size != 0);

  for (const auto& cb : options.callbacks) {
    TG_CHECK(cb != nullptr, "Model::fit: a callback is null");
    cb->set_model(*this);
  }
  stop_requested_ = false;
  history_ = History{};
  ModeGuard mode(*module_, true);
  for (const auto& cb : options.callbacks) cb->on_train_begin({});

  Logs epoch_logs;
  std::vector<std::size_t> order(n);
  for (int epoch = options.initial_epoch; epoch < options.epochs && !stop_requested_; ++epoch) {
    for (const auto& cb : options.callbacks) cb->on_epoch_begin(epoch, {});
    if (sampler) {
      sampler->set_epoch(static_cast<std::uint64_t>(epoch));
      order.clear();
      for (const std::size_t i : sampler->indices()) order.push_back(train_indices[i]);
    } else if (options.shuffle) {
      // Epoch e's order depends on (seed, e) only, as DistributedSampler's: a run resumed at
      // initial_epoch e trains on the batches the uninterrupted run would.
      Generator gen(options.seed + static_cast<std::uint64_t>(epoch));
      const Tensor perm = randperm(n, gen);
      const std::int64_t* p = perm.data<std::int64_t>();
      for (std::size_t i = 0; i < n; ++i) order[i] = train_indices[static_cast<std::size_t>(p[i])];
    } else {
      order = train_indices;
    }
    if (verbose > 0) os << "Epoch " << epoch + 1 << "/" << options.epochs << "\n" << std::flush;
    ProgressBar bar(steps, os, {.live = live, .bar = verbose != 2});
    module_->train(true);

    double loss_sum = 0, penalty_sum = 0;
    std::size_t seen = 0;
    for (const auto& m : metrics_) m->reset();
    Logs logs;
    for (std::size_t step = 0; step < steps && !stop_requested_; ++step) {
      const auto bi = static_cast<int>(step);
      for (const auto& cb : options.callbacks) cb->on_batch_begin(bi, {});
      const std::size_t begin = step * batch_size;
      const std::size_t end = std::min(n, begin + batch_size);
      const std::span<const std::size_t> idx(order.data() + begin, end - begin);
      datasets::Batch batch = data.get_batch(idx);
      if (seen_input_shape_.empty()) {
        const Shape s = batch.x.shape();
        seen_input_shape_.assign(s.begin() + 1, s.end());
      }
      const Tensor xb = prepare_input(batch.x);

      optimizer_->zero_grad();
      const Tensor out = forward_for_loss(xb);
      const Tensor loss = compute_loss(out, batch.y);
      TG_CHECK(loss.numel() == 1, "Model::fit: the loss must be a scalar, got shape {}", shape_str(loss.shape()));
      double loss_value = loss.item();
      // Keras's running averages weight each batch by its size; distributed, over every rank's
      // batch (which also lets every rank see a diverging loss alike).
      double batch_size_seen = static_cast<double>(end - begin);
      if (ddp_) {
        Tensor sums(xt::xarray<double>{loss_value * batch_size_seen, batch_size_seen});
        distributed::all_reduce(sums);
        batch_size_seen = sums.data<double>()[1];
        loss_value = sums.data<double>()[0] / batch_size_seen;
      }
      if (!std::isfinite(loss_value)) {
        // No step on this batch: the weights stay those before it. A callback (TerminateOnNaN)
        // may stop the training; otherwise it stops with an error, never silently.
        Logs diverged = logs;
        diverged.set("loss", loss_value);
        for (const auto& cb : options.callbacks) cb->on_batch_end(bi, diverged);
        TG_CHECK(stop_requested_,
                 "Model::fit: the loss is {} at epoch {}, batch {}: the training diverged. The weights are those "
                 "before this batch. Lower the learning rate or check the inputs; nn::TerminateOnNaN stops the "
                 "training without an error",
                 loss_value, epoch + 1, step + 1);
        logs = diverged;
        break;
      }
      // Weight penalties join the loss for the gradient but are reported apart from it, so that
      // "loss" compares with "val_loss".
      const Tensor penalty = module_->regularization_loss();
      (penalty.defined() ? add(loss, penalty.to(loss.dtype())) : loss).backward();
      optimizer_->step();

      const auto b = static_cast<std::size_t>(batch_size_seen);
      loss_sum += loss_value * batch_size_seen;
      if (penalty.defined()) penalty_sum += penalty.item() * batch_size_seen;
      update_metrics(out, batch.y);
      seen += b;
      logs = current_logs(loss_sum, seen);
      if (penalty.defined()) logs.set("regularization_loss", penalty_sum / static_cast<double>(seen));
      if (verbose == 1) bar.update(step + 1, logs);
      for (const auto& cb : options.callbacks) cb->on_batch_end(bi, logs);
    }

    if (ddp_ && !stop_requested_) {
      // The epoch's metrics over every rank's samples (batch logs above hold this rank's).
      reduce_metrics();
      const double regularization = logs.contains("regularization_loss") ? logs.at("regularization_loss") : 0.0;
      logs = current_logs(loss_sum, seen);
      if (logs.size() && regularization != 0.0) logs.set("regularization_loss", regularization);
    }
    epoch_logs = logs;
    if (val_data && !val_indices.empty()) {
      const Logs val = run_evaluate(*val_data, val_indices, options.batch_size, 0, nullptr, "Model::fit (validation)");
      for (const auto& [name, value] : val) epoch_logs.set("val_" + name, value);
    }
    if (verbose > 0) bar.finish(epoch_logs);
    history_.append(epoch, epoch_logs);
    for (const auto& cb : options.callbacks) cb->on_epoch_end(epoch, epoch_logs);
  }
  for (const auto& cb : options.callbacks) cb->on_train_end(epoch_logs);
  return history_;
}

}  // namespace tg::nn
