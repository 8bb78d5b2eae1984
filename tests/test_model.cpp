// nn::Model (Keras verbs), History, callbacks, progress and plots.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/nn/activation.hpp"
#include "tapegrad/nn/batchnorm.hpp"
#include "tapegrad/nn/conv.hpp"
#include "tapegrad/nn/flatten.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/pooling.hpp"
#include "tapegrad/nn/regularizer.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/nn/train/callbacks.hpp"
#include "tapegrad/nn/train/checkpoint.hpp"
#include "tapegrad/nn/train/model.hpp"
#include "tapegrad/nn/train/plot.hpp"
#include "tapegrad/nn/train/progress.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/gradcheck.hpp"
#include "tapegrad/ops/loss.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"
#include "tapegrad/optim/adam.hpp"
#include "tapegrad/optim/lr_scheduler.hpp"
#include "tapegrad/optim/sgd.hpp"
#include "temp_dir.hpp"

using namespace tg;
namespace fs = std::filesystem;

namespace {

// Three Gaussian blobs in 2-D: x [n,2] float32, y [n] int64.
std::pair<Tensor, Tensor> blobs(std::size_t n, std::uint64_t seed) {
  Generator g(seed);
  const double centers[3][2] = {{2, 0}, {-1, 2}, {-1, -2}};
  xt::xarray<float> x = xt::zeros<float>({n, std::size_t(2)});
  xt::xarray<std::int64_t> y = xt::zeros<std::int64_t>({n});
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = i % 3;
    y(i) = static_cast<std::int64_t>(c);
    x(i, 0) = static_cast<float>(centers[c][0] +
                                 0.7 * std::sqrt(-2 * std::log(1 - g.uniform())) * std::cos(6.283185 * g.uniform()));
    x(i, 1) = static_cast<float>(centers[c][1] +
                                 0.7 * std::sqrt(-2 * std::log(1 - g.uniform())) * std::cos(6.283185 * g.uniform()));
  }
  return {Tensor(x), Tensor(y)};
}

nn::Model small_model(std::uint64_t seed = 7) {
  manual_seed(seed);
  return nn::Model(
      nn::Sequential{nn::Linear(2, 16, {.activation = nn::Activation::relu}), nn::Linear(16, 3), nn::Softmax()},
      {.input_shape = {2}});
}

void compile(nn::Model& m, double lr = 0.01) {
  m.compile({.optimizer = "adam", .loss = "categorical_crossentropy", .metrics = {"accuracy"}, .learning_rate = lr});
}

// A dataset that records which indices each batch asked for.
class RecordingDataset : public datasets::Dataset {
 public:
  explicit RecordingDataset(std::size_t n) : n_(n) {}
  std::size_t size() const override { return n_; }
  datasets::Batch get_batch(std::span<const std::size_t> indices) const override {
    requests.emplace_back(indices.begin(), indices.end());
    xt::xarray<float> x = xt::zeros<float>({indices.size(), std::size_t(2)});
    xt::xarray<std::int64_t> y = xt::zeros<std::int64_t>({indices.size()});
    for (std::size_t i = 0; i < indices.size(); ++i) {
      x(i, 0) = static_cast<float>(indices[i]) / static_cast<float>(n_);
      y(i) = static_cast<std::int64_t>(indices[i] % 3);
    }
    return {Tensor(x), Tensor(y)};
  }
  mutable std::vector<std::vector<std::size_t>> requests;

 private:
  std::size_t n_;
};

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("tg_test_model_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("one_hot: rows of the identity, range checked") {
  Tensor y(xt::xarray<std::int64_t>{2, 0, 1});
  Tensor h = one_hot(y, 3);
  CHECK(h.shape() == Shape{3, 3});
  CHECK(h.array<float>() == xt::xarray<float>{{0, 0, 1}, {1, 0, 0}, {0, 1, 0}});
  CHECK_THROWS_WITH_AS(one_hot(Tensor(xt::xarray<std::int64_t>{3}), 3), doctest::Contains("outside [0, 3)"), Error);
}

TEST_CASE("Model::fit learns blobs; History has Keras's keys, one value per epoch") {
  auto [x, y] = blobs(600, 1);
  nn::Model model = small_model();
  compile(model);
  const nn::History h =
      model.fit(x, one_hot(y, 3), {.epochs = 4, .batch_size = 32, .validation_split = 0.2, .verbose = 0});
  CHECK(h.keys() == std::vector<std::string>{"loss", "accuracy", "val_loss", "val_accuracy"});
  CHECK(h.epoch() == std::vector<int>{0, 1, 2, 3});
  for (const auto& k : h.keys()) CHECK(h[k].size() == 4);
  CHECK(h["loss"].back() < h["loss"].front());
  CHECK(h["val_accuracy"].back() > 0.9);
  const nn::Logs ev = model.evaluate(x, y);
  CHECK(ev.at("accuracy") > 0.9);
  // int64 class targets and one-hot targets give the same loss.
  CHECK(ev.at("loss") == doctest::Approx(model.evaluate(x, one_hot(y, 3)).at("loss")).epsilon(1e-6));
}

