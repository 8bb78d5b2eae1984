// Threads the pool starts and keeps. A test binary of its own: no other test may have started
// tapegrad's pool before this runs. (That loading tapegrad leaves the host's own threads, OpenBLAS's
// among them, alone is tests/guest's check.)
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <thread>
#include <vector>

#include "tapegrad/tapegrad.hpp"

namespace {
std::ptrdiff_t process_threads() {
  return std::distance(std::filesystem::directory_iterator("/proc/self/task"), std::filesystem::directory_iterator{});
}
}  // namespace

TEST_CASE("a parallel loop on fewer threads keeps the pool's workers, and covers its range once") {
  const int before = tg::get_num_threads();
  const std::ptrdiff_t threads_before = process_threads();  // this one, and OpenBLAS's own
  std::ptrdiff_t with_pool = 0;
  tg::set_num_threads(4);
  for (const std::size_t n : {400, 2, 3, 400}) {
    INFO("n = ", n);
    std::vector<std::atomic<int>> hits(n);
    tg::parallel_for(n, 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) ++hits[i];
    });
    bool once = true;
    for (const auto& h : hits) once &= h.load() == 1;
    CHECK(once);
    // Three workers besides this thread (a sanitizer may add one of its own), and the same ones
    // whatever the later loops used: joining and starting workers whenever a loop used fewer was
    // a cost on every such loop.
    if (with_pool == 0) {
      with_pool = process_threads();
      CHECK(with_pool >= threads_before + 3);
      CHECK(with_pool <= threads_before + 4);
    }
    CHECK(process_threads() == with_pool);
  }
  tg::set_num_threads(before);
}

TEST_CASE("a parallel loop from another thread while the pool is busy runs there instead of waiting") {
  const int before = tg::get_num_threads();
  tg::set_num_threads(2);
  std::mutex m;
  std::condition_variable cv;
  bool other_done = false;
  std::atomic<std::size_t> other_sum{0};
  std::thread other;  // joined after the loop: were it blocked on the pool, joining inside would hang
  tg::parallel_for(2, 1, [&](std::size_t begin, std::size_t) {
    if (begin != 0) return;
    // While this loop holds the pool, another thread runs a loop of its own (as a DataLoader's
    // producer does); waiting for the pool there would block it until this loop ends.
    other = std::thread([&] {
      tg::parallel_for(100, 1, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) other_sum += i;
      });
      std::lock_guard<std::mutex> lock(m);
      other_done = true;
      cv.notify_one();
    });
    std::unique_lock<std::mutex> lock(m);
    CHECK(cv.wait_for(lock, std::chrono::seconds(5), [&] { return other_done; }));
  });
  other.join();
  CHECK(other_sum.load() == 4950);
  tg::set_num_threads(before);
}

TEST_CASE("threads reading one strided view share its gathered elements safely") {
  using namespace tg;
  const Tensor base = reshape(arange(4096.0), {64, 64});
  const Tensor t = transpose(base);  // gathered on the first read, under the view's lock
  std::vector<double> firsts(4, 0.0);
  std::vector<std::thread> readers;
  for (std::size_t i = 0; i < firsts.size(); ++i)
    readers.emplace_back([&, i] { firsts[i] = static_cast<double>(t.data<float>()[1]); });
  for (auto& r : readers) r.join();
  for (double v : firsts) CHECK(v == 64.0);  // t[0][1] = base[1][0]
}
