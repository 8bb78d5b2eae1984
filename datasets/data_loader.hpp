#pragma once
// Dataset, the interface a user implements for their own data, and DataLoader, which batches a
// dataset over a seeded permutation, optionally building the next batch on a background thread.
#include <concepts>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/tensor.hpp"

namespace tg::datasets {

/// A batch of examples: inputs x [B,...] and targets y [B,...].
struct Batch {
  /// Inputs [B,...].
  Tensor x;
  /// Targets [B,...].
  Tensor y;
};

/// Examples addressed by index 0..size()-1. DataLoader may call get_batch from a background
/// thread (prefetch), so it must not change shared state without its own locking.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of examples.
  virtual std::size_t size() const = 0;
  /// The examples at `indices`, stacked along a new first axis: x [B,...], y [B,...].
  virtual Batch get_batch(std::span<const std::size_t> indices) const = 0;
};

/// Rows of t along its first axis: t [N,...], indices [B] → [B,...], a new tensor outside any graph.
Tensor take_rows(const Tensor& t, std::span<const std::size_t> indices);

/// Examples as the rows of two tensors of any dtypes: x [N,...], y [N,...].
class TensorDataset : public Dataset {
 public:
  /// x and y share the tensors given; throws unless both have the same first axis N.
  TensorDataset(Tensor x, Tensor y);
  /// N, the rows of x.
  std::size_t size() const override;
  /// x [B,...], y [B,...]: the rows at `indices`.
  Batch get_batch(std::span<const std::size_t> indices) const override;
  /// All inputs [N,...].
  const Tensor& x() const { return x_; }
  /// All targets [N,...].
  const Tensor& y() const { return y_; }

 private:
  Tensor x_;
  Tensor y_;
};

/// The examples of another dataset at `indices`, in that order (a validation split, a fold):
/// example i is dataset[indices[i]]. Shares the dataset.
class Subset : public Dataset {
 public:
  /// The examples of `dataset` at `indices`; throws for an index out of range.
  Subset(std::shared_ptr<const Dataset> dataset, std::vector<std::size_t> indices);
  /// Examples begin..end-1 of `dataset`.
  Subset(std::shared_ptr<const Dataset> dataset, std::size_t begin, std::size_t end);
  /// Number of indices.
  std::size_t size() const override { return indices_.size(); }
  /// The batch the underlying dataset gives for the mapped indices.
  Batch get_batch(std::span<const std::size_t> indices) const override;
  /// The indices into the underlying dataset.
  const std::vector<std::size_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> dataset_;
  std::vector<std::size_t> indices_;
};

/// Options of DistributedSampler.
struct DistributedSamplerOptions {
  std::size_t rank = 0;        ///< this process's shard, 0..world_size-1
  std::size_t world_size = 1;  ///< the number of shards (processes)
  bool shuffle = true;         ///< a new permutation every epoch, the same on every rank
  /// Epoch e's permutation comes from Generator(seed + e).
  std::uint64_t seed = 0;
  /// Drop the last samples so that every rank has floor(N / world_size); by default samples are
  /// repeated from the start of the epoch's order so that every rank has ceil(N / world_size).
  bool drop_last = false;
};

/// The indices of one rank's shard of a dataset of `dataset_size` examples (PyTorch's
/// DistributedSampler): epoch e's order is a permutation drawn from Generator(seed + e), the same
/// on every rank, made a multiple of world_size (repeated or dropped), and rank r takes the
/// positions r, r + world_size, r + 2 world_size, ... So every rank gets the same number of
/// samples, the shards of one epoch are disjoint (but for the repeats), and an epoch's shard
/// depends on (seed, epoch) only: resuming at epoch e gives the batches an uninterrupted run would.
class DistributedSampler {
 public:
  /// Throws unless rank < world_size.
  DistributedSampler(std::size_t dataset_size, DistributedSamplerOptions options);
  /// Chooses the epoch whose order indices() gives (0 at first).
  void set_epoch(std::uint64_t epoch) { epoch_ = epoch; }
  /// The epoch set by set_epoch.
  std::uint64_t epoch() const { return epoch_; }
  /// This rank's indices for the current epoch, size() of them.
  std::vector<std::size_t> indices() const;
  /// Samples per rank.
  std::size_t size() const;
  /// The options given.
  const DistributedSamplerOptions& options() const { return options_; }

