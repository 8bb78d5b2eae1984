// A host program that sets its own process-wide settings, then loads tapegrad (through
// guest_ops, with dlopen), runs ops and a training step, and checks that none of its settings
// changed: malloc's, OpenMP's and OpenBLAS's thread counts, OpenBLAS's threads themselves,
// signal handlers, the locale and the floating-point environment. It does not link tapegrad:
// the library loads only when dlopen runs.  Usage: host PATH/TO/guest_ops.so
#include <cblas.h>
#include <dlfcn.h>
#include <malloc.h>
#include <omp.h>
#include <xmmintrin.h>

#include <cfenv>
#include <clocale>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <set>
#include <string>

namespace {

int failures = 0, checks = 0;

void check(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAILED: %s\n", what.c_str());
  }
}

// Whether a block of `bytes` is served by mmap now (glibc counts its mmapped blocks).
bool large_block_is_mmapped(std::size_t bytes) {
  const std::size_t before = mallinfo2().hblks;
  void* p = std::malloc(bytes);
  asm volatile("" : : "r"(p) : "memory");  // the allocation must happen: no malloc/free pair elided
  const bool mapped = mallinfo2().hblks > before;
  std::free(p);
  return mapped;
}

std::set<long> thread_ids() {
  std::set<long> ids;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task"))
    ids.insert(std::stol(t.path().filename()));
  return ids;
}

struct Settings {
  bool mmapped = false;
  int omp_threads = 0, blas_threads = 0;
  std::set<long> threads;
  std::string locale;
  unsigned mxcsr = 0;
  int rounding = 0;
  void (*handlers[4])(int) = {};
};

constexpr int signals[4] = {SIGINT, SIGTERM, SIGPIPE, SIGSEGV};

Settings read_settings() {
  Settings s;
  s.mmapped = large_block_is_mmapped(std::size_t{4} << 20);
  s.omp_threads = omp_get_max_threads();
  s.blas_threads = openblas_get_num_threads();
  s.threads = thread_ids();
  s.locale = std::setlocale(LC_ALL, nullptr);
  // MXCSR's controls: denormals-are-zero, the exception masks, rounding and flush-to-zero (its low
  // six bits are sticky status flags that any arithmetic sets).
  s.mxcsr = _mm_getcsr() & ~0x3Fu;
  s.rounding = std::fegetround();
  for (int i = 0; i < 4; ++i) {
    struct sigaction action {};
    sigaction(signals[i], nullptr, &action);
    s.handlers[i] = action.sa_handler;
  }
  return s;
}

void compare(const Settings& host, const Settings& now, const char* when) {
  const std::string at = std::string(" (") + when + ")";
  check(now.mmapped == host.mmapped, "malloc: a 4 MiB block is no longer mmapped at the host's threshold" + at);
  check(now.omp_threads == host.omp_threads, "OpenMP: omp_get_max_threads() " + std::to_string(now.omp_threads) +
                                                 ", the host set " + std::to_string(host.omp_threads) + at);
  check(now.blas_threads == host.blas_threads, "OpenBLAS: openblas_get_num_threads() " +
                                                   std::to_string(now.blas_threads) + ", the host set " +
                                                   std::to_string(host.blas_threads) + at);
  // tapegrad may add threads of its own (its pool), never take the host's away.
  std::size_t gone = 0;
  for (long id : host.threads) gone += now.threads.count(id) == 0;
  check(gone == 0, std::to_string(gone) + " of the host's threads (OpenBLAS's among them) are gone" + at);
  check(now.locale == host.locale, "locale changed to " + now.locale + at);
  check(now.mxcsr == host.mxcsr, "MXCSR controls (flush-to-zero, rounding) changed from " + std::to_string(host.mxcsr) +
                                     " to " + std::to_string(now.mxcsr) + at);
  check(now.rounding == host.rounding, "fegetround() changed" + at);
  for (int i = 0; i < 4; ++i)
    check(now.handlers[i] == host.handlers[i], "handler of signal " + std::to_string(signals[i]) + " changed" + at);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: host PATH/TO/guest_ops.so\n");
    return 2;
  }
  // The host's own settings, all different from the libraries' defaults.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  omp_set_num_threads(3);
  openblas_set_num_threads(3);
  std::signal(SIGPIPE, SIG_IGN);
  const Settings host = read_settings();
  check(host.mmapped, "the host's malloc setting took effect");

  void* module = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!module) {
    std::printf("FAILED: dlopen: %s\n", dlerror());
    return 1;
  }
  compare(host, read_settings(), "after loading tapegrad");

  auto run = reinterpret_cast<int (*)()>(dlsym(module, "tg_guest_run"));
  auto pool_threads = reinterpret_cast<int (*)()>(dlsym(module, "tg_guest_threads"));
  check(run != nullptr && pool_threads != nullptr, "guest_ops exports tg_guest_run and tg_guest_threads");
  if (!run || !pool_threads) return 1;
  check(run() == 0, "ops and a training step ran");
  const Settings after = read_settings();
  compare(host, after, "after ops and a training step");
  // New threads: tapegrad's pool workers, and OpenBLAS's up to the count the host gave it (its
  // float64 products). An OpenMP team started by oneDNN inside tapegrad would be more.
  const std::size_t allowed =
      host.threads.size() + static_cast<std::size_t>(pool_threads() - 1) + static_cast<std::size_t>(host.blas_threads);
  check(after.threads.size() <= allowed, "threads: " + std::to_string(after.threads.size()) + " after the ops, " +
                                             "at most " + std::to_string(allowed) + " expected (no OpenMP team)");

  std::printf("%d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
