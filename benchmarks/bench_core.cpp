// Core benchmarks (issue: foundation): engine overhead per op and matmul GFLOP/s, against a
// direct OpenBLAS call in the same process. Prints JSON lines (see bench_common.hpp).
#include <cblas.h>

#include "bench_common.hpp"
#include "tapegrad/autograd/check.hpp"
#include "tapegrad/tapegrad.hpp"

int main(int argc, char** argv) {
  const auto [threads, quick, only, data] = bench::parse_args(argc, argv, "tapegrad core benchmarks");
  tg::set_num_threads(threads);
  tg::tune_malloc_for_training();  // as the example programs do
  const int reps = quick ? 3 : 5;
  auto selected = [&](const std::string& workload) { return bench::selected(only, workload); };

  if (selected("engine_overhead")) {
    tg::Tensor x = tg::ones({16}).requires_grad_();
    const int chain = 100;
    auto run = [&] {
      tg::Tensor y = x;
      for (int i = 0; i < chain; ++i) y = y * 1.0001 + 0.0001;
      tg::sum(y).backward();
    };
    bench::emit("tapegrad", "engine_overhead_per_op", bench::best_of(run, reps, 20) / (2 * chain), "op", threads);
  }

  for (std::size_t n : {256u, 1024u}) {
    if (!selected(fmt::format("matmul_{}", n))) continue;
    tg::Generator gen(1);
    tg::Tensor a = tg::randn({n, n}, gen), b = tg::randn({n, n}, gen);
    const double flops = 2.0 * static_cast<double>(n * n * n);
    const int inner = n == 256 ? 10 : 2;
    const double t = bench::best_of([&] { tg::matmul(a, b); }, reps, inner);
    bench::emit("tapegrad", fmt::format("matmul_{}", n), t, "call", threads,
                fmt::format("\"gflops\": {:.2f}", flops / t / 1e9));
    std::vector<float> c(n * n);
    const int ni = static_cast<int>(n);
    // The reference is OpenBLAS threading the call itself (tapegrad runs float32 products on
    // oneDNN, split over its own pool).
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    const double direct = bench::best_of(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0f, a.data<float>(), ni, b.data<float>(),
                      ni, 0.0f, c.data(), ni);
        },
        reps, inner);
    openblas_set_num_threads(blas_threads);
    bench::emit("openblas", fmt::format("matmul_{}", n), direct, "call", threads,
                fmt::format("\"gflops\": {:.2f}", flops / direct / 1e9));
  }
  bench::emit("tapegrad", "peak_rss", 0.0, "MiB", threads,
              fmt::format("\"peak_rss_mib\": {:.1f}", bench::peak_rss_mib()));
}
