#pragma once
// oneDNN's CPU runtime is OpenMP: each call would start a team of omp_get_max_threads() threads,
// which then spin between calls on the cores tapegrad's own pool needs next. tapegrad splits the
// work itself and runs oneDNN on one thread per chunk, by lowering the calling thread's OpenMP
// thread count for the call. The count is per thread (each non-OpenMP thread gets its own copy
// once it sets it), and it is put back afterwards: the caller's own OpenMP setting never changes.
#include <omp.h>

namespace tg::kernels {

/// Runs the enclosing scope's OpenMP regions on one thread, restoring the count at its end.
class OneOpenMPThread {
 public:
  OneOpenMPThread() : saved_(omp_get_max_threads()) {
    if (saved_ != 1) omp_set_num_threads(1);
  }
  ~OneOpenMPThread() {
    if (saved_ != 1) omp_set_num_threads(saved_);
  }
  OneOpenMPThread(const OneOpenMPThread&) = delete;
  OneOpenMPThread& operator=(const OneOpenMPThread&) = delete;

 private:
  int saved_;
};

}  // namespace tg::kernels
