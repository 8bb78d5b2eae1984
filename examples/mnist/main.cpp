// The Keras MNIST tutorial in C++ with tapegrad: load the data, build the Sequential model,
// compile, fit with validation_split, evaluate on the test set, plot the training curves.
//
//   mnist                         # the tutorial: 2 epochs, batch 32, validation_split 0.2
//   mnist --model deep --epochs 12 --out runs/deep
//   mnist --load runs/deep/model.safetensors --model deep
//   mnist --model transformer --epochs 5   # a small vision transformer over 7x7 patches
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <thread>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/runtime.hpp"
#include "tapegrad/datasets/mnist.hpp"
#include "tapegrad/distributed/distributed.hpp"
#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/conv.hpp"
#include "tapegrad/nn/dropout.hpp"
#include "tapegrad/nn/flatten.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/pooling.hpp"
#include "tapegrad/nn/rnn.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/nn/train/callbacks.hpp"
#include "tapegrad/nn/train/metrics.hpp"
#include "tapegrad/nn/train/model.hpp"
#include "tapegrad/nn/train/plot.hpp"
#include "tapegrad/ops/loss.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"
#include "tapegrad/optim/adam.hpp"
#include "vision_transformer.hpp"

namespace {

// Option checks with plain messages (CLI11's own print DBL_MAX as a 309-digit bound, and let
// "-1" through to an unsigned option as 2^64 - 1).
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        std::uint64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
          return fmt::format("'{}' is not a whole number from {} to {}", text, min, max);
        return {};
      },
      fmt::format("INT in [{}, {}]", min, max));
}

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
          return fmt::format("'{}' is not a number above 0", text);
        return {};
      },
      "NUMBER > 0");
}