TEST_CASE("Model: the loss comes from logits but predict returns probabilities") {
  auto [x, y] = blobs(90, 2);
  nn::Model model = small_model();
  compile(model);
  model.fit(x, y, {.epochs = 1, .verbose = 0});
  const Tensor p = model.predict(x, {.batch_size = 16});
  REQUIRE(p.shape() == Shape{90, 3});
  const Tensor row_sums = sum(p, {1});
  for (std::size_t i = 0; i < 90; ++i) CHECK(row_sums.array<float>()(i) == doctest::Approx(1.0).epsilon(1e-5));
  // evaluate's loss equals -mean(log p[y]) computed from predict's probabilities.
  double manual = 0;
  for (std::size_t i = 0; i < 90; ++i)
    manual -= std::log(static_cast<double>(p.array<float>()(i, static_cast<std::size_t>(y.array<std::int64_t>()(i)))));
  CHECK(model.evaluate(x, y).at("loss") == doctest::Approx(manual / 90).epsilon(1e-4));
}

TEST_CASE("Model: a Linear with fused softmax trains on logits like Linear + Softmax") {
  auto [x, y] = blobs(60, 12);
  manual_seed(4);
  nn::Model fused(nn::Sequential{nn::Linear(2, 3, {.activation = nn::Activation::softmax})});
  manual_seed(4);
  nn::Model split(nn::Sequential{nn::Linear(2, 3), nn::Softmax()});
  compile(fused);
  compile(split);
  const nn::History a = fused.fit(x, y, {.epochs = 2, .verbose = 0});
  const nn::History b = split.fit(x, y, {.epochs = 2, .verbose = 0});
  CHECK(a["loss"] == b["loss"]);
  CHECK(fused.predict(x).array<float>() == split.predict(x).array<float>());
  // Saturated wrong predictions still give a finite loss and gradient (no log(0)).
  Tensor far = x * 1000.0;
  CHECK(std::isfinite(fused.evaluate(far, y).at("loss")));
}

namespace {
// A Dense layer a user changed (its output shifted before the softmax): Model must run its
// forward, not go round it to the logits.
struct ShiftedDense : nn::Linear {
  using nn::Linear::Linear;
  int calls = 0;
  Tensor forward(const Tensor& x) override {
    ++calls;
    return nn::Linear::forward(x + 0.5);
  }
};
}  // namespace

TEST_CASE("Model runs a Linear subclass's own forward in fit and evaluate") {
  auto [x, y] = blobs(60, 13);
  nn::Sequential net{nn::Linear(2, 4), ShiftedDense(4, 3, {.activation = nn::Activation::softmax})};
  const auto dense = net.at<ShiftedDense>(1);
  CHECK_FALSE(net.has_logits());  // a subclass is taken as written: no logits path through it
  nn::Model model(net);
  compile(model);
  model.fit(x, y, {.epochs = 1, .batch_size = 20, .verbose = 0});
  CHECK(dense->calls == 3);
  // evaluate's loss is the probabilities' cross-entropy of the subclass's own output.
  const Tensor p = model.predict(x);
  double manual = 0;
  for (std::size_t i = 0; i < 60; ++i)
    manual -= std::log(static_cast<double>(p.array<float>()(i, static_cast<std::size_t>(y.array<std::int64_t>()(i)))));
  CHECK(model.evaluate(x, y).at("loss") == doctest::Approx(manual / 60).epsilon(1e-4));
  // A plain Linear with a softmax, and a Sequential ending in one, do have logits.
  CHECK(nn::Sequential{nn::Linear(2, 3, {.activation = nn::Activation::softmax})}.has_logits());
  CHECK(nn::Sequential{nn::Linear(2, 3), nn::Softmax()}.has_logits());
  CHECK(nn::Sequential{nn::Linear(2, 3), nn::Softmax(1)}.has_logits());
  CHECK_FALSE(nn::Sequential{nn::Linear(2, 3), nn::Softmax(0)}.has_logits());
}

