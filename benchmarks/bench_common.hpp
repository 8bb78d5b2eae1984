#pragma once
// Shared by the benchmark programs: timing and one JSON line per result.
#include <fmt/format.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace bench {

/// The options every benchmark program takes.
struct Args {
  int threads = 1;
  bool quick = false;  ///< fewer steps, scaled up to an epoch
  std::string only;    ///< comma-separated workload prefixes (empty: all)
  std::string data;    ///< directory of the MNIST .gz files
};

/// Parses --threads, --only, --quick and --data (default $TG_MNIST_DIR); exits on --help or a
/// bad option, as CLI11 does.
inline Args parse_args(int argc, char** argv, const std::string& description) {
  Args args;
  if (const char* env = std::getenv("TG_MNIST_DIR")) args.data = env;
  CLI::App app{description};
  app.add_option("--threads", args.threads);
  app.add_option("--only", args.only, "comma-separated workload prefixes");
  app.add_option("--data", args.data, "directory holding the MNIST .gz files (default $TG_MNIST_DIR)");
  app.add_flag("--quick", args.quick);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  return args;
}

/// Smallest mean seconds per call over `repeats` runs of `inner` calls, after one warm-up call.
template <class F>
double best_of(F&& fn, int repeats, int inner) {
  fn();
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) fn();
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    best = std::min(best, dt.count() / inner);
  }
  return best;
}

inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

/// Whether `workload` starts with one of the comma-separated prefixes in `only` (empty: all).
inline bool selected(const std::string& only, const std::string& workload) {
  if (only.empty()) return true;
  std::size_t start = 0;
  while (start <= only.size()) {
    const std::size_t end = std::min(only.find(',', start), only.size());
    const std::string prefix = only.substr(start, end - start);
    if (!prefix.empty() && workload.rfind(prefix, 0) == 0) return true;
    start = end + 1;
  }
  return false;
}

/// Prints {"workload": ..., "impl": ..., "threads": ..., "seconds": ..., "unit": ...[, extra]}.
inline void emit(const std::string& impl, const std::string& workload, double seconds, const std::string& unit,
                 int threads, const std::string& extra = "") {
  fmt::print("{{\"workload\": \"{}\", \"impl\": \"{}\", \"threads\": {}, \"seconds\": {:.9g}, \"unit\": \"{}\"{}}}\n",
             workload, impl, threads, seconds, unit, extra.empty() ? "" : ", " + extra);
  std::fflush(stdout);
}

}  // namespace bench
