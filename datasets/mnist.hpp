#pragma once
// MNIST and Fashion-MNIST (the same format): finding or downloading the files, checking them,
// and serving float batches from the uint8 pixels kept in memory.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/datasets/data_loader.hpp"
#include "tapegrad/datasets/download.hpp"

namespace tg::datasets {

/// Which part of a dataset.
enum class Split { train, test };

/// Where an MNIST-format dataset is found and fetched from. mnist_source() and
/// fashion_mnist_source() describe the two built in; other 28×28 IDX datasets fit too.
struct MnistSource {
  std::string name;                      ///< for messages: "MNIST"
  std::string cache_name;                ///< subdirectory of the cache and of $TAPEGRAD_DATA: "mnist"
  std::string dir_env;                   ///< variable naming a directory that holds the files: "TG_MNIST_DIR"
  std::string mirrors_env;               ///< variable listing base URLs that replace `mirrors`
  std::vector<std::string> mirrors;      ///< base URLs, tried in order
  std::vector<std::string> system_dirs;  ///< searched after the cache (distribution packages)
  RemoteFile train_images, train_labels, test_images, test_labels;  ///< the .gz files and their SHA-256
  std::vector<std::string> classes;  ///< class names; every label must be below classes.size()
};

/// MNIST: TG_MNIST_DIR, the cache's "mnist", mirrors of the original .gz files.
MnistSource mnist_source();
/// Fashion-MNIST: TG_FASHION_MNIST_DIR, the cache's "fashion-mnist", Debian's
/// /usr/share/datasets/fashion-mnist (package dataset-fashion-mnist), Zalando's mirrors.
MnistSource fashion_mnist_source();

/// Options of MNIST and FashionMNIST. The files of a split are looked for, in order, in `root`,
/// in $<dir_env>, in $TAPEGRAD_DATA/<cache_name>, in the cache directory and in the source's
/// system directories, each named with or without .gz; the first directory holding both the
/// images and the labels wins. When none does, they are downloaded into the cache directory.
struct MnistOptions {
  std::string root{};                  ///< searched first
  bool download = true;                ///< fetch missing files into the cache directory
  std::string cache_dir{};             ///< default: cache_root() / cache_name
  std::vector<std::string> mirrors{};  ///< base URLs replacing $<mirrors_env> and the built-in ones
  bool quiet = false;                  ///< no download lines on stderr
  std::function<void(const DownloadProgress&)> progress{};  ///< replaces the stderr lines
};

/// One split of MNIST as a Dataset: the pixels stay uint8 in memory (47 MB for the training
/// split) and are scaled to float per batch. Copies share the data.
class MNIST : public Dataset {
 public:
  /// Finds (or downloads) the split's files as `options` say, checks them and keeps the pixels in memory.
  explicit MNIST(Split split = Split::train, const MnistOptions& options = {});
  /// Any MNIST-format dataset described by `source`.
  MNIST(const MnistSource& source, Split split, const MnistOptions& options = {});

  /// Number of images: 60000 (train) or 10000 (test) for MNIST.
  std::size_t size() const override;
  /// x [B,1,28,28] float32 in [0,1] (pixel/255), y [B] int64.
  Batch get_batch(std::span<const std::size_t> indices) const override;
  /// Images begin..end-1: [end-begin,1,28,28] float32 in [0,1].
  Tensor images(std::size_t begin, std::size_t end) const;
  /// All images: [N,1,28,28] float32 in [0,1] (188 MB for the training split; batches need less).
  Tensor images() const;
  /// All labels: [N] int64.
  Tensor labels() const;
  /// The pixels as read: N*28*28 bytes, 0..255, image after image, row-major.
  std::span<const std::uint8_t> pixels() const;
  /// The labels as read: N bytes.
  std::span<const std::uint8_t> raw_labels() const;
  /// Class names: "0".."9" for MNIST, "T-shirt/top".."Ankle boot" for Fashion-MNIST.
  const std::vector<std::string>& classes() const;
  /// The split held.
  Split split() const;
  /// The directory the files were read from.
  const std::string& directory() const;

  /// Image height in pixels.
  static constexpr std::size_t rows = 28;
  /// Image width in pixels.
  static constexpr std::size_t cols = 28;

 private:
  struct Data;
  std::shared_ptr<const Data> data_;
};

/// One split of Fashion-MNIST (same format and interface as MNIST).
class FashionMNIST : public MNIST {
 public:
  /// The split of Fashion-MNIST (fashion_mnist_source()), found or downloaded as for MNIST.
  explicit FashionMNIST(Split split = Split::train, const MnistOptions& options = {});
};

/// Both splits as whole tensors, like keras.datasets.mnist.load_data() but scaled:
/// x [N,1,28,28] float32 in [0,1], y [N] int64.
struct MnistData {
  /// Images x [N,1,28,28] float32 in [0,1] and labels y [N] int64 of each split.
  Tensor x_train, y_train, x_test, y_test;
};
/// MNIST's two splits as tensors (x_train alone is 188 MB; a DataLoader over MNIST needs less).
MnistData load_mnist(const MnistOptions& options = {});
/// Fashion-MNIST's two splits as tensors.
MnistData load_fashion_mnist(const MnistOptions& options = {});

}  // namespace tg::datasets
