// LSTM benchmark (issue 7): one training epoch of LSTM(128) + Linear(10) with Adam on MNIST
// read as sequences (28 steps of 28 pixels), the first 48,000 training images shuffled in batches
// of 32, as bench_torch.py's train_lstm. Prints JSON lines (see bench_common.hpp).
#include <ctime>

#include "bench_common.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/datasets/mnist.hpp"
#include "tapegrad/nn/linear.hpp"
#include "tapegrad/nn/rnn.hpp"
#include "tapegrad/nn/sequential.hpp"
#include "tapegrad/ops/loss.hpp"
#include "tapegrad/optim/adam.hpp"
#include "tapegrad/tapegrad.hpp"

namespace {

// Seconds for one epoch (or `max_steps` batches of it).
double train_epoch(const tg::datasets::MNIST& train, std::size_t batch, std::size_t max_steps) {
  tg::manual_seed(0);
  tg::nn::Sequential model{tg::nn::LSTM(28, 128), tg::nn::Linear(128, 10)};
  tg::optim::Adam opt(model.parameters(), {.lr = 1e-3, .eps = 1e-7});
  const std::size_t n = 48000;
  tg::Generator gen(0);
  const tg::Tensor perm = tg::randperm(n, gen);
  const std::int64_t* order = perm.data<std::int64_t>();
  std::vector<std::size_t> indices;
  model.train();
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t steps = 0;
  for (std::size_t start = 0; start < n && (max_steps == 0 || steps < max_steps); start += batch, ++steps) {
    indices.assign(order + start, order + std::min(start + batch, n));
    const tg::datasets::Batch b = train.get_batch(indices);
    const auto rows = static_cast<std::int64_t>(indices.size());
    const tg::Tensor x = tg::reshape(b.x, {rows, 28, 28});
    const tg::Tensor loss = tg::cross_entropy(model.forward(x), b.y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return dt.count();
}

}  // namespace

int main(int argc, char** argv) {
  const auto [threads, quick, only, data] = bench::parse_args(argc, argv, "tapegrad LSTM benchmark");
  tg::set_num_threads(threads);
  tg::tune_malloc_for_training();  // as the example programs do

  if (!data.empty() && bench::selected(only, "train_lstm_b32_epoch")) {
    const tg::datasets::MNIST train(tg::datasets::Split::train, {.root = data, .download = false, .quiet = true});
    const std::size_t steps = quick ? 200 : 0;
    // CPU time too: on a loaded machine it compares more steadily than wall time.
    const std::clock_t c0 = std::clock();
    const double t = train_epoch(train, 32, steps);
    const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const double scale = steps ? 1500.0 / static_cast<double>(steps) : 1.0;
    bench::emit("tapegrad", "train_lstm_b32_epoch", t * scale, "epoch", threads,
                fmt::format("\"cpu_seconds\": {:.6g}", cpu * scale));
  }
  bench::emit("tapegrad", "peak_rss", 0.0, "MiB", threads,
              fmt::format("\"peak_rss_mib\": {:.1f}", bench::peak_rss_mib()));
}
