// MNIST without the Keras layer: a model written with raw tensors and ops, a custom op defined
// with tg::record (forward and backward side by side), a gradient check of that op, and a
// hand-written training loop with SGD + momentum.
//
//   custom_training --data /path/to/mnist --epochs 3
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/dispatch.hpp"
#include "tapegrad/autograd/function.hpp"
#include "tapegrad/autograd/generator.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/runtime.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/datasets/data_loader.hpp"
#include "tapegrad/datasets/mnist.hpp"
#include "tapegrad/ops/elementwise.hpp"
#include "tapegrad/ops/gradcheck.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/loss.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace {

using namespace tg;

// The custom op: swish(x) = x * sigmoid(x) (a smooth ReLU), computed in one loop instead of
// three recorded ops. Its backward is written with differentiable ops, so gradients of
// gradients work too.
// d swish(x) = g * s * (1 + x * (1 - s)), s = sigmoid(x)
Tensor swish(const Tensor& x) {
  Tensor out = dispatch_float(x.dtype(), "swish", [&](auto t) {
    using T = decltype(t);
    xt::xarray<T> y = xt::empty<T>(x.shape());
    const T* src = x.data<T>();
    T* dst = y.data();
    for (std::size_t i = 0; i < x.numel(); ++i) dst[i] = src[i] / (T(1) + std::exp(-src[i]));
    return Tensor(std::move(y));
  });
  return record({.name = "swish", .inputs = {x}, .saved = {x}}, out,
                [](const BackwardContext& ctx, const Tensor& g) -> TensorList {
                  const Tensor& xs = ctx.saved(0);
                  const Tensor s = sigmoid(xs);
                  return {g * s * (1.0 + xs * (1.0 - s))};
                });
}

// Weights and biases of a 784 → hidden → 10 perceptron, as plain tensors.
struct Params {
  Tensor w1, b1, w2, b2;
  TensorList all() const { return {w1, b1, w2, b2}; }
};

// Glorot-uniform weights and zero biases, as Keras's Dense starts.
Params init_params(std::size_t hidden, Generator& gen) {
  auto glorot = [&](std::size_t out, std::size_t in) {
    const double a = std::sqrt(6.0 / static_cast<double>(in + out));
    return uniform({out, in}, -a, a, gen).requires_grad_();
  };
  Params p{glorot(hidden, 784), zeros({hidden}).requires_grad_(), glorot(10, hidden), zeros({10}).requires_grad_()};
  return p;
}

// x [B,1,28,28] → logits [B,10].
Tensor forward(const Params& p, const Tensor& x) {
  const Tensor h = swish(linear(flatten(x, 1), p.w1, p.b1));
  return linear(h, p.w2, p.b2);
}

// Fraction of rows whose largest logit is the label.
double accuracy(const Tensor& logits, const Tensor& y) {
  const Tensor pred = argmax(logits, 1);
  const std::int64_t* a = pred.data<std::int64_t>();
  const std::int64_t* b = y.data<std::int64_t>();
  std::size_t correct = 0;
  for (std::size_t i = 0; i < y.numel(); ++i) correct += a[i] == b[i];
  return static_cast<double>(correct) / static_cast<double>(y.numel());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"MNIST with raw tensors, a custom op and a hand-written training loop"};
  std::string data_dir;
  int epochs = 3, threads = 0;
  std::size_t batch_size = 64, hidden = 128, limit = 0;
  double lr = 0.05, momentum = 0.9;
  std::uint64_t seed = 1;
  app.add_option("--data", data_dir,
                 "Directory holding the MNIST IDX files (else $TG_MNIST_DIR, the cache, a download)");
  app.add_option("--epochs", epochs, "Training epochs")->check(CLI::NonNegativeNumber);
  app.add_option("--batch-size", batch_size, "Samples per batch")->check(CLI::PositiveNumber);
  app.add_option("--hidden", hidden, "Hidden units")->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "SGD learning rate")->check(CLI::PositiveNumber);
  app.add_option("--momentum", momentum, "SGD momentum")->check(CLI::Range(0.0, 0.999));
  app.add_option("--seed", seed, "Seed of the weights and the shuffles");
  app.add_option("--threads", threads, "Threads for BLAS and tapegrad's loops (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--limit", limit, "Stop each epoch after about N training samples (0: all)");
  CLI11_PARSE(app, argc, argv);

  try {
    tune_malloc_for_training();  // the program's own choice of malloc settings (autograd/runtime.hpp)
    if (threads > 0) set_num_threads(threads);

    // 1. Check the custom op's gradient (first and second order) against finite differences.
    Generator check_gen(7);
    const Tensor probe = randn({4, 5}, check_gen, float64).requires_grad_();
    const auto fn = [](const TensorList& in) { return swish(in[0]); };
    const GradcheckResult first = gradcheck(fn, {probe});
    const GradcheckResult second = gradgradcheck(fn, {probe});
    fmt::print("swish gradcheck: {}, gradgradcheck: {}\n", first ? "ok" : first.message,
               second ? "ok" : second.message);
    if (!first || !second) return 1;

    // 2. Data: uint8 pixels in memory, float batches from a shuffling loader.
    const datasets::MnistOptions data_options{.root = data_dir};
    const datasets::MNIST train(datasets::Split::train, data_options);
    const datasets::MNIST test(datasets::Split::test, data_options);
    datasets::DataLoader loader(train, {.batch_size = batch_size, .shuffle = true, .seed = seed});

    // 3. Parameters and the momentum buffers.
    Generator gen(seed);
    Params params = init_params(hidden, gen);
    std::vector<Tensor> velocity;
    for (const Tensor& p : params.all()) velocity.push_back(zeros_like(p));

    // 4. The training loop.
    for (int epoch = 0; epoch < epochs; ++epoch) {
      double loss_sum = 0, acc_sum = 0;
      std::size_t seen = 0;
      for (const auto& [x, y] : loader) {
        if (limit && seen >= limit) break;
        for (Tensor p : params.all()) p.zero_grad();
        const Tensor logits = forward(params, x);
        const Tensor loss = cross_entropy(logits, y);
        loss.backward();
        {
          // v ← momentum·v + g; p ← p − lr·v (in place, outside the graph).
          NoGradGuard no_grad;
          const TensorList ps = params.all();
          for (std::size_t i = 0; i < ps.size(); ++i) {
            velocity[i].mul_(momentum).add_(ps[i].grad());
            Tensor p = ps[i];
            p.add_(velocity[i], -lr);
          }
        }
        const auto b = static_cast<double>(y.numel());
        loss_sum += loss.item() * b;
        acc_sum += accuracy(logits, y) * b;
        seen += y.numel();
      }
      fmt::print("epoch {}/{} - loss: {:.4f} - accuracy: {:.4f}\n", epoch + 1, epochs,
                 loss_sum / static_cast<double>(seen), acc_sum / static_cast<double>(seen));
    }

    // 5. Test accuracy, without recording a graph.
    NoGradGuard no_grad;
    datasets::DataLoader test_loader(test, {.batch_size = 1000});
    double correct = 0;
    for (const auto& [x, y] : test_loader) correct += accuracy(forward(params, x), y) * static_cast<double>(y.numel());
    fmt::print("Test accuracy: {:.4f}\n", correct / static_cast<double>(test.size()));
  } catch (const std::exception& e) {
    fmt::print(stderr, "custom_training: {}\n", e.what());
    return 1;
  }
  return 0;
}
