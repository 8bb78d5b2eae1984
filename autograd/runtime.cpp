#include "tapegrad/autograd/runtime.hpp"

#include "tapegrad/autograd/check.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdlib>

#include "tapegrad/autograd/error.hpp"
#include "tapegrad/kernels/cpu.hpp"
#include "tapegrad/kernels/parallel.hpp"

namespace tg {

void set_num_threads(int n) {
  TG_CHECK(n >= 1, "set_num_threads: needs at least one thread, got {}", n);
  kernels::set_num_threads(n);
}

int get_num_threads() { return kernels::num_threads(); }

void parallel_for(std::size_t n, std::size_t min_per_thread, const std::function<void(std::size_t, std::size_t)>& fn) {
  kernels::parallel_for(n, min_per_thread, fn);
}

namespace {
// The kernels' levels and the public ones are the same list.
kernels::Isa to_isa(CpuCapability level) { return static_cast<kernels::Isa>(level); }
CpuCapability from_isa(kernels::Isa level) { return static_cast<CpuCapability>(level); }
}  // namespace

CpuCapability cpu_capability() { return from_isa(kernels::active_isa()); }

CpuCapability max_cpu_capability() { return from_isa(kernels::best_isa()); }

void set_cpu_capability(CpuCapability level) {
  TG_CHECK(kernels::set_isa(to_isa(level)), "set_cpu_capability: this CPU runs at most {}, not {}",
           to_string(max_cpu_capability()), to_string(level));
}

std::string_view to_string(CpuCapability level) { return kernels::isa_name(to_isa(level)); }

void tune_malloc_for_training() {
#if defined(__GLIBC__)
  // The mmap threshold alone stops at 32 MiB, and a batch of 1000 MNIST activations is 86 MB:
  // mmap is turned off altogether.
  if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 32 << 20);
  if (!std::getenv("MALLOC_MMAP_MAX_")) mallopt(M_MMAP_MAX, 0);
  if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

}  // namespace tg