// Fails now, with the system's reason, if results cannot be written into `dir` (instead of after
// the training).
void check_writable(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TG_CHECK(!ec, "--out: cannot create '{}': {}", dir.string(), ec.message());
  const std::filesystem::path probe = dir / fmt::format(".write-test-{}", ::getpid());
  const int fd = ::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
  TG_CHECK(fd >= 0, "--out: cannot write into '{}': {}", dir.string(), std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// A saved model must hold numbers: a NaN or infinite weight (a diverged run, a damaged file)
// would evaluate without a word.
void check_finite(const tg::nn::Module& module, const std::string& path) {
  for (const auto& [name, p] : module.named_parameters()) {
    const tg::Tensor w = p.to(tg::float64);
    const double* v = w.data<double>();
    for (std::size_t i = 0; i < w.numel(); ++i)
      TG_CHECK(std::isfinite(v[i]), "--load: '{}' holds a non-finite value ({}) in '{}' at index {}", path, v[i], name,
               i);
  }
}

using namespace tg;

// Labels as one-hot rows, per batch: the tutorial's np.eye(num_classes)[y] without holding all
// 60,000 rows in memory.
class OneHotLabels : public datasets::Dataset {
 public:
  OneHotLabels(std::shared_ptr<const datasets::Dataset> base, std::size_t num_classes, std::size_t limit)
      : base_(std::move(base)),
        num_classes_(num_classes),
        size_(limit ? std::min(limit, base_->size()) : base_->size()) {}
  std::size_t size() const override { return size_; }
  datasets::Batch get_batch(std::span<const std::size_t> indices) const override {
    datasets::Batch b = base_->get_batch(indices);
    return {b.x, one_hot(b.y, num_classes_)};
  }

 private:
  std::shared_ptr<const datasets::Dataset> base_;
  std::size_t num_classes_;
  std::size_t size_;
};

// The tutorial's model: Conv2D(32, 3x3, relu) → MaxPooling2D(2x2) → Flatten → Dense(10, softmax).
nn::Sequential tutorial_model() {
  return nn::Sequential{
      nn::Conv2d(1, 32, 3, {.activation = nn::Activation::relu}),
      nn::MaxPool2d(2),
      nn::Flatten(),
      nn::Linear(32 * 13 * 13, 10, {.activation = nn::Activation::softmax}),
  };
}

// Keras's mnist_convnet example: two conv blocks, dropout, then the classifier.
nn::Sequential deep_model() {
  return nn::Sequential{
      nn::Conv2d(1, 32, 3, {.activation = nn::Activation::relu}),
      nn::MaxPool2d(2),
      nn::Conv2d(32, 64, 3, {.activation = nn::Activation::relu}),
      nn::MaxPool2d(2),
      nn::Flatten(),
      nn::Dropout(0.5),
      nn::Linear(64 * 5 * 5, 10, {.activation = nn::Activation::softmax}),
  };
}

// Each image as a sequence: [B, 1, 28, 28] → [B, 28, 28], 28 steps (rows) of 28 pixels.
class ImageRows : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override { return reshape(x, {static_cast<std::int64_t>(x.shape(0)), 28, 28}); }
};

// An LSTM of 128 units reads the rows; Dense(10, softmax) classifies its last output.
nn::Sequential lstm_model() {
  return nn::Sequential{
      ImageRows(),
      nn::LSTM(28, 128, {.init = nn::RecurrentInit::keras}),
      nn::Linear(128, 10, {.activation = nn::Activation::softmax}),
  };
}

nn::AnyModule make_model(const std::string& kind) {
  if (kind == "deep") return deep_model();
  if (kind == "lstm") return lstm_model();
  if (kind == "transformer") return mnist_example::VisionTransformer();
  return tutorial_model();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tapegrad's MNIST example: the Keras tutorial (a small CNN) trained and evaluated in C++"};
  std::string data_dir, dataset = "mnist", model_kind = "tutorial", out_dir = "mnist-out", load_path;
  int epochs = 2, threads = 0, verbose = 1;
  std::size_t batch_size = 32, limit = 0;
  double lr = 1e-3, validation_split = 0.2;
  std::uint64_t seed = 42;
  bool no_download = false, use_mpi = false;
  app.add_option("--data", data_dir, "Directory holding the IDX files (else $TG_MNIST_DIR, the cache, a download)");
  app.add_option("--dataset", dataset, "mnist or fashion-mnist")->check(CLI::IsMember({"mnist", "fashion-mnist"}));
  app.add_option("--model", model_kind,
                 "tutorial (Conv-Pool-Dense), deep (Keras's mnist_convnet), lstm (LSTM(128) over the rows) or "
                 "transformer (a vision transformer over 7x7 patches)")
      ->check(CLI::IsMember({"tutorial", "deep", "lstm", "transformer"}));
  app.add_option("--epochs", epochs, "Training epochs")->check(whole_number(0, 1000000));
  app.add_option("--batch-size", batch_size, "Samples per batch")->check(whole_number(1, 1u << 30));
  app.add_option("--lr", lr, "Adam's learning rate (default 1e-3; 2e-3 for --model lstm)")->check(positive_number());
  app.add_option("--validation-split", validation_split, "Fraction of the training set held out (the last samples)")
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--seed", seed, "Seed of the initial weights, the shuffles and dropout")
      ->check(whole_number(0, std::numeric_limits<std::uint64_t>::max()));
  app.add_option("--threads", threads, "Threads for tapegrad's loops (0: all cores)")->check(whole_number(0, 1024));
  app.add_option("--out", out_dir, "Where history.csv, history.svg and model.safetensors go");
  app.add_option("--load", load_path, "Evaluate this saved model (safetensors) instead of training");
  app.add_option("--limit", limit, "Use only the first N training and test samples (0: all)")
      ->check(whole_number(0, 1000000000));
  app.add_option("--verbose", verbose, "0 silent, 1 progress bar, 2 one line per epoch")->check(CLI::Range(0, 2));
  app.add_flag("--no-download", no_download, "Fail instead of downloading missing files");
  app.add_flag("--distributed", use_mpi,
               "Train data-parallel over the processes of an MPI job (mpirun -np N ... --distributed): the global "
               "batch is split over the ranks; rank 0 prints and writes");
  CLI11_PARSE(app, argc, argv);

  std::optional<distributed::Environment> mpi;
  try {
    if (use_mpi) mpi.emplace(argc, argv);
  } catch (const Error& e) {
    fmt::print(stderr, "mnist: {}\n", e.what());
    return 1;
  }
  const bool chief = !mpi || mpi->rank() == 0;
  // On failure one rank stops them all: the others would wait for it forever.
  auto fail = [&](const char* what) {
    fmt::print(stderr, "mnist: {}\n", what);
    if (mpi && mpi->world_size() > 1) mpi->abort(what);
    return 1;
  };
  try {
    // A program (not a library) may tune its own process: training allocates MB-sized tensors
    // every step, and glibc's default mmap for each made steps several times slower.
    tune_malloc_for_training();
    if (threads == 0 && mpi) {
      // The ranks on one machine share its cores (Open MPI says how many ranks run here).
      const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
      const int ranks_here = local ? std::max(1, std::atoi(local)) : mpi->world_size();
      threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_here);
    }
    if (threads > 0) set_num_threads(threads);
    const std::filesystem::path out(out_dir);
    if (load_path.empty() && chief) check_writable(out);  // before the data and the training, not after
    // The LSTM reaches its accuracy in two epochs with a larger step than Keras's default.
    if (model_kind == "lstm" && app.count("--lr") == 0) lr = 2e-3;
    const datasets::MnistOptions data_options{.root = data_dir, .download = !no_download};
    const datasets::MnistSource source =
        dataset == "mnist" ? datasets::mnist_source() : datasets::fashion_mnist_source();
    // The pixels stay uint8 in memory; each batch is scaled to float as it is used.
    auto train = std::make_shared<const datasets::MNIST>(source, datasets::Split::train, data_options);
    auto test = std::make_shared<const datasets::MNIST>(source, datasets::Split::test, data_options);
    const std::size_t num_classes = train->classes().size();
    const OneHotLabels train_set(train, num_classes, limit);
    const OneHotLabels test_set(test, num_classes, limit);

    manual_seed(seed);  // the initial weights and dropout masks come from the default generator
    nn::Model model(make_model(model_kind), {.input_shape = {1, 28, 28}});
    if (mpi) model.distribute();  // takes rank 0's initial weights
    model.compile({
        .optimizer = std::make_shared<optim::Adam>(
            model.parameters(), optim::AdamOptions{.lr = lr, .formula = optim::AdamOptions::Formula::keras}),
        .loss = "categorical_crossentropy",
        .metrics = {"accuracy"},
    });
    if (verbose > 0 && chief) {
      model.summary();
      if (mpi)
        fmt::print("Data-parallel over {} ranks: {} samples per rank per step\n", mpi->world_size(),
                   batch_size / static_cast<std::size_t>(mpi->world_size()));
    }

    if (!load_path.empty()) {
      model.load(load_path);
      check_finite(model.module(), load_path);
    } else {
      // The transformer's step decays along a cosine over the epochs (half a period): it reaches
      // 0.98 in five epochs where a constant step stays near 0.97.
      nn::CallbackList schedule;
      if (model_kind == "transformer")
        schedule.push_back(std::make_shared<nn::LearningRateScheduler>(
            [lr, epochs](int epoch, double) { return lr * (1 + std::cos(std::numbers::pi * epoch / epochs)) / 2; }));
      const nn::History history = model.fit(train_set, {
                                                           .epochs = epochs,
                                                           .batch_size = batch_size,
                                                           .validation_split = validation_split,
                                                           .seed = seed,
                                                           .verbose = verbose,
                                                           .callbacks = schedule,
                                                       });
      if (chief) {
        if (!history.empty()) {
          history.save_csv(out / "history.csv");
          nn::save_history_plot(history, out / "history.svg");
        }
        model.save(out / "model.safetensors");
      }
      if (verbose > 0 && chief)
        fmt::print("Wrote {0}/history.csv, {0}/history.svg and {0}/model.safetensors\n", out.string());
    }

    const nn::Logs score = model.evaluate(test_set, {.batch_size = batch_size});
    if (verbose > 0) {
      // The tutorial's test step: each class's precision (with recall, F1), and the confusion matrix.
      // Predicted classes chunk by chunk, so the float copy of the test images stays small.
      const std::size_t n_test = test_set.size();
      TensorList predicted;
      for (std::size_t begin = 0; begin < n_test; begin += 1000) {
        const std::size_t end = std::min(n_test, begin + 1000);
        predicted.push_back(argmax(model.predict(test->images(begin, end), {.batch_size = batch_size}), 1));
      }
      const Tensor y_pred = concat(predicted);
      if (chief) {
        const Tensor y_test = slice(test->labels(), 0, 0, static_cast<std::int64_t>(n_test));
        fmt::print("\n{}\n", nn::classification_report(y_test, y_pred,
                                                       {.num_classes = num_classes, .target_names = train->classes()})
                                 .to_string(4));
        fmt::print("Confusion matrix (rows: true class, columns: predicted class):\n{}\n",
                   nn::confusion_matrix_string(nn::confusion_matrix(y_test, y_pred, num_classes), train->classes()));
      }
    }
    if (chief) {
      fmt::print("Test loss: {:.4f}\n", score.at("loss"));
      fmt::print("Test accuracy: {:.4f}\n", score.at("accuracy"));
    }
  } catch (const Error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
