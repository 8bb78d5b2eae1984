#pragma once
// tapegrad's own thread pool: the parallel loops of the kernels (and of ops that split work).
#include <cstddef>
#include <functional>

namespace tg::kernels {

/// Threads for parallel loops from now on (n >= 1; the caller checks).
void set_num_threads(int n);
/// The thread count parallel loops use (default: all cores).
int num_threads();

/// Runs fn(begin, end) over [0, n) split into contiguous chunks across the threads; runs inline
/// when n < 2 * min_per_thread, when one thread is set, inside another parallel loop, or while
/// another thread's loop holds the pool. fn must not throw. Workers do not inherit the caller's
/// thread-local state (grad mode among it): fn works on raw data only, never on Tensors.
void parallel_for(std::size_t n, std::size_t min_per_thread, const std::function<void(std::size_t, std::size_t)>& fn);

}  // namespace tg::kernels
