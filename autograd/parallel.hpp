#pragma once
// The thread count tapegrad uses for its own loops, over which large BLAS products are split too.
#include <cstddef>
#include <functional>

namespace tg {

/// Sets the number of threads for tapegrad's parallel loops and BLAS products (default: all cores).
void set_num_threads(int n);
int get_num_threads();

/// Runs fn(begin, end) over [0, n) split into contiguous chunks across the threads; runs
/// inline when n < 2 * grain or one thread is set. fn must not throw.
void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& fn);

}  // namespace tg
