#pragma once
// nn::Model: Keras's verbs (compile, fit, evaluate, predict, summary) around any Module.
//
//   nn::Model model(nn::Sequential{nn::Conv2d(1, 32, 3, {.activation = nn::Activation::relu}),
//                                  nn::MaxPool2d(2), nn::Flatten(), nn::Linear(5408, 10),
//                                  nn::Softmax()},
//                   {.input_shape = {1, 28, 28}});
//   model.compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}});
//   nn::History history = model.fit(x_train, y_train, {.epochs = 2, .validation_split = 0.2});
//   double accuracy = model.evaluate(x_test, y_test).at("accuracy");
//
// Cross-entropy and softmax: Keras applies categorical_crossentropy to the softmax output. Here,
// when the module ends in a softmax it can leave out (Module::has_logits: a Sequential ending in
// a Softmax layer or in a Linear with the softmax activation fused, Keras's Dense(10,
// activation="softmax")), fit and evaluate compute the loss from the logits, before that softmax,
// with the fused, stable log_softmax + cross-entropy: the same value without log(0) or a
// vanishing gradient. A subclass of those layers is taken as written: its own forward runs. With compile's from_logits
// the model is taken to output logits. predict() and operator() run the whole model: probabilities.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "tapegrad/autograd/tensor.hpp"
#include "tapegrad/datasets/data_loader.hpp"
#include "tapegrad/nn/distributed_data_parallel.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/train/callbacks.hpp"
#include "tapegrad/nn/train/history.hpp"
#include "tapegrad/nn/train/metrics.hpp"
#include "tapegrad/optim/optimizer.hpp"

namespace tg::nn {

/// A loss on a batch: y_pred [B,...] (the model's output, or its logits, see compile), y_true
/// [B,...] → a 0-d tensor (mean over the batch).
using LossFn = std::function<Tensor(const Tensor& y_pred, const Tensor& y_true)>;

/// Options of Model::compile (Keras's arguments).
struct CompileOptions {
  /// "adam" (Keras's formula and defaults), "sgd", "rmsprop", or an optimizer built on
  /// model.parameters().
  std::variant<std::string, std::shared_ptr<optim::Optimizer>> optimizer = std::string("adam");
  /// "categorical_crossentropy" (one-hot or probability targets [B,C]; int64 class targets [B]
  /// are accepted too), "sparse_categorical_crossentropy" (int64 [B]; one-hot accepted too),
  /// "binary_crossentropy", "mse"/"mean_squared_error", "mae"/"mean_absolute_error", or a function.
  std::variant<std::string, LossFn> loss = std::string("categorical_crossentropy");
  /// Metrics by name ("accuracy" or "acc" (the history key is the name given), "precision",
  /// "recall", "f1_score", "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy";
  /// see nn::make_metric) or as Metric objects.
  std::vector<std::variant<std::string, std::shared_ptr<Metric>>> metrics = {};
  /// The model outputs logits (no final Softmax): cross-entropy applies log_softmax itself.
  bool from_logits = false;
  /// Learning rate of an optimizer given by name (Keras's default 1e-3 for adam and rmsprop,
  /// 1e-2 for sgd when unset).
  std::optional<double> learning_rate = std::nullopt;
};

/// Options of Model::fit (Keras's arguments).
struct FitOptions {
  /// Train up to this epoch count (from initial_epoch).
  int epochs = 1;
  /// Samples per step (distributed: the global batch, split over the ranks).
  std::size_t batch_size = 32;
  /// Fraction of the samples held out for validation: the LAST ones, taken before shuffling.
  double validation_split = 0.0;
  /// Validation samples given explicitly (x and y); overrides validation_split.
  datasets::Batch validation_data = {};
  /// Validation set given as a Dataset (for fit on a Dataset); overrides validation_split.
  const datasets::Dataset* validation_dataset = nullptr;
  bool shuffle = true;  ///< reshuffle the training samples every epoch
  /// Of the shuffles: epoch e's order comes from Generator(seed + e), so the same seed gives the
  /// same batches, and a run resumed with initial_epoch e the batches of an uninterrupted one.
  std::uint64_t seed = 0;
  /// 0 silent, 1 a progress bar (live on a terminal, a line per epoch otherwise), 2 a line per epoch.
  int verbose = 1;
  /// Called around the epochs and batches, in order.
  CallbackList callbacks = {};
  int initial_epoch = 0;        ///< to resume: epochs run from initial_epoch to epochs-1
  std::ostream* out = nullptr;  ///< where progress goes (default std::cout)
};

/// Options of Model::evaluate and Model::predict.
struct EvaluateOptions {
  /// Samples per forward pass.
  std::size_t batch_size = 32;
  int verbose = 0;  ///< 1: a progress bar, 2: one line without the bar
  /// Where progress goes (default std::cout).
  std::ostream* out = nullptr;
};

/// Options of the Model constructor.
struct ModelOptions {
  /// One sample's shape without the batch axis, e.g. {1, 28, 28}: lets summary() show output
  /// shapes before fit (otherwise the first batch's shape is used).
  Shape input_shape = {};
  /// The model's name, shown by summary().
  std::string name = "sequential";
};

/// Keras's training API around a Module (typically a Sequential ending in Softmax).
class Model {
 public:
  /// Wraps `module` (by value or by shared_ptr).
  explicit Model(AnyModule module, ModelOptions options = {});

  /// Chooses the optimizer, the loss and the metrics; must precede fit and evaluate.
  void compile(CompileOptions options);
  /// Whether compile() was called.
  bool compiled() const { return optimizer_ != nullptr; }

