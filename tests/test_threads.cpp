// Threads the library leaves running. A test binary of its own: no other test may have started
// tapegrad's pool before this runs.
#include <doctest/doctest.h>

#include <filesystem>
#include <iterator>

#include "tapegrad.hpp"

TEST_CASE("loading tapegrad leaves no BLAS worker threads spinning") {
  // OpenBLAS's pthread build starts a worker per extra core when it loads, and each spins for
  // ~0.1 s: on 2 cores that took the second core from tapegrad's own threads. The library stops
  // them when it loads; the process then has its main thread alone until a parallel loop runs.
  const auto threads = std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                     std::filesystem::directory_iterator{});
  CHECK(threads == 1);
  // float64 products run on OpenBLAS, on this thread.
  const tg::Tensor a = tg::ones({64, 64}, tg::float64);
  CHECK(tg::matmul(a, a).array<double>()(0, 0) == 64.0);
  CHECK(std::distance(std::filesystem::directory_iterator("/proc/self/task"), std::filesystem::directory_iterator{}) ==
        1);
}
