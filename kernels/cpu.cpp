#include "kernels/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace tg::kernels {
namespace {

constexpr Isa levels[] = {Isa::baseline, Isa::avx2, Isa::avx512};

// The level from TG_CPU_CAPABILITY, or the best one. __builtin_cpu_supports also checks that
// the operating system saves the wider registers (XGETBV), as a CPU flag alone does not.
Isa initial_isa() {
  const Isa best = best_isa();
  const char* env = std::getenv("TG_CPU_CAPABILITY");
  if (!env || !*env) return best;
  Isa wanted{};
  if (!parse_isa(env, wanted))
    throw std::invalid_argument("TG_CPU_CAPABILITY=" + std::string(env) + ": expected baseline, avx2 or avx512");
  if (wanted > best)
    throw std::invalid_argument("TG_CPU_CAPABILITY=" + std::string(env) + ": this CPU runs at most " +
                                std::string(isa_name(best)));
  return wanted;
}

std::atomic<int>& level() {
  // A function-local static: initialized on first use (so the environment is read then, and a
  // bad value throws from the op that first runs a kernel, again on every later try).
  static std::atomic<int> value{static_cast<int>(initial_isa())};
  return value;
}

}  // namespace

Isa best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return Isa::avx512;
  if (__builtin_cpu_supports("x86-64-v3")) return Isa::avx2;
  return Isa::baseline;
}

Isa active_isa() { return static_cast<Isa>(level().load(std::memory_order_relaxed)); }

bool set_isa(Isa wanted) {
  if (wanted > best_isa()) return false;
  level().store(static_cast<int>(wanted), std::memory_order_relaxed);
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
