#!/usr/bin/env bash
# Builds tapegrad and runs the whole test suite: the optimized build with warnings as errors
# (including a consumer project built against the installed package), then the same suite
# under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/test.sh [--no-sanitizers]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
export TG_MNIST_DIR="${TG_MNIST_DIR:-$(cd .. && pwd)/shared/data/mnist}"

run_suite() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DTG_WARNINGS_AS_ERRORS=ON -DTG_BUILD_EXAMPLES=ON "$@" > "$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 1200)
}

echo "== optimized build =="
run_suite build
if [[ "${1:-}" != "--no-sanitizers" ]]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
  # The install/consumer test is the same code as above; sanitizers look at the library itself.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite build-sanitize -DTG_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTG_BUILD_EXAMPLES=OFF
fi