TEST_CASE("Model::fit: validation_split holds out the last samples; the rest is reshuffled each epoch") {
  RecordingDataset data(20);
  nn::Model model = small_model();
  compile(model);
  model.fit(data, {.epochs = 2, .batch_size = 4, .validation_split = 0.25, .seed = 3, .verbose = 0});
  // Per epoch: 4 training batches (15 samples), then 2 validation batches (5 samples).
  REQUIRE(data.requests.size() == 12);
  std::vector<std::vector<std::size_t>> epochs(2);
  for (int e = 0; e < 2; ++e) {
    for (int b = 0; b < 4; ++b) {
      const auto& r = data.requests[static_cast<std::size_t>(e * 6 + b)];
      epochs[static_cast<std::size_t>(e)].insert(epochs[static_cast<std::size_t>(e)].end(), r.begin(), r.end());
    }
    std::vector<std::size_t> val;
    for (int b = 4; b < 6; ++b) {
      const auto& r = data.requests[static_cast<std::size_t>(e * 6 + b)];
      val.insert(val.end(), r.begin(), r.end());
    }
    CHECK(val == std::vector<std::size_t>{15, 16, 17, 18, 19});
    std::vector<std::size_t> sorted = epochs[static_cast<std::size_t>(e)];
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::size_t> expected(15);
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(sorted == expected);
  }
  CHECK(epochs[0] != epochs[1]);  // reshuffled
  std::vector<std::size_t> expected(15);
  std::iota(expected.begin(), expected.end(), 0);
  CHECK(epochs[0] != expected);

  // Without shuffle the training order is 0..14; Keras's split rounds the training part up.
  RecordingDataset plain(10);
  model.fit(plain, {.epochs = 1, .batch_size = 100, .validation_split = 0.25, .shuffle = false, .verbose = 0});
  REQUIRE(plain.requests.size() == 2);
  CHECK(plain.requests[0] == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7});  // ceil(10 * 0.75) = 8
  CHECK(plain.requests[1] == std::vector<std::size_t>{8, 9});
}

TEST_CASE("Model::fit on a Dataset with a validation Dataset; validation_data for tensors") {
  auto [x, y] = blobs(120, 13);
  auto [vx, vy] = blobs(30, 14);
  const datasets::TensorDataset train(x, y), val(vx, vy);
  nn::Model model = small_model();
  compile(model);
  const nn::History h = model.fit(train, {.epochs = 2, .validation_dataset = &val, .verbose = 0});
  CHECK(h.keys() == std::vector<std::string>{"loss", "accuracy", "val_loss", "val_accuracy"});
  CHECK(h["val_loss"].back() == doctest::Approx(model.evaluate(vx, vy).at("loss")));
  const nn::History t = model.fit(x, y, {.epochs = 1, .validation_data = {vx, vy}, .verbose = 0});
  CHECK(t["val_accuracy"].back() == doctest::Approx(model.evaluate(val).at("accuracy")));
}

TEST_CASE("Model::fit: same seed → identical History; another seed → a different one") {
  auto [x, y] = blobs(300, 4);
  auto run = [&](std::uint64_t seed) {
    nn::Model model = small_model(11);
    compile(model);
    return model.fit(x, y, {.epochs = 3, .batch_size = 16, .validation_split = 0.2, .seed = seed, .verbose = 0});
  };
  const nn::History a = run(5), b = run(5), c = run(6);
  for (const auto& k : a.keys()) {
    CHECK(a[k] == b[k]);
  }
  CHECK(a["loss"] != c["loss"]);
}

TEST_CASE("callbacks: a custom callback sees every epoch and batch; LearningRateScheduler sets the lr") {
  auto [x, y] = blobs(100, 5);
  nn::Model model = small_model();
  compile(model);
  auto cb = std::make_shared<nn::LambdaCallback>();
  int train_begin = 0, train_end = 0, batches = 0;
  std::vector<int> begun, ended;
  std::vector<double> lrs;
  cb->train_begin = [&](const nn::Logs&) { ++train_begin; };
  cb->train_end = [&](const nn::Logs&) { ++train_end; };
  cb->epoch_begin = [&](int e, const nn::Logs&) { begun.push_back(e); };
  cb->epoch_end = [&](int e, const nn::Logs& logs) {
    ended.push_back(e);
    CHECK(logs.contains("loss"));
    CHECK(logs.contains("val_accuracy"));
    lrs.push_back(cb->model().optimizer().lr());
  };
  cb->batch_end = [&](int, const nn::Logs& logs) {
    ++batches;
    CHECK(logs.contains("accuracy"));
  };
  auto sched = std::make_shared<nn::LearningRateScheduler>([](int epoch, double) { return 0.01 / (epoch + 1); });
  model.fit(x, y, {.epochs = 3, .batch_size = 32, .validation_split = 0.2, .verbose = 0, .callbacks = {sched, cb}});
  CHECK(train_begin == 1);
  CHECK(train_end == 1);
  CHECK(begun == std::vector<int>{0, 1, 2});
  CHECK(ended == std::vector<int>{0, 1, 2});
  CHECK(batches == 3 * 3);  // 80 training samples in batches of 32
  REQUIRE(lrs.size() == 3);
  CHECK(lrs[0] == doctest::Approx(0.01));
  CHECK(lrs[2] == doctest::Approx(0.01 / 3));
}

