#include "autograd/parallel.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "autograd/error.hpp"
#include "ops/linalg.hpp"

namespace tg {
namespace {
std::atomic<int> num_threads{0};  // 0: not set yet, use all cores

int resolved_threads() {
  const int n = num_threads.load();
  return n > 0 ? n : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}
}  // namespace

void set_num_threads(int n) {
  TG_CHECK(n >= 1, "set_num_threads: needs at least one thread, got {}", n);
  num_threads = n;
  blas::set_num_threads(n);
}

int get_num_threads() { return resolved_threads(); }

void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& fn) {
  const int threads = std::min<int>(resolved_threads(), static_cast<int>(n / std::max<std::size_t>(grain, 1)));
  if (threads <= 1 || omp_in_parallel()) {
    if (n > 0) fn(0, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    const auto count = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t begin = n * t / count, end = n * (t + 1) / count;
    if (begin < end) fn(begin, end);
  }
}

}  // namespace tg
