#!/usr/bin/env bash
# Builds tapegrad and runs the whole test suite twice: in the optimized build (the same build/ as
# scripts/mnist.sh, so that one's objects are reused), then with warnings as errors under
# AddressSanitizer + UndefinedBehaviorSanitizer; then the thread tests under ThreadSanitizer, and
# the readers of untrusted files under libFuzzer (scripts/fuzz.sh, $TG_FUZZ_SECONDS per target).
# Usage: scripts/test.sh [--no-sanitizers]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
export TG_MNIST_DIR="${TG_MNIST_DIR:-$(cd .. && pwd)/shared/data/mnist}"

run_suite() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DTG_BUILD_EXAMPLES=ON "$@" > "$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 1200)
}

echo "== optimized build =="
run_suite build
if [[ "${1:-}" != "--no-sanitizers" ]]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build, warnings as errors =="
  # The consumer, qemu and process-settings tests run in the optimized build only (tests/CMakeLists.txt).
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
  run_suite build-sanitize -DTG_SANITIZE=ON -DTG_WARNINGS_AS_ERRORS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  unset ASAN_OPTIONS UBSAN_OPTIONS
  echo "== ThreadSanitizer: the tests that run threads =="
  cmake -S . -B build-tsan -G Ninja -DTG_TSAN=ON -DTG_WARNINGS_AS_ERRORS=ON -DTG_BUILD_EXAMPLES=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo > build-tsan.configure.log 2>&1 || { cat build-tsan.configure.log; exit 1; }
  cmake --build build-tsan -j "$jobs" --target test_threads test_reliability test_datasets
  # OpenBLAS's own threads are not instrumented: its float64 products run on this thread.
  export TSAN_OPTIONS=halt_on_error=1 OPENBLAS_NUM_THREADS=1
  build-tsan/tests/test_threads
  build-tsan/tests/test_reliability -tc="generators are safe*"
  build-tsan/tests/test_datasets -tc="DataLoader prefetch*,concurrent downloads*"
  unset TSAN_OPTIONS OPENBLAS_NUM_THREADS
  echo "== libFuzzer: the readers of untrusted files =="
  scripts/fuzz.sh
fi