  /// Trains on x [N,...] and y (int64 [N] class indices, or float [N,C] one-hot) and returns the
  /// per-epoch "loss", metrics, "val_loss" and "val_<metric>" (training values are running
  /// averages over the epoch's batches, as Keras reports them).
  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {});
  /// Trains on a Dataset (e.g. datasets::MNIST, converting each batch from uint8 as it goes).
  History fit(const datasets::Dataset& data, const FitOptions& options = {});

  /// Loss and metrics on x, y under no-grad in eval mode: {"loss", "accuracy"}.
  Logs evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& options = {});
  /// The same on a Dataset.
  Logs evaluate(const datasets::Dataset& data, const EvaluateOptions& options = {});
  /// The model's outputs for x [N,...] in batches, under no-grad in eval mode → [N,...].
  Tensor predict(const Tensor& x, const EvaluateOptions& options = {});
  /// One forward pass of the whole module (recording the graph when grad mode is on).
  Tensor operator()(const Tensor& x) { return module_->forward(x); }

  /// Keras's table: "Layer (type)", "Output Shape", "Param #", then the totals.
  std::string summary_string() const;
  /// Prints summary_string() to `os` (default std::cout).
  void summary(std::ostream* os = nullptr) const;

  /// Saves parameters and buffers (by their dotted names) as a safetensors file, atomically.
  void save(const std::string& path) const;
  /// Loads a file written by save(); throws naming the tensor when it does not fit the model.
  void load(const std::string& path);

  /// The module trained (never the DistributedDataParallel wrapper).
  Module& module() { return *module_; }
  /// The module trained, read-only.
  const Module& module() const { return *module_; }
  /// The module trained, shared.
  const std::shared_ptr<Module>& module_ptr() const { return module_; }
  /// The compiled optimizer; throws before compile.
  optim::Optimizer& optimizer();
  /// The module's parameters.
  TensorList parameters() const { return module_->parameters(); }
  /// Parameters and buffers by name: what save() writes and EarlyStopping restores.
  NamedTensors state() const;
  /// Copies values into the parameters and buffers of the same names (no autograd).
  void load_state(const NamedTensors& state);

  /// Trains data-parallel over the ranks of the tg::distributed::Environment (wrapping the module
  /// in a DistributedDataParallel; names, save and load stay the module's own). Then fit's
  /// batch_size is the global batch, split evenly over the ranks; each epoch every rank trains on
  /// its shard (datasets::DistributedSampler: from (seed, epoch), padded so all ranks run the same
  /// steps); the running loss is the global one; epoch metrics, validation, evaluate and
  /// predict's outputs are combined over the ranks, the same on every rank; only rank 0 prints
  /// and writes (ModelCheckpoint, CSVLogger). Every rank makes the same calls. Call before compile.
  void distribute(DistributedOptions options = {});
  /// Whether distribute() was called.
  bool is_distributed() const { return ddp_ != nullptr; }
  /// This process's rank and the number of ranks (0 and 1 unless distributed).
  int rank() const;
  /// The number of ranks (1 unless distributed).
  int world_size() const;
  /// Whether this rank prints and writes files: rank 0.
  bool is_chief() const { return rank() == 0; }
  /// The wrapper made by distribute(); throws when not distributed.
  DistributedDataParallel& distributed_module();

  /// Asks fit to stop after the current batch (callbacks use this: Keras's stop_training).
  void request_stop() { stop_requested_ = true; }
  /// Whether request_stop() was called during the current or last fit.
  bool stop_requested() const { return stop_requested_; }
  /// The history of the last fit.
  const History& history() const { return history_; }
  /// The name given in ModelOptions ("sequential" by default).
  const std::string& name() const { return options_.name; }

 private:
  enum class LossKind { categorical, binary, mse, mae, custom };
  History run_fit(const datasets::Dataset& data, std::vector<std::size_t> train_indices,
                  const datasets::Dataset* val_data, std::vector<std::size_t> val_indices, const FitOptions& options);
  Logs run_evaluate(const datasets::Dataset& data, std::span<const std::size_t> indices, std::size_t batch_size,
                    int verbose, std::ostream* out, const char* prefix);
  /// The output the loss is computed from: logits when the final Softmax is skipped.
  Tensor forward_for_loss(const Tensor& x);
  Tensor compute_loss(const Tensor& out, const Tensor& y) const;
  /// "loss" = loss_sum / seen, then every metric's result().
  Logs current_logs(double loss_sum, std::size_t seen) const;
  /// Feeds a batch's outputs (detached) to every metric.
  void update_metrics(const Tensor& out, const Tensor& y);
  Tensor prepare_input(const Tensor& x) const;
  void check_compiled(const char* verb) const;

  /// Sums every rank's metric counts into this rank's metrics (a no-op unless distributed).
  void reduce_metrics();

  std::shared_ptr<Module> module_;
  std::shared_ptr<DistributedDataParallel> ddp_;  // set by distribute()
  ModelOptions options_;
  std::shared_ptr<optim::Optimizer> optimizer_;
  LossKind loss_kind_ = LossKind::categorical;
  LossFn custom_loss_;
  std::string loss_name_;
  std::vector<std::shared_ptr<Metric>> metrics_;
  bool logits_ = false;        // the loss sees logits (final Softmax skipped, or from_logits)
  bool skip_softmax_ = false;  // the module's final softmax is left out (Module::forward_logits)
  Shape seen_input_shape_;
  bool stop_requested_ = false;
  History history_;
};

}  // namespace tg::nn