TEST_CASE("ReduceLROnPlateau as a fit callback reduces the learning rate on a plateau, as Keras's") {
  auto [x, y] = blobs(60, 15);
  nn::Model model = small_model();
  auto opt = std::make_shared<optim::Adam>(model.parameters(), optim::AdamOptions{.lr = 0.01});
  model.compile({.optimizer = opt, .loss = "sparse_categorical_crossentropy"});
  // No later epoch beats the first by min_delta: with patience 2 (Keras's count: reduce at the
  // second epoch without improvement), epochs 2 and 4 reduce.
  auto plateau = std::make_shared<nn::ReduceLROnPlateau>(
      nn::PlateauOptions{.monitor = "loss", .factor = 0.5, .patience = 2, .min_delta = 1e9});
  model.fit(x, y, {.epochs = 5, .verbose = 0, .callbacks = {plateau}});
  CHECK(opt->lr() == doctest::Approx(0.0025));
  // A steadily falling loss with a small min_delta never reduces.
  model.fit(x, y,
            {.epochs = 3,
             .verbose = 0,
             .callbacks = {std::make_shared<nn::ReduceLROnPlateau>(
                 nn::PlateauOptions{.monitor = "loss", .patience = 0, .min_delta = 0})}});
  CHECK(opt->lr() == doctest::Approx(0.0025));
  CHECK_THROWS_WITH_AS(
      model.fit(x, y, {.epochs = 1, .verbose = 0, .callbacks = {std::make_shared<nn::ReduceLROnPlateau>()}}),
      doctest::Contains("ReduceLROnPlateau: the epoch logs have no 'val_loss' to monitor"), Error);
  CHECK_THROWS_WITH_AS(nn::ReduceLROnPlateau({.factor = 1.0}), doctest::Contains("factor must be in (0, 1)"), Error);
}

TEST_CASE("LearningRateScheduler steps a tg::optim scheduler after every epoch") {
  auto [x, y] = blobs(60, 15);
  nn::Model model = small_model();
  auto opt = std::make_shared<optim::Adam>(model.parameters(), optim::AdamOptions{.lr = 0.01});
  model.compile({.optimizer = opt, .loss = "sparse_categorical_crossentropy"});
  auto step = std::make_shared<optim::StepLR>(*opt, 1, 0.5);
  model.fit(x, y, {.epochs = 2, .verbose = 0, .callbacks = {std::make_shared<nn::LearningRateScheduler>(step)}});
  CHECK(opt->lr() == doctest::Approx(0.0025));
}

TEST_CASE("EarlyStopping stops after `patience` epochs without improvement and restores the best weights") {
  auto [x, y] = blobs(120, 6);
  nn::Model model = small_model();
  compile(model);
  // In max mode a falling loss never improves after epoch 0: stop at epoch 2 with patience 2.
  auto stop = std::make_shared<nn::EarlyStopping>(nn::EarlyStoppingOptions{
      .monitor = "loss", .patience = 2, .mode = nn::MonitorMode::max, .restore_best_weights = true});
  nn::NamedTensors first;
  auto snap = std::make_shared<nn::LambdaCallback>();
  snap->epoch_end = [&](int e, const nn::Logs&) {
    if (e == 0) first = snap->model().state();
  };
  const nn::History h = model.fit(x, y, {.epochs = 10, .verbose = 0, .callbacks = {snap, stop}});
  CHECK(h.size() == 3);
  CHECK(stop->stopped_epoch() == 2);
  CHECK(stop->best_epoch() == 0);
  const nn::NamedTensors now = model.state();
  REQUIRE(now.size() == first.size());
  for (std::size_t i = 0; i < now.size(); ++i) CHECK(now[i].second.array<float>() == first[i].second.array<float>());

  auto missing = std::make_shared<nn::EarlyStopping>(nn::EarlyStoppingOptions{.monitor = "val_loss"});
  CHECK_THROWS_WITH_AS(model.fit(x, y, {.epochs = 2, .verbose = 0, .callbacks = {missing}}),
                       doctest::Contains("no 'val_loss'"), Error);
}

