#pragma once
// The instruction sets tapegrad's SIMD kernels are compiled for, and the one they run at. Each
// SIMD kernel file (the list in CMakeLists.txt) is compiled once per level into its own
// namespace (tg::kernels::baseline, ::avx2, ::avx512) and publishes a table of its functions;
// callers take the table of the active level. So one binary runs on any x86-64 CPU and uses
// the widest vectors the CPU has.
#include <string_view>
#include <type_traits>

namespace tg::kernels {

/// Kernel levels, lowest first: SSE2 (every x86-64 CPU); AVX2 with FMA (x86-64-v3); AVX-512 F,
/// BW, DQ and VL (x86-64-v4).
enum class Isa : int { baseline, avx2, avx512 };

/// The best level this CPU and its operating system run.
Isa best_isa();

/// The level kernels run at: best_isa(), unless the environment variable TG_CPU_CAPABILITY
/// (read when the first kernel runs) or set_isa() chose a lower one. Throws tg::Error while
/// TG_CPU_CAPABILITY names no level or one above best_isa(), until set_isa() chooses one.
Isa active_isa();

/// Runs kernels at `level` from now on (every thread); false, changing nothing, when the CPU
/// lacks it.
bool set_isa(Isa level);

/// "baseline", "avx2" or "avx512".
std::string_view isa_name(Isa level);

/// The level named `name`; false when there is none.
bool parse_isa(std::string_view name, Isa& level);

/// f(std::integral_constant<Isa, I>{}) for the active level I: how callers pick a kernel table.
template <class F>
decltype(auto) for_active_isa(F&& f) {
  switch (active_isa()) {
    case Isa::avx512:
      return f(std::integral_constant<Isa, Isa::avx512>{});
    case Isa::avx2:
      return f(std::integral_constant<Isa, Isa::avx2>{});
    case Isa::baseline:
      break;
  }
  return f(std::integral_constant<Isa, Isa::baseline>{});
}

/// The kernel table `Table` (a struct of function pointers) compiled for level I: each SIMD
/// kernel file defines it for its own level and tables (TG_PUBLISH_KERNELS in kernels/simd.hpp).
template <Isa I, class Table>
const Table& table_for();

/// Declares the specializations of table_for that the SIMD kernel file of Table defines (for
/// float and double, at each level), where Table's header declares Table.
#define TG_DECLARE_KERNEL_TABLE(Table)                            \
  template <>                                                     \
  const Table<float>& table_for<Isa::baseline, Table<float>>();   \
  template <>                                                     \
  const Table<double>& table_for<Isa::baseline, Table<double>>(); \
  template <>                                                     \
  const Table<float>& table_for<Isa::avx2, Table<float>>();       \
  template <>                                                     \
  const Table<double>& table_for<Isa::avx2, Table<double>>();     \
  template <>                                                     \
  const Table<float>& table_for<Isa::avx512, Table<float>>();     \
  template <>                                                     \
  const Table<double>& table_for<Isa::avx512, Table<double>>();

/// The kernel table `Table` of the active level.
template <class Table>
const Table& active_table() {
  return for_active_isa([](auto level) -> const Table& { return table_for<decltype(level)::value, Table>(); });
}

}  // namespace tg::kernels
