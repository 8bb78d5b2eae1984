#include "tapegrad/datasets/data_loader.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/xarray.hpp"

namespace tg::datasets {

Tensor take_rows(const Tensor& t, std::span<const std::size_t> indices) {
  TG_CHECK(t.defined() && t.ndim() >= 1, "take_rows: expected a tensor with at least one axis, got {}",
           t.defined() ? shape_str(t.shape()) : "an undefined tensor");
  Shape shape = t.shape();
  const std::size_t n = shape[0];
  const std::size_t row = n ? t.numel() / n : 0;
  shape[0] = indices.size();
  return dispatch_all(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto out = xt::xarray<T>::from_shape(shape);
    const T* src = t.data<T>();
    T* dst = out.data();
    for (std::size_t i = 0; i < indices.size(); ++i) {
      TG_CHECK(indices[i] < n, "take_rows: index {} out of range for a tensor of shape {}", indices[i],
               shape_str(t.shape()));
      std::memcpy(dst + i * row, src + indices[i] * row, row * sizeof(T));
    }
    return Tensor(std::move(out));
  });
}

TensorDataset::TensorDataset(Tensor x, Tensor y) : x_(std::move(x)), y_(std::move(y)) {
  TG_CHECK(x_.defined() && y_.defined(), "TensorDataset: x and y must both be defined tensors");
  TG_CHECK(x_.ndim() >= 1 && y_.ndim() >= 1 && x_.shape(0) == y_.shape(0),
           "TensorDataset: x {} and y {} must have the same number of rows (first axis)", shape_str(x_.shape()),
           shape_str(y_.shape()));
}

std::size_t TensorDataset::size() const { return x_.shape(0); }

Batch TensorDataset::get_batch(std::span<const std::size_t> indices) const {
  return {take_rows(x_, indices), take_rows(y_, indices)};
}

Subset::Subset(std::shared_ptr<const Dataset> dataset, std::vector<std::size_t> indices)
    : dataset_(std::move(dataset)), indices_(std::move(indices)) {
  TG_CHECK(dataset_, "Subset: the dataset is null");
  for (auto i : indices_) {
    TG_CHECK(i < dataset_->size(), "Subset: index {} out of range for a dataset of {} examples", i, dataset_->size());
  }
}

Subset::Subset(std::shared_ptr<const Dataset> dataset, std::size_t begin, std::size_t end)
    : dataset_(std::move(dataset)) {
  TG_CHECK(dataset_, "Subset: the dataset is null");
  TG_CHECK(begin <= end && end <= dataset_->size(), "Subset: range [{}, {}) outside a dataset of {} examples", begin,
           end, dataset_->size());
  for (std::size_t i = begin; i < end; ++i) indices_.push_back(i);
}

Batch Subset::get_batch(std::span<const std::size_t> indices) const {
  std::vector<std::size_t> mapped(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i) {
    TG_CHECK(indices[i] < indices_.size(), "Subset: index {} out of range for a subset of {} examples", indices[i],
             indices_.size());
    mapped[i] = indices_[indices[i]];
  }
  return dataset_->get_batch(mapped);
}

DistributedSampler::DistributedSampler(std::size_t dataset_size, DistributedSamplerOptions options)
    : dataset_size_(dataset_size), options_(options) {
  TG_CHECK(options_.world_size > 0 && options_.rank < options_.world_size,
           "DistributedSampler: rank {} is not a rank of a world of {}", options_.rank, options_.world_size);
}

std::size_t DistributedSampler::size() const {
  const std::size_t n = dataset_size_, w = options_.world_size;
  return options_.drop_last ? n / w : n / w + (n % w != 0);
}