 private:
  std::size_t dataset_size_;
  DistributedSamplerOptions options_;
  std::uint64_t epoch_ = 0;
};

/// Options of DataLoader.
struct DataLoaderOptions {
  /// Examples per batch (> 0).
  std::size_t batch_size = 32;
  bool shuffle = false;    ///< a new permutation every epoch: epoch e's from Generator(seed + e)
  bool drop_last = false;  ///< drop a last batch smaller than batch_size (by default it is kept, as Keras does)
  /// Seeds the generator of the shuffles.
  std::uint64_t seed = 0;
  bool prefetch = false;  ///< build the next batch on a background thread; the batches are the same
  /// Takes each epoch's indices from this sampler (one rank's shard) instead of 0..N-1; call its
  /// set_epoch before each epoch. Excludes shuffle (the sampler shuffles).
  std::shared_ptr<const DistributedSampler> sampler = nullptr;
};

/// Iterates over a Dataset in batches; each begin() starts an epoch:
///   for (const auto& [x, y] : loader) { ... }
/// With shuffle, epoch e uses a permutation drawn from Generator(seed + e) (as DistributedSampler),
/// so the same seed gives the same batches run after run, and the loader's whole state is
/// epoch(): save it with a checkpoint, and set_epoch(saved) resumes with the same batches.
class DataLoader {
 public:
  class Iterator;
  /// Shares `dataset`; throws for batch_size 0, or for shuffle with a sampler.
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {});
  /// Takes a dataset by value (cheap for MNIST and TensorDataset, which share their storage).
  template <class D>
  requires std::derived_from<std::remove_cvref_t<D>, Dataset> DataLoader(D&& dataset, DataLoaderOptions options = {})
      : DataLoader(std::make_shared<const std::remove_cvref_t<D>>(std::forward<D>(dataset)), options) {}

  /// Batches per epoch: ceil(N / batch_size), or floor with drop_last.
  std::size_t size() const;
  /// Starts epoch epoch() (drawing its permutation when shuffling) and counts it: the next
  /// begin() starts the following one.
  Iterator begin();
  /// Makes the next begin() start epoch `epoch` (to resume, or to repeat an epoch).
  void set_epoch(std::uint64_t epoch) { epoch_ = epoch; }
  /// The epoch the next begin() starts (0 at first): the loader's state to save.
  std::uint64_t epoch() const { return epoch_; }
  /// The end of an epoch (a sentinel).
  std::default_sentinel_t end() const { return {}; }
  /// The dataset batched.
  const Dataset& dataset() const { return *dataset_; }
  /// The options given.
  const DataLoaderOptions& options() const { return options_; }

  /// One pass over the data, which its iterators share (internal; defined in the .cpp).
  struct Epoch;

 private:
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  std::uint64_t epoch_ = 0;
};

/// Input iterator over the batches of one epoch.
class DataLoader::Iterator {
 public:
  /// An input iterator: each batch can be read once.
  using iterator_category = std::input_iterator_tag;
  /// The element type: Batch.
  using value_type = Batch;
  /// Required of iterators; unused.
  using difference_type = std::ptrdiff_t;
  Iterator() = default;
  /// An iterator over `epoch` (DataLoader::begin makes it).
  explicit Iterator(std::shared_ptr<Epoch> epoch) : epoch_(std::move(epoch)) {}
  /// The current batch; throws past the last one.
  const Batch& operator*() const;
  /// The current batch's address.
  const Batch* operator->() const { return &**this; }
  /// Moves to the next batch; throws past the last one.
  Iterator& operator++();
  /// Post-increment: the same as ++it, returning nothing.
  void operator++(int) { ++*this; }
  /// Whether the epoch has no batch left.
  bool operator==(std::default_sentinel_t) const;

 private:
  std::shared_ptr<Epoch> epoch_;
};

}  // namespace tg::datasets
