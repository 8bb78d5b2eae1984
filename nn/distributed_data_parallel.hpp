#pragma once
// nn::DistributedDataParallel: data-parallel training of any Module over the ranks of a
// tg::distributed::Environment, as PyTorch's DistributedDataParallel.
//
//   tg::distributed::Environment env(argc, argv);
//   auto net = std::make_shared<nn::DistributedDataParallel>(build_model());
//   optim::Adam opt(net->parameters());
//   for (const auto& [x, y] : loader) {     // each rank its own shard (datasets::DistributedSampler)
//     opt.zero_grad();
//     cross_entropy((*net)(x), y).backward();  // gradients averaged over the ranks when it returns
//     opt.step();                              // identical parameters on every rank
//   }
//
// At construction the ranks check that they hold the same model (names, dtypes and shapes of the
// parameters and buffers) and take rank 0's values. Parameters are grouped in buckets of about
// bucket_cap_bytes, last layers first; during backward each parameter's gradient, once final,
// marks it ready (a post-accumulate hook), and each bucket whose parameters are all ready is
// averaged with a non-blocking allreduce while backward goes on. Buckets start in one order on
// every rank, as MPI requires. At the end of backward the remaining buckets start (a parameter
// with no gradient on this rank sends zeros), every bucket is waited for and the averages are
// written to the gradients: a parameter that had a gradient on any rank gets the sum over the
// ranks divided by their number; one that had none anywhere keeps no gradient. Buffers (BatchNorm's
// running statistics) then take rank 0's values, so parameters and buffers stay bitwise equal.
#include <cstddef>
#include <memory>

#include "tapegrad/nn/module.hpp"

namespace tg::nn {

/// Options of DistributedDataParallel.
struct DistributedOptions {
  /// Bytes of gradients per allreduce (PyTorch's bucket_cap_mb, whose default is 25 MB); smaller
  /// buckets start earlier during backward, larger ones cost fewer messages.
  std::size_t bucket_cap_bytes = std::size_t{1} << 20;
  /// Give every rank rank 0's buffers after each synchronized backward.
  bool broadcast_buffers = true;
};

/// Wraps `module` (registered as the child "module") for data-parallel training.
class DistributedDataParallel : public Module {
 public:
  /// Collective: checks that every rank holds the same model, gives every rank rank 0's values and
  /// sets up the buckets. Throws when the module has no parameter that requires grad.
  explicit DistributedDataParallel(AnyModule module, DistributedOptions options = {});
  /// Removes its gradient hooks from the parameters.
  ~DistributedDataParallel() override;

  /// The wrapped module's forward; when grad mode is on and synchronization too, the next
  /// backward averages the gradients.
  Tensor forward(const Tensor& x) override;
  /// The wrapped module's has_logits().
  bool has_logits() const override;
  /// The wrapped module's forward_logits, its gradients averaged as forward's are.
  Tensor forward_logits(const Tensor& x) override;
  /// "DistributedDataParallel".
  std::string name() const override { return "DistributedDataParallel"; }

  /// The wrapped module.
  Module& module() { return *module_; }
  /// The wrapped module, shared.
  const std::shared_ptr<Module>& module_ptr() const { return module_; }

  /// Turns gradient synchronization off (gradients accumulate locally, as PyTorch's no_sync) or
  /// back on; it takes effect at the next forward.
  void set_gradient_sync(bool on) { sync_ = on; }
  /// Whether the next forward's backward averages the gradients (see set_gradient_sync).
  bool gradient_sync() const { return sync_; }
  /// Turns synchronization off for its scope: for gradient accumulation, run every micro-batch
  /// but the last under a NoSync.
  class NoSync {
   public:
    /// Turns ddp's synchronization off until destroyed, then puts back the previous setting.
    explicit NoSync(DistributedDataParallel& ddp) : ddp_(ddp), previous_(ddp.gradient_sync()) {
      ddp_.set_gradient_sync(false);
    }
    /// Puts back the previous synchronization setting.
    ~NoSync() { ddp_.set_gradient_sync(previous_); }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& ddp_;
    bool previous_;
  };

  /// What the last synchronized backward cost.
  struct SyncStats {
    /// Buckets allreduced.
    std::size_t buckets = 0;
    std::size_t bytes = 0;                ///< gradient bytes sent into allreduce
    std::size_t started_in_backward = 0;  ///< buckets started before backward ended
    double wait_seconds = 0;              ///< time backward's end waited for the allreduces
  };
  /// What the last synchronized backward cost.
  const SyncStats& last_sync() const;

  /// The buckets and their progress through a backward (internal; defined in the .cpp).
  struct State;

 private:
  Tensor prepare(const Tensor& out);
  std::shared_ptr<Module> module_;
  std::shared_ptr<State> state_;
  bool sync_ = true;
};

}  // namespace tg::nn