std::vector<std::size_t> DistributedSampler::indices() const {
  const std::size_t n = dataset_size_;
  std::vector<std::size_t> order(n);
  if (options_.shuffle) {
    Generator gen(options_.seed + epoch_);
    const Tensor perm = randperm(n, gen);
    const std::int64_t* p = perm.data<std::int64_t>();
    for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::size_t>(p[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
  }
  const std::size_t per_rank = size(), total = per_rank * options_.world_size;
  // Padding repeats the order from its start (as often as needed when N < world_size).
  for (std::size_t i = n; i < total && n > 0; ++i) order.push_back(order[i - n]);
  std::vector<std::size_t> shard;
  shard.reserve(per_rank);
  for (std::size_t i = options_.rank; i < total && i < order.size(); i += options_.world_size)
    shard.push_back(order[i]);
  return shard;
}

/// The state of one pass over the data. With prefetch, a producer thread builds batch i+1 into a
/// one-batch slot while the consumer holds batch i; batches are built in order from the same
/// indices either way, so prefetching cannot change them.
struct DataLoader::Epoch {
  std::shared_ptr<const Dataset> dataset;
  std::vector<std::size_t> order;
  std::size_t batch_size = 0;
  std::size_t num_batches = 0;
  std::size_t index = 0;  // batch the consumer holds
  Batch current;

  std::thread producer;
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<Batch> slot;
  std::exception_ptr slot_error;
  bool stop = false;

  std::span<const std::size_t> indices(std::size_t i) const {
    const std::size_t begin = i * batch_size;
    return std::span(order).subspan(begin, std::min(batch_size, order.size() - begin));
  }

  void produce() {
    for (std::size_t i = 0; i < num_batches; ++i) {
      std::optional<Batch> batch;
      std::exception_ptr error;
      try {
        batch = dataset->get_batch(indices(i));
      } catch (...) {
        error = std::current_exception();
      }
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return stop || (!slot && !slot_error); });
      if (stop) return;
      slot = std::move(batch);
      slot_error = error;
      changed.notify_all();
      if (error) return;
    }
  }

  void load(std::size_t i) {
    index = i;
    if (i >= num_batches) {
      current = {};
      return;
    }
    if (!producer.joinable()) {
      current = dataset->get_batch(indices(i));
      return;
    }
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return slot || slot_error; });
    if (slot_error) std::rethrow_exception(slot_error);
    current = std::move(*slot);
    slot.reset();
    changed.notify_all();
  }

  ~Epoch() {
    if (!producer.joinable()) return;
    {
      std::lock_guard lock(mutex);
      stop = true;
    }
    changed.notify_all();
    producer.join();
  }
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  TG_CHECK(dataset_, "DataLoader: the dataset is null");
  TG_CHECK(options_.batch_size > 0, "DataLoader: batch_size must be positive, got 0");
  TG_CHECK(!(options_.sampler && options_.shuffle),
           "DataLoader: shuffle and sampler exclude each other (the sampler shuffles its shard)");
}

std::size_t DataLoader::size() const {
  const std::size_t n = options_.sampler ? options_.sampler->size() : dataset_->size();
  // Rounded up without overflow: a batch_size beyond n is one batch of all samples.
  return n / options_.batch_size + (!options_.drop_last && n % options_.batch_size != 0);
}

DataLoader::Iterator DataLoader::begin() {
  auto epoch = std::make_shared<Epoch>();
  epoch->dataset = dataset_;
  epoch->batch_size = options_.batch_size;
  epoch->num_batches = size();
  const std::size_t n = dataset_->size();
  epoch->order.resize(n);
  if (options_.sampler) {
    epoch->order = options_.sampler->indices();
    for (const std::size_t i : epoch->order)
      TG_CHECK(i < n, "DataLoader: the sampler gave index {} for a dataset of {} examples", i, n);
  } else if (options_.shuffle) {
    Generator gen(options_.seed + epoch_);
    const Tensor perm = randperm(n, gen);
    const std::int64_t* p = perm.data<std::int64_t>();
    for (std::size_t i = 0; i < n; ++i) epoch->order[i] = static_cast<std::size_t>(p[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) epoch->order[i] = i;
  }
  ++epoch_;
  if (options_.prefetch && epoch->num_batches > 0) epoch->producer = std::thread([e = epoch.get()] { e->produce(); });
  epoch->load(0);
  return Iterator(std::move(epoch));
}

const Batch& DataLoader::Iterator::operator*() const {
  TG_CHECK(epoch_ && epoch_->index < epoch_->num_batches, "DataLoader::Iterator: dereferenced past the last batch");
  return epoch_->current;
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  TG_CHECK(epoch_ && epoch_->index < epoch_->num_batches, "DataLoader::Iterator: advanced past the last batch");
  epoch_->load(epoch_->index + 1);
  return *this;
}

bool DataLoader::Iterator::operator==(std::default_sentinel_t) const {
  return !epoch_ || epoch_->index >= epoch_->num_batches;
}

}  // namespace tg::datasets
