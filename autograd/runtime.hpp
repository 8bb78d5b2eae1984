#pragma once
// tapegrad's own run-time settings: its threads, the instruction set its kernels run at, and one
// opt-in process setting for training speed. Loading tapegrad or running an op changes nothing
// in the host process (malloc, OpenMP, OpenBLAS, signals, locale); the one call that does,
// tune_malloc_for_training, says so and is made only by programs that want it.
#include <cstddef>
#include <functional>
#include <string_view>

namespace tg {

/// Sets the number of threads of tapegrad's parallel loops, over which float32 products and
/// convolutions are split too (default: all cores). OpenMP's and OpenBLAS's own thread counts are
/// not touched: float64 products run on OpenBLAS, threaded by OpenBLAS's own count
/// (OPENBLAS_NUM_THREADS, openblas_set_num_threads) when that is above 1, else split over
/// tapegrad's threads.
void set_num_threads(int n);
/// The threads of tapegrad's parallel loops: set_num_threads's n (>= 1), else the number of cores.
int get_num_threads();

/// Runs fn(begin, end) over [0, n) split into contiguous chunks across tapegrad's threads; runs
/// inline when n < 2 * min_per_thread or one thread is set. fn must not throw, and works on raw
/// data only: worker threads do not share the caller's thread-local state (grad mode), so a
/// Tensor op inside fn would record a graph.
void parallel_for(std::size_t n, std::size_t min_per_thread, const std::function<void(std::size_t, std::size_t)>& fn);

/// The instruction sets tapegrad's SIMD kernels are built for, lowest first: SSE2 (any x86-64
/// CPU), AVX2 with FMA, AVX-512. Kernels run at the best one the CPU has, unless the environment
/// variable TG_CPU_CAPABILITY (baseline, avx2 or avx512) or set_cpu_capability chose a lower one.
enum class CpuCapability { baseline, avx2, avx512 };

/// The level kernels run at now.
CpuCapability cpu_capability();
/// The best level this CPU runs.
CpuCapability max_cpu_capability();
/// Runs kernels at `level` from now on, in every thread (for tests and measurements); throws
/// tg::Error when the CPU lacks it.
void set_cpu_capability(CpuCapability level);
/// "baseline", "avx2" or "avx512".
std::string_view to_string(CpuCapability level);

/// Opt-in, and process-wide: glibc then serves every allocation from its heap and keeps freed
/// memory for reuse (mallopt: no mmap for large blocks, trimming above 256 MiB), instead of a
/// fresh mmap and its page faults for each MB-sized tensor a training step allocates; measured,
/// steps ran several times faster (10x under a hypervisor), with the same peak memory. It changes
/// the malloc settings of the whole process, so tapegrad never calls it itself: call it from
/// main(). Values set in the environment (MALLOC_MMAP_MAX_, MALLOC_MMAP_THRESHOLD_,
/// MALLOC_TRIM_THRESHOLD_) win. Does nothing outside glibc.
void tune_malloc_for_training();

}  // namespace tg
