#include "tapegrad/kernels/cpu.hpp"

#include <atomic>
#include <cstdlib>

#include "tapegrad/kernels/check.hpp"
#include "tapegrad/kernels/error.hpp"

namespace tg::kernels {
namespace {

constexpr Isa levels[] = {Isa::baseline, Isa::avx2, Isa::avx512};

// The level from TG_CPU_CAPABILITY, or the best one. __builtin_cpu_supports also checks that
// the operating system saves the wider registers (XGETBV), as a CPU flag alone does not.
Isa from_environment() {
  const Isa best = best_isa();
  const char* env = std::getenv("TG_CPU_CAPABILITY");
  if (!env || !*env) return best;
  Isa wanted{};
  TG_CHECK(parse_isa(env, wanted), "TG_CPU_CAPABILITY={}: expected baseline, avx2 or avx512", env);
  TG_CHECK(wanted <= best, "TG_CPU_CAPABILITY={}: this CPU runs at most {}", env, isa_name(best));
  return wanted;
}

// The level kernels run at; -1 until the first kernel runs (the environment is read then) or
// set_isa chooses one.
std::atomic<int> chosen{-1};

}  // namespace

Isa best_isa() {
  __builtin_cpu_init();
#if defined(__clang__)
  // Clang (the fuzzing build) names features, not levels: those of x86-64-v3 and -v4 that
  // compiled code uses.
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
                  __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  const bool v3 = __builtin_cpu_supports("x86-64-v3"), v4 = __builtin_cpu_supports("x86-64-v4");
#endif
  if (v4) return Isa::avx512;
  if (v3) return Isa::avx2;
  return Isa::baseline;
}

Isa active_isa() {
  int level = chosen.load(std::memory_order_relaxed);
  if (level < 0) {
    // A bad TG_CPU_CAPABILITY throws here, from every kernel, until set_isa chooses a level.
    int unset = -1;
    chosen.compare_exchange_strong(unset, static_cast<int>(from_environment()), std::memory_order_relaxed);
    level = chosen.load(std::memory_order_relaxed);
  }
  return static_cast<Isa>(level);
}

bool set_isa(Isa wanted) {
  if (wanted > best_isa()) return false;
  chosen.store(static_cast<int>(wanted), std::memory_order_relaxed);
  return true;
}

std::string_view isa_name(Isa l) {
  switch (l) {
    case Isa::baseline:
      return "baseline";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

bool parse_isa(std::string_view name, Isa& out) {
  for (Isa l : levels)
    if (name == isa_name(l)) {
      out = l;
      return true;
    }
  return false;
}

}  // namespace tg::kernels
