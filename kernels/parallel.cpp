#include "tapegrad/kernels/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace tg::kernels {
namespace {
std::atomic<int> thread_count{0};  // 0: not set yet, use all cores
thread_local bool inside_parallel = false;

int resolved_threads() {
  const int n = thread_count.load();
  return n > 0 ? n : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// Polls ready() for up to about 200 microseconds; true as soon as it holds. A training step runs
// several parallel loops within a millisecond: polling briefly before blocking spares each one
// a futex wake-up, which costs tens of microseconds under a hypervisor.
// After a few pauses it yields the CPU instead: when the thread it waits for shares this CPU
// (the scheduler may put both there), pure spinning would hold that thread off for the whole
// window; measured, that made an occasional run of a parallel conv 5x slower.
template <class Ready>
bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  for (int i = 0;; ++i) {
    if (ready()) return true;
    if (i < 64) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
}

// A small pool of workers that sleep on a condition variable between jobs. Not OpenMP: an
// idle OpenMP team spin-waits, and on a machine with as many threads as cores it fought
// OpenBLAS's own (also spinning) workers between a parallel loop and the next GEMM, making
// two threads 2x slower than one. Workers here spin only briefly, then block.
class Pool {
 public:
  ~Pool() { resize(0); }

  // Runs chunk(t, count) for t in [0, count), the caller taking t = 0 and workers 1.. the rest,
  // with `size` threads in the pool (workers past count sit this loop out: a loop on fewer
  // threads must not join and start workers). False, without running anything, when another
  // thread's loop holds the pool (a DataLoader's producer, say): the caller then runs alone
  // instead of waiting.
  bool run(int count, int size, const std::function<void(std::size_t, std::size_t)>& chunk) {
    std::unique_lock<std::mutex> serial(run_mutex_, std::try_to_lock);  // one parallel loop at a time
    if (!serial.owns_lock()) return false;
    if (static_cast<int>(workers_.size()) != size - 1) resize(static_cast<std::size_t>(size - 1));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &chunk;
      count_ = static_cast<std::size_t>(count);
      pending_.store(count - 1);
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    wake_.notify_all();
    chunk(0, count_);
    spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    while (pending_.load(std::memory_order_acquire) > 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [&] { return pending_.load() == 0; });
    }
    return true;
  }

 private:
  void resize(std::size_t n) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    // A worker starts from the current generation, so the job published next is new to it.
    const std::uint64_t start = generation_;
    for (std::size_t i = 0; i < n; ++i) workers_.emplace_back([this, i, start] { work(i + 1, start); });
  }

  void work(std::size_t index, std::uint64_t seen) {
    inside_parallel = true;
    for (;;) {
      const std::function<void(std::size_t, std::size_t)>* job;
      std::size_t count;
      spin_until([&] { return published_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
        count = count_;
      }
      if (index >= count) continue;
      (*job)(index, count);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t, std::size_t)>* job_ = nullptr;
  std::size_t count_ = 0;
  std::uint64_t generation_ = 0;             // guarded by mutex_
  std::atomic<std::uint64_t> published_{0};  // generation_, readable without the lock (spinning)
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}
}  // namespace

void set_num_threads(int n) { thread_count = n; }

int num_threads() { return resolved_threads(); }

void parallel_for(std::size_t n, std::size_t min_per_thread, const std::function<void(std::size_t, std::size_t)>& fn) {
  const int pool_size = resolved_threads();
  const int threads = std::min<int>(pool_size, static_cast<int>(n / std::max<std::size_t>(min_per_thread, 1)));
  if (threads <= 1 || inside_parallel) {
    if (n > 0) fn(0, n);
    return;
  }
  const std::function<void(std::size_t, std::size_t)> chunk = [&](std::size_t t, std::size_t count) {
    const std::size_t begin = n * t / count, end = n * (t + 1) / count;
    if (begin < end) fn(begin, end);
  };
  inside_parallel = true;
  if (!pool().run(threads, pool_size, chunk)) fn(0, n);
  inside_parallel = false;
}

}  // namespace tg::kernels