TEST_CASE("ModelCheckpoint with save_best_only writes only improving epochs; the file loads back") {
  auto [x, y] = blobs(120, 7);
  const fs::path dir = temp_dir("ckpt");
  nn::Model model = small_model();
  compile(model);
  nn::NamedTensors first;
  auto snap = std::make_shared<nn::LambdaCallback>();
  snap->epoch_end = [&](int e, const nn::Logs&) {
    if (e == 0) first = snap->model().state();
  };
  // max mode on a falling loss: only epoch 1 (the first) improves.
  auto ckpt = std::make_shared<nn::ModelCheckpoint>(
      dir / "ckpt-{epoch:02d}.safetensors",
      nn::ModelCheckpointOptions{.monitor = "loss", .save_best_only = true, .mode = nn::MonitorMode::max});
  model.fit(x, y, {.epochs = 3, .verbose = 0, .callbacks = {snap, ckpt}});
  CHECK(fs::exists(dir / "ckpt-01.safetensors"));
  CHECK_FALSE(fs::exists(dir / "ckpt-02.safetensors"));
  CHECK_FALSE(fs::exists(dir / "ckpt-03.safetensors"));
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  CHECK(files == 1);  // no temporary left behind

  nn::Model loaded = small_model(99);
  loaded.load(dir / "ckpt-01.safetensors");
  const nn::NamedTensors got = loaded.state();
  REQUIRE(got.size() == first.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i].second.array<float>() == first[i].second.array<float>());

  // A file that does not fit the architecture is refused, naming the tensor.
  manual_seed(1);
  nn::Model other(nn::Sequential{nn::Linear(2, 8), nn::Linear(8, 3)});
  CHECK_THROWS_AS(other.load(dir / "ckpt-01.safetensors"), Error);
  fs::remove_all(dir);
}

TEST_CASE("CSVLogger and History::save_csv write the per-epoch values") {
  auto [x, y] = blobs(90, 8);
  const fs::path dir = temp_dir("csv");
  nn::Model model = small_model();
  compile(model);
  const nn::History h = model.fit(x, y,
                                  {.epochs = 2,
                                   .validation_split = 0.2,
                                   .verbose = 0,
                                   .callbacks = {std::make_shared<nn::CSVLogger>(dir / "log.csv")}});
  const std::string text = read_text(dir / "log.csv");
  std::istringstream lines(text);
  std::string header, row;
  std::getline(lines, header);
  CHECK(header == "epoch,accuracy,loss,val_accuracy,val_loss");  // Keras's CSVLogger: sorted names
  std::vector<std::string> keys = h.keys();
  std::sort(keys.begin(), keys.end());
  for (int e = 0; e < 2; ++e) {
    REQUIRE(std::getline(lines, row));
    std::istringstream cells(row);
    std::string cell;
    std::getline(cells, cell, ',');
    CHECK(std::stoi(cell) == e);
    for (const auto& k : keys) {
      std::getline(cells, cell, ',');
      CHECK(std::stod(cell) == h[k][static_cast<std::size_t>(e)]);  // shortest round-trip text
    }
  }
  CHECK_FALSE(std::getline(lines, row));
  h.save_csv(dir / "history.csv");  // the history's own order, as a DataFrame of history.history
  CHECK(read_text(dir / "history.csv").rfind("epoch,loss,accuracy,val_loss,val_accuracy\n", 0) == 0);
  fs::remove_all(dir);
}

TEST_CASE("Model::summary prints Keras's table for the tutorial model") {
  manual_seed(0);
  nn::Model model(nn::Sequential{nn::Conv2d(1, 32, 3, {.activation = nn::Activation::relu}), nn::MaxPool2d(2),
                                 nn::Flatten(), nn::Linear(5408, 10), nn::Softmax()},
                  {.input_shape = {1, 28, 28}});
  const std::string s = model.summary_string();
  INFO(s);
  CHECK(s.find("Layer (type)") != std::string::npos);
  CHECK(s.find("Output Shape") != std::string::npos);
  CHECK(s.find("Param #") != std::string::npos);
  CHECK(s.find("conv2d (Conv2d)") != std::string::npos);
  CHECK(s.find("(None, 32, 26, 26)") != std::string::npos);
  CHECK(s.find("(None, 32, 13, 13)") != std::string::npos);
  CHECK(s.find("(None, 5408)") != std::string::npos);
  CHECK(s.find("(None, 10)") != std::string::npos);
  CHECK(s.find(" 320\n") != std::string::npos);
  CHECK(s.find(" 54,090\n") != std::string::npos);
  CHECK(s.find("Total params: 54,410\n") != std::string::npos);
  CHECK(s.find("Trainable params: 54,410\n") != std::string::npos);
  CHECK(s.find("Non-trainable params: 0\n") != std::string::npos);
}

TEST_CASE("Model::summary counts BatchNorm's moving statistics as non-trainable, not its batch counter") {
  // Keras: BatchNormalization(8) has 32 parameters, 16 of them non-trainable.
  nn::Model model(nn::Sequential{nn::Linear(4, 8), nn::BatchNorm1d(8)}, {.input_shape = {4}});
  const std::string s = model.summary_string();
  INFO(s);
  CHECK(s.find("batch_norm1d (BatchNorm1d)") != std::string::npos);
  CHECK(s.find(" 32\n") != std::string::npos);
  CHECK(s.find("Total params: 72\n") != std::string::npos);
  CHECK(s.find("Trainable params: 56\n") != std::string::npos);
  CHECK(s.find("Non-trainable params: 16\n") != std::string::npos);
}

