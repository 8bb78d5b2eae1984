#include "tapegrad/datasets/mnist.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/runtime.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/datasets/idx.hpp"

namespace tg::datasets {

MnistSource mnist_source() {
  // SHA-256 of the original .gz files (md5 f68b3c2d…, d53e105e…, 9fb629c4…, ec29112d…, the ones
  // torchvision checks), verified against those files, then of their decompressed content.
  return {
      .name = "MNIST",
      .cache_name = "mnist",
      .dir_env = "TG_MNIST_DIR",
      .mirrors_env = "TG_MNIST_MIRRORS",
      .mirrors = {"https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://storage.googleapis.com/cvdf-datasets/mnist/", "http://yann.lecun.com/exdb/mnist/"},
      .system_dirs = {},
      .train_images = {"train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                       "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 9912422},
      .train_labels = {"train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                       "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 28881},
      .test_images = {"t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                      "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 1648877},
      .test_labels = {"t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                      "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 4542},
      .classes = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
  };
}

MnistSource fashion_mnist_source() {
  // SHA-256 of Zalando's original .gz files, as published next to their official md5s (8d4fb7e6…,
  // 25c81989…, bef4ecab…, bb300cfd…) by many projects; a mirror serving other bytes is rejected.
  // Debian's package rewrote the gzip headers (other .gz hashes, the same content): its files are
  // read in place and checked by content.
  return {
      .name = "Fashion-MNIST",
      .cache_name = "fashion-mnist",
      .dir_env = "TG_FASHION_MNIST_DIR",
      .mirrors_env = "TG_FASHION_MNIST_MIRRORS",
      .mirrors = {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                  "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
                  "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"},
      .system_dirs = {"/usr/share/datasets/fashion-mnist"},
      .train_images = {"train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                       "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
      .train_labels = {"train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                       "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
      .test_images = {"t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                      "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
      .test_labels = {"t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                      "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
      .classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot"},
  };
}

namespace {

namespace fs = std::filesystem;

/// "x.gz" → "x"; other names unchanged.
std::string raw_name(const std::string& name) {
  return name.size() > 3 && name.ends_with(".gz") ? name.substr(0, name.size() - 3) : name;
}

/// The file for `remote` in `dir`, under its .gz or its raw name.
std::optional<fs::path> find_file(const fs::path& dir, const RemoteFile& remote) {
  std::error_code ec;
  for (const auto& name : {remote.name, raw_name(remote.name)}) {
    if (fs::is_regular_file(dir / name, ec)) return dir / name;
  }
  return std::nullopt;
}

std::string env_or_empty(const std::string& var) {
  const char* v = var.empty() ? nullptr : std::getenv(var.c_str());
  return v ? v : "";
}

/// A place searched for the files, and how it was chosen (for the message when nothing is found).
struct Candidate {
  fs::path dir;
  std::string origin;
};

// Local files already checked against their content's SHA-256, kept from one run to the next in
// cache_root()/verified-files.tsv, a line each: "<content sha256>\t<size>\t<mtime ns>\t<path>".
// A file whose size or modification time changed is checked again. Only a cache: when it cannot
// be read or written, files are checked every time.
std::string verdict_key(const fs::path& path, const std::string& sha) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  return fmt::format("{}\t{}\t{}\t{}", sha, static_cast<long long>(st.st_size),
                     static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec, absolute.string());
}

fs::path verdicts_file() {
  const fs::path root = cache_root();
  return root.empty() ? fs::path() : root / "verified-files.tsv";
}

std::vector<std::string> read_verdicts() {
  std::vector<std::string> lines;
  const fs::path file = verdicts_file();
  if (file.empty()) return lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool verified_before(const std::string& key) {
  if (key.empty()) return false;
  const std::vector<std::string> lines = read_verdicts();
  return std::find(lines.begin(), lines.end(), key) != lines.end();
}

void remember_verified(const fs::path& path, const std::string& key) {
  const fs::path file = verdicts_file();
  if (file.empty() || key.empty()) return;
  const std::string tail = "\t" + fs::absolute(path).string();
  std::vector<std::string> lines;
  for (std::string& line : read_verdicts())
    if (!line.ends_with(tail)) lines.push_back(std::move(line));  // the file's older verdicts go
  lines.push_back(key);
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  // Written whole under a name of this process and thread, then renamed over the file.
  const fs::path temp = file.parent_path() / fmt::format(".verified-files.{}.{}", ::getpid(),
                                                         std::hash<std::thread::id>{}(std::this_thread::get_id()));
  {
    std::ofstream out(temp);
    for (const auto& line : lines) out << line << '\n';
    if (!out.flush()) {
      fs::remove(temp, ec);
      return;
    }
  }
  fs::rename(temp, file, ec);
  if (ec) fs::remove(temp, ec);
}

// Reads an IDX file of `remote`, checking its content against remote.content_sha256 unless this
// very file (same path, size and modification time) passed that check before.
IdxArray read_checked(const fs::path& path, const RemoteFile& remote, IdxExpect expect, const std::string& what) {
  if (remote.content_sha256.empty()) return read_idx(path, expect);
  const std::string key = verdict_key(path, remote.content_sha256);
  if (verified_before(key)) return read_idx(path, expect);
  expect.sha256 = remote.content_sha256;
  expect.what = what;
  IdxArray a = read_idx(path, expect);
  remember_verified(path, key);
  return a;
}

// Pixels as floats in [0, 1]: v / 255, written as a loop over whole images so that it runs
// in SIMD (a lookup table made it a scalar gather, ~1 us an image).
void scale_pixels(const std::uint8_t* __restrict src, std::size_t count, float* __restrict dst) {
  for (std::size_t p = 0; p < count; ++p) dst[p] = static_cast<float>(src[p]) / 255.0f;
}

}  // namespace

struct MNIST::Data {
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;
  std::vector<std::string> classes;
  std::string directory;
  Split split = Split::train;
};

MNIST::MNIST(Split split, const MnistOptions& options) : MNIST(mnist_source(), split, options) {}

MNIST::MNIST(const MnistSource& source, Split split, const MnistOptions& options) {
  const bool train = split == Split::train;
  const RemoteFile& image_file = train ? source.train_images : source.test_images;
  const RemoteFile& label_file = train ? source.train_labels : source.test_labels;
  const char* split_name = train ? "train" : "test";

  const fs::path cache = !options.cache_dir.empty()
                             ? fs::path(options.cache_dir)
                             : (cache_root().empty() ? fs::path() : fs::path(cache_root()) / source.cache_name);
  std::vector<Candidate> candidates;
  std::optional<fs::path> images_path, labels_path;
  if (!options.root.empty()) {
    // A directory the caller named: the files must be there. Looking elsewhere would hide a
    // mistyped path behind whatever another place holds.
    const fs::path root = options.root;
    std::error_code ec;
    TG_CHECK(fs::exists(root, ec), "{}: the directory given, '{}', does not exist", source.name, root.string());
    TG_CHECK(fs::is_directory(root, ec), "{}: '{}', given as the data directory, is not a directory", source.name,
             root.string());
    images_path = find_file(root, image_file);
    labels_path = find_file(root, label_file);
    TG_CHECK(images_path && labels_path, "{}: the directory given, '{}', has no {} file {} (with or without .gz)",
             source.name, root.string(), images_path ? "labels" : "images",
             images_path ? label_file.name : image_file.name);
  }
  if (!source.dir_env.empty()) {
    const auto dir = env_or_empty(source.dir_env);
    candidates.push_back({dir, dir.empty() ? "$" + source.dir_env + " is not set" : "$" + source.dir_env});
  }
  if (const auto dir = env_or_empty("TAPEGRAD_DATA"); !dir.empty())
    candidates.push_back({fs::path(dir) / source.cache_name, "$TAPEGRAD_DATA/" + source.cache_name});
  if (!cache.empty()) candidates.push_back({cache, "the download cache"});
  for (const auto& dir : source.system_dirs) candidates.push_back({dir, "system data directory"});

  std::vector<std::string> looked;
  for (const auto& c : candidates) {
    if (images_path && labels_path) break;
    if (c.dir.empty()) {
      looked.push_back(c.origin);
      continue;
    }
    images_path = find_file(c.dir, image_file);
    labels_path = find_file(c.dir, label_file);
    if (images_path && labels_path) break;
    std::error_code ec;
    const char* what = !fs::exists(c.dir, ec)         ? "does not exist"
                       : !fs::is_directory(c.dir, ec) ? "is not a directory"
                       : images_path                  ? "has no labels file"
                       : labels_path                  ? "has no images file"
                                                      : "has neither file";
    looked.push_back(fmt::format("{} ({}): {}", c.dir.string(), c.origin, what));
  }

  if (!(images_path && labels_path)) {
    std::vector<std::string> mirrors = options.mirrors;
    if (mirrors.empty()) mirrors = mirrors_from_env(source.mirrors_env.c_str());
    if (mirrors.empty()) mirrors = source.mirrors;
    std::string download_error;
    if (!options.download) {
      download_error = "downloading is off (MnistOptions::download = false)";
    } else if (cache.empty()) {
      download_error = "no cache directory to download into (set HOME or XDG_CACHE_HOME, or MnistOptions::cache_dir)";
    } else {
      const DownloadOptions dl{.mirrors = mirrors, .progress = options.progress, .quiet = options.quiet};
      try {
        for (const RemoteFile* f : {&image_file, &label_file}) {
          if (!find_file(cache, *f)) download_file(*f, cache, dl);
        }
        images_path = find_file(cache, image_file);
        labels_path = find_file(cache, label_file);
      } catch (const Error& e) {
        download_error = e.what();
      }
    }
    TG_CHECK(images_path && labels_path,
             "{}: cannot find the {} files {} and {} (with or without .gz).\nLooked in:\n  {}\nDownload: {}\n"
             "To get the files, download them from {} into {}, or point {} (or MnistOptions::root) at a directory "
             "that holds them.",
             source.name, split_name, image_file.name, label_file.name, fmt::join(looked, "\n  "), download_error,
             fmt::join(mirrors, " or "), cache.empty() ? "a directory" : cache.string(),
             source.dir_env.empty() ? "a directory" : "$" + source.dir_env);
  }

  auto data = std::make_shared<Data>();
  data->classes = source.classes;
  data->directory = images_path->parent_path().string();
  data->split = split;
  IdxArray images = read_checked(*images_path, image_file, {.type = IdxType::u8, .rank = 3},
                                 fmt::format("{} {} images, {}", source.name, split_name, image_file.name));
  IdxArray labels = read_checked(*labels_path, label_file, {.type = IdxType::u8, .rank = 1},
                                 fmt::format("{} {} labels, {}", source.name, split_name, label_file.name));
  TG_CHECK(images.dims[1] == rows && images.dims[2] == cols, "{}: '{}' holds images of {}×{} pixels, expected {}×{}",
           source.name, images_path->string(), images.dims[1], images.dims[2], rows, cols);
  TG_CHECK(images.dims[0] == labels.dims[0], "{}: '{}' holds {} images but '{}' holds {} labels", source.name,
           images_path->string(), images.dims[0], labels_path->string(), labels.dims[0]);
  for (std::size_t i = 0; i < labels.bytes.size(); ++i) {
    TG_CHECK(labels.bytes[i] < source.classes.size(), "{}: '{}' holds label {} at index {}; labels must be below {}",
             source.name, labels_path->string(), labels.bytes[i], i, source.classes.size());
  }
  data->pixels = std::move(images.bytes);
  data->labels = std::move(labels.bytes);
  data_ = std::move(data);
}

std::size_t MNIST::size() const { return data_->labels.size(); }

Batch MNIST::get_batch(std::span<const std::size_t> indices) const {
  const std::size_t n = size(), pixels = rows * cols;
  auto x = xt::xarray<float>::from_shape({indices.size(), std::size_t{1}, rows, cols});
  auto y = xt::xarray<std::int64_t>::from_shape({indices.size()});
  float* dst = x.data();
  for (std::size_t b = 0; b < indices.size(); ++b) {
    TG_CHECK(indices[b] < n, "MNIST::get_batch: index {} out of range for {} examples", indices[b], n);
    y(b) = data_->labels[indices[b]];
  }
  // Shuffled images are far apart in memory: fetching the images two ahead while this one is
  // converted hides most of the wait for them (the conversion stalled on its loads). Split
  // across the threads: a batch of 128 took ~0.1 ms, serial in a training step.
  parallel_for(indices.size(), 16, [&](std::size_t begin, std::size_t end) {
    auto prefetch = [&](std::size_t b) {
      if (b < end)
        for (std::size_t line = 0; line < pixels; line += 64)
          __builtin_prefetch(data_->pixels.data() + indices[b] * pixels + line);
    };
    prefetch(begin + 1);
    for (std::size_t b = begin; b < end; ++b) {
      prefetch(b + 2);
      scale_pixels(data_->pixels.data() + indices[b] * pixels, pixels, dst + b * pixels);
    }
  });
  return {Tensor(std::move(x)), Tensor(std::move(y))};
}

Tensor MNIST::images(std::size_t begin, std::size_t end) const {
  TG_CHECK(begin <= end && end <= size(), "MNIST::images: range [{}, {}) outside the {} images", begin, end, size());
  std::vector<std::size_t> indices(end - begin);
  for (std::size_t i = 0; i < indices.size(); ++i) indices[i] = begin + i;
  return get_batch(indices).x;
}

Tensor MNIST::images() const { return images(0, size()); }

Tensor MNIST::labels() const {
  auto y = xt::xarray<std::int64_t>::from_shape({size()});
  for (std::size_t i = 0; i < size(); ++i) y(i) = data_->labels[i];
  return Tensor(std::move(y));
}

std::span<const std::uint8_t> MNIST::pixels() const { return data_->pixels; }
std::span<const std::uint8_t> MNIST::raw_labels() const { return data_->labels; }
const std::vector<std::string>& MNIST::classes() const { return data_->classes; }
Split MNIST::split() const { return data_->split; }
const std::string& MNIST::directory() const { return data_->directory; }

FashionMNIST::FashionMNIST(Split split, const MnistOptions& options) : MNIST(fashion_mnist_source(), split, options) {}

namespace {
MnistData load_both(const MnistSource& source, const MnistOptions& options) {
  const MNIST train(source, Split::train, options);
  const MNIST test(source, Split::test, options);
  return {train.images(), train.labels(), test.images(), test.labels()};
}
}  // namespace

MnistData load_mnist(const MnistOptions& options) { return load_both(mnist_source(), options); }
MnistData load_fashion_mnist(const MnistOptions& options) { return load_both(fashion_mnist_source(), options); }

}  // namespace tg::datasets
