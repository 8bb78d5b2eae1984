// Per-op benchmarks (issues: foundation, convolution, transformer): conv2d, max_pool2d, log_softmax +
// cross_entropy, an elementwise chain and multi-head self-attention, forward and forward+backward, on the same shapes
// and under the same workload names as bench_torch.py. Prints JSON lines (bench_common.hpp).
#include "bench_common.hpp"
#include "tapegrad/tapegrad.hpp"

int main(int argc, char** argv) {
  const auto [threads, quick, only, data] = bench::parse_args(argc, argv, "tapegrad per-op benchmarks");
  tg::set_num_threads(threads);
  tg::tune_malloc_for_training();  // as the example programs do
  const int reps = quick ? 3 : 5;
  auto selected = [&](const std::string& workload) { return bench::selected(only, workload); };
  const std::string impl = "tapegrad";
  tg::Generator gen(0);

  struct ConvShape {
    const char* name;
    std::size_t n, c_in, c_out, hw;
  };
  for (const ConvShape& s : {ConvShape{"conv2d_mnist", 32, 1, 32, 28}, ConvShape{"conv2d_wide", 32, 32, 64, 13}}) {
    if (!selected(s.name)) continue;
    // As in bench_torch.py: the first layer's input needs no gradient, the wider layer's does.
    tg::Tensor x = tg::randn({s.n, s.c_in, s.hw, s.hw}, gen).requires_grad_(s.c_in > 1);
    tg::Tensor w = tg::randn({s.c_out, s.c_in, 3, 3}, gen).requires_grad_();
    tg::Tensor b = tg::randn({s.c_out}, gen).requires_grad_();
    // Forward as in training (graph recorded), as bench_torch.py measures it.
    const double fwd = bench::best_of([&] { tg::conv2d(x, w, b); }, reps, 20);
    bench::emit(impl, std::string(s.name) + "_forward", fwd, "call", threads);
    tg::Tensor g = tg::randn({s.n, s.c_out, s.hw - 2, s.hw - 2}, gen);
    const double fb = bench::best_of([&] { tg::conv2d(x, w, b).backward(g); }, reps, 20);
    bench::emit(impl, std::string(s.name) + "_forward_backward", fb, "call", threads);
  }

  if (selected("max_pool2d")) {
    tg::Tensor x = tg::randn({32, 32, 26, 26}, gen).requires_grad_();
    tg::Tensor g = tg::randn({32, 32, 13, 13}, gen);
    const double fwd = bench::best_of([&] { tg::max_pool2d(x, {.kernel = 2}); }, reps, 50);
    bench::emit(impl, "max_pool2d_forward", fwd, "call", threads);
    const double fb = bench::best_of([&] { tg::max_pool2d(x, {.kernel = 2}).backward(g); }, reps, 50);
    bench::emit(impl, "max_pool2d_forward_backward", fb, "call", threads);
  }

  if (selected("log_softmax_cross_entropy") || selected("cross_entropy")) {
    tg::Tensor logits = tg::randn({32, 10}, gen).requires_grad_();
    tg::Tensor labels = tg::randint(0, 10, {32}, gen);
    const double fb = bench::best_of([&] { tg::cross_entropy(logits, labels).backward(); }, reps, 200);
    bench::emit(impl, "log_softmax_cross_entropy_forward_backward", fb, "call", threads);
  }

  if (selected("elementwise_chain")) {
    tg::Tensor x = tg::randn({32, 5408}, gen).requires_grad_();
    auto chain = [&] {
      tg::Tensor y = tg::tanh(x * 0.5 + 0.1);
      y = tg::relu(y) * tg::sigmoid(x);
      tg::sum(y).backward();
    };
    bench::emit(impl, "elementwise_chain_forward_backward", bench::best_of(chain, reps, 20), "call", threads);
  }

  if (selected("multihead_attention")) {
    // Self-attention as in the transformer example: batch 32, 16 tokens of 64 features, 4 heads.
    tg::nn::MultiheadAttention mha(64, 4, {.batch_first = true});
    tg::Tensor x = tg::randn({32, 16, 64}, gen).requires_grad_();
    tg::Tensor g = tg::randn({32, 16, 64}, gen);
    const double fb =
        bench::best_of([&] { mha.forward(x, x, x, {.need_weights = false}).output.backward(g); }, reps, 50);
    bench::emit(impl, "multihead_attention_forward_backward", fb, "call", threads);
  }
}