TEST_CASE("Model: bad input gives clear errors") {
  auto [x, y] = blobs(30, 9);
  nn::Model model = small_model();
  CHECK_THROWS_WITH_AS(model.fit(x, y), doctest::Contains("not compiled"), Error);
  CHECK_THROWS_WITH_AS(model.evaluate(x, y), doctest::Contains("not compiled"), Error);
  compile(model);
  CHECK_THROWS_WITH_AS(model.fit(x, slice(y, 0, 0, 20), {.verbose = 0}),
                       doctest::Contains("x has 30 samples ([30, 2]) but y has 20"), Error);
  CHECK_THROWS_WITH_AS(model.fit(x, y, {.validation_split = 1.0, .verbose = 0}),
                       doctest::Contains("validation_split must be in [0, 1), got 1"), Error);
  CHECK_THROWS_WITH_AS(model.fit(x, y, {.validation_split = -0.1, .verbose = 0}),
                       doctest::Contains("validation_split must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(model.fit(x, y, {.batch_size = 0, .verbose = 0}), doctest::Contains("batch_size"), Error);
  CHECK_THROWS_WITH_AS(model.evaluate(x, slice(y, 0, 0, 3)), doctest::Contains("x has 30 samples"), Error);
  nn::Model m2 = small_model();
  CHECK_THROWS_WITH_AS(m2.compile({.optimizer = "adamax"}), doctest::Contains("unknown optimizer 'adamax'"), Error);
  CHECK_THROWS_WITH_AS(m2.compile({.loss = "hinge"}), doctest::Contains("unknown loss 'hinge'"), Error);
  CHECK_THROWS_WITH_AS(m2.compile({.metrics = {"auc"}}), doctest::Contains("auc"), Error);
  CHECK_FALSE(m2.compiled());
  // Labels out of range for the 3 outputs.
  CHECK_THROWS_AS(model.fit(x, full({30}, 5, int64), {.verbose = 0}), Error);
}

TEST_CASE("Model works with an optimizer object, a custom loss and float64") {
  auto [x, y] = blobs(150, 10);
  manual_seed(3);
  nn::Model model(nn::Sequential{nn::Linear(2, 3)});
  model.module().to(float64);
  auto opt = std::make_shared<optim::SGD>(model.parameters(), optim::SGDOptions{.lr = 0.1});
  // Mean squared error against one-hot targets, written by hand.
  model.compile({.optimizer = opt,
                 .loss = [](const Tensor& p, const Tensor& t) { return mean((p - t) * (p - t)); },
                 .metrics = {"acc"}});
  const nn::History h = model.fit(x, one_hot(y, 3, float64), {.epochs = 5, .verbose = 0});
  CHECK(h.keys() == std::vector<std::string>{"loss", "acc"});
  CHECK(h["loss"].back() < h["loss"].front());
  CHECK(model.predict(x).dtype() == float64);
}

TEST_CASE("ProgressBar draws Keras's line") {
  std::ostringstream os;
  nn::ProgressBar bar(1500, os, {.live = false});
  const std::string mid = bar.line(750, nn::Logs{{"loss", 0.12345}}, false);
  CHECK(mid.find(" 750/1500 [==============>...............] - ETA: ") == 0);
  const std::string end = bar.line(1500, nn::Logs{{"loss", 0.12345}, {"accuracy", 0.963}}, true);
  CHECK(end.find("1500/1500 [==============================] - ") == 0);
  CHECK(end.find("/step - loss: 0.1235 - accuracy: 0.9630") != std::string::npos);
  bar.update(10, {});  // not live: nothing drawn until finish
  CHECK(os.str().empty());
  bar.finish(nn::Logs{{"loss", 1e-5}});
  CHECK(os.str().find("loss: 1.0000e-05\n") != std::string::npos);
  CHECK(nn::format_eta(45) == "45s");
  CHECK(nn::format_eta(125) == "2:05");
  CHECK(nn::format_eta(3723) == "1:02:03");
  CHECK(nn::format_time_per_step(0.003) == "3ms/step");
  CHECK(nn::format_time_per_step(0.00025) == "250us/step");
}

TEST_CASE("fit resumed from a checkpoint at initial_epoch equals the uninterrupted fit, bit for bit") {
  auto [x, y] = blobs(90, 4);
  auto make = [] {
    nn::Model m = small_model(11);
    m.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
    return m;
  };
  const nn::FitOptions options{.epochs = 4, .batch_size = 16, .seed = 5, .verbose = 0};
  nn::Model whole = make();
  const nn::History all = whole.fit(x, y, options);

  testing::TempDir dir;
  nn::Model first = make();
  nn::FitOptions half = options;
  half.epochs = 2;
  first.fit(x, y, half);
  nn::save_checkpoint(dir.path / "ckpt.safetensors", first.module(), first.optimizer(), 2);
  nn::Model second = make();
  const nn::CheckpointInfo info =
      nn::load_checkpoint(dir.path / "ckpt.safetensors", second.module(), second.optimizer());
  nn::FitOptions rest = options;
  rest.initial_epoch = static_cast<int>(info.epoch);
  const nn::History resumed = second.fit(x, y, rest);

  const TensorList a = whole.parameters(), b = second.parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("parameter ", i);
    CHECK(a[i].array<float>() == b[i].array<float>());  // exactly: the same batches in the same order
  }
  CHECK(resumed["loss"].back() == all["loss"].back());
}

TEST_CASE("ProgressBar's live line fits the terminal; verbose 2 prints one line per epoch without a bar") {
  std::ostringstream os;
  nn::ProgressBar bar(1875, os, {.live = false});
  const nn::Logs logs{{"loss", 0.12345}, {"accuracy", 0.963}, {"regularization_loss", 0.0012}};
  const std::string wide = bar.live_line(900, logs, 200);
  CHECK(wide == bar.line(900, logs, false));
  CHECK(wide.size() > 80);  // the deep model's line: 86 characters wrapped in an 80-column terminal
  const std::string narrow = bar.live_line(900, logs, 80);
  CHECK(narrow.size() == 79);
  CHECK(narrow.find(" 900/1875 [") == 0);
  CHECK(narrow.find("loss: 0.1235") != std::string::npos);  // the bar narrowed before anything was cut
  const std::string tiny = bar.live_line(900, logs, 30);
  CHECK(tiny.size() == 29);
  CHECK(tiny.find(" 900/1875 [") == 0);

  // Model::fit with verbose 2: "Epoch k/n", then "steps/steps - 0s - loss: ... - 0s/epoch - ..ms/step".
  auto [x, y] = blobs(8, 16);
  nn::Model model = small_model();
  model.compile({.optimizer = "sgd", .loss = "sparse_categorical_crossentropy"});
  std::ostringstream out;
  model.fit(x, y, {.epochs = 2, .batch_size = 4, .verbose = 2, .out = &out});
  const std::string text = out.str();
  CHECK(std::count(text.begin(), text.end(), '\n') == 4);
  CHECK(text.find("Epoch 2/2\n2/2 - ") != std::string::npos);
  CHECK(text.find('[') == std::string::npos);
  CHECK(text.find("s/epoch - ") != std::string::npos);
  CHECK(text.find("/step\n") != std::string::npos);
}

TEST_CASE("history_svg draws the tutorial's two panels") {
  nn::History h;
  h.append(0, nn::Logs{{"loss", 0.3}, {"accuracy", 0.9}, {"val_loss", 0.2}, {"val_accuracy", 0.95}});
  h.append(1, nn::Logs{{"loss", 0.1}, {"accuracy", 0.97}, {"val_loss", 0.09}, {"val_accuracy", 0.975}});
  const std::string svg = nn::history_svg(h);
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(svg.find(">Loss</text>") != std::string::npos);
  CHECK(svg.find(">Accuracy</text>") != std::string::npos);
  CHECK(svg.find(">Epochs</text>") != std::string::npos);
  CHECK(svg.find(">Validation loss</text>") != std::string::npos);
  CHECK(svg.find(">Train acc</text>") != std::string::npos);
  CHECK(std::count(svg.begin(), svg.end(), '\n') > 20);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK_THROWS_WITH_AS(h.at("acc"), doctest::Contains("no metric 'acc'"), Error);
  nn::History empty;
  CHECK_THROWS_AS(nn::history_svg(empty), Error);
}

TEST_CASE("regularizers: layers add their penalty to regularization_loss, gradient-checked") {
  manual_seed(3);
  nn::Sequential net{nn::Linear(3, 4, {.kernel_regularizer = nn::L2(0.01), .bias_regularizer = nn::L1(0.1)}),
                     nn::ReLU(), nn::Conv2d(1, 2, 1, {.kernel_regularizer = nn::L1L2(0.02, 0.03)})};
  CHECK_FALSE(nn::Sequential{nn::Linear(3, 4)}.regularization_loss().defined());
  auto& lin = dynamic_cast<nn::Linear&>(*net[0]);
  auto& conv = dynamic_cast<nn::Conv2d&>(*net[2]);
  {
    NoGradGuard no_grad;
    Tensor bias = lin.bias();
    bias.copy_(Tensor({0.5, -1.0, 2.0, 0.0}));
  }
  const double w2 = sum(lin.weight() * lin.weight()).item();
  const double b1 = sum(abs(lin.bias())).item();
  const double cw1 = sum(abs(conv.weight())).item(), cw2 = sum(conv.weight() * conv.weight()).item();
  CHECK(net.regularization_loss().item() == doctest::Approx(0.01 * w2 + 0.1 * b1 + 0.02 * cw1 + 0.03 * cw2));

  // The penalty's gradient through the module's own parameters.
  net.to(float64);
  GradcheckResult r = gradcheck(
      [&](const TensorList& in) {
        // Same penalty as the module's, but as a function of the checked inputs.
        return nn::L2(0.01).penalty(in[0]) + nn::L1(0.1).penalty(in[1]);
      },
      {lin.weight().detach().clone().requires_grad_(), lin.bias().detach().clone().requires_grad_()});
  INFO(r.message);
  CHECK(r);
  Tensor total = net.regularization_loss();
  total.backward();
  // d/dw of λ·Σw² is 2λw; of λ·Σ|b| is λ·sign(b).
  CHECK(lin.weight().grad().array<double>() == xt::xarray<double>(2 * 0.01 * lin.weight().array<double>()));
  CHECK(lin.bias().grad().array<double>() == xt::xarray<double>{0.1, -0.1, 0.1, 0.0});
}

TEST_CASE("regularizers: fit adds the penalty to the gradient and reports it apart from the loss") {
  auto [x, y] = blobs(300, 2);
  auto model_with = [](std::optional<nn::Regularizer> reg) {
    manual_seed(11);
    return nn::Model(nn::Sequential{nn::Linear(2, 16, {.activation = nn::Activation::relu, .kernel_regularizer = reg}),
                                    nn::Linear(16, 3, {.kernel_regularizer = reg}), nn::Softmax()},
                     {.input_shape = {2}});
  };
  nn::Model plain = model_with(std::nullopt);
  nn::Model penalized = model_with(nn::L2(0.05));
  compile(plain);
  compile(penalized);
  const nn::History hp = plain.fit(x, y, {.epochs = 3, .seed = 5, .verbose = 0});
  const nn::History hr = penalized.fit(x, y, {.epochs = 3, .seed = 5, .verbose = 0});
  CHECK(hp.keys() == std::vector<std::string>{"loss", "accuracy"});
  CHECK(hr.keys() == std::vector<std::string>{"loss", "accuracy", "regularization_loss"});
  CHECK(hr["regularization_loss"].back() > 0.0);
  // The penalty pulls the weights toward zero.
  auto weight_norm = [](nn::Model& m) {
    double total = 0;
    for (const Tensor& p : m.parameters()) total += sum(p * p).item();
    return total;
  };
  CHECK(weight_norm(penalized) < weight_norm(plain));

  // One step over the whole set: the reported loss is the data loss at the initial weights, and
  // the penalty is reported apart.
  nn::Model fresh = model_with(nn::L2(0.05));
  compile(fresh);
  const double data_loss = fresh.evaluate(x, y, {.batch_size = 300}).at("loss");
  const double penalty = fresh.module().regularization_loss().item();
  const nn::History one = fresh.fit(x, y, {.epochs = 1, .batch_size = 300, .shuffle = false, .verbose = 0});
  CHECK(one["loss"][0] == doctest::Approx(data_loss).epsilon(1e-6));
  CHECK(one["regularization_loss"][0] == doctest::Approx(penalty).epsilon(1e-6));
}

TEST_CASE("fit and evaluate log Keras's top-k accuracies by name and as objects") {
  auto [x, y] = blobs(90, 12);
  nn::Model m = small_model(5);
  m.compile({.optimizer = "adam",
             .loss = "sparse_categorical_crossentropy",
             .metrics = {"accuracy", "sparse_top_k_categorical_accuracy",
                         std::make_shared<nn::TopKCategoricalAccuracy>(1, "top_1"),
                         std::make_shared<nn::TopKCategoricalAccuracy>(2, "top_2")}});
  const nn::History h = m.fit(x, y, {.epochs = 2, .batch_size = 16, .validation_split = 0.2, .verbose = 0});
  CHECK(h.keys() == std::vector<std::string>{"loss", "accuracy", "sparse_top_k_categorical_accuracy", "top_1", "top_2",
                                             "val_loss", "val_accuracy", "val_sparse_top_k_categorical_accuracy",
                                             "val_top_1", "val_top_2"});
  // Three classes: the top 5 always holds the label; top 1 is accuracy (softmax outputs, no ties).
  CHECK(h["sparse_top_k_categorical_accuracy"].back() == 1.0);
  CHECK(h["top_1"].back() == doctest::Approx(h["accuracy"].back()));
  CHECK(h["top_2"].back() >= h["top_1"].back());
  const auto logs = m.evaluate(x, y);
  CHECK(logs.at("top_1") == doctest::Approx(logs.at("accuracy")));
  CHECK(logs.at("top_2") == doctest::Approx(nn::top_k_accuracy(y, m.predict(x), 2)));
}
