#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, the library under ASan + UBSan with
# coverage, and runs each on a fresh seed corpus for a bounded time; fails on the first input
# that crashes, hangs or trips a sanitizer (libFuzzer then writes it to build-fuzz/).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default: $TG_FUZZ_SECONDS, else 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${TG_FUZZ_SECONDS:-30}}
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DTG_FUZZ=ON -DTG_BUILD_TESTS=OFF \
  -DTG_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo > build-fuzz.configure.log 2>&1 ||
  { cat build-fuzz.configure.log; exit 1; }
cmake --build build-fuzz -j "$(nproc)"
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
build-fuzz/tests/fuzz/fuzz_seeds "$corpus"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for target in idx gzip safetensors checkpoint; do
  echo "== fuzz_$target, ${seconds} s"
  log=build-fuzz/fuzz_$target.log
  (cd build-fuzz && tests/fuzz/fuzz_$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus/$target") > "$log" 2>&1 || { status=1; cat "$log"; echo "fuzz_$target FAILED"; }
  grep -E "^stat::number_of_executed_units|^#[0-9]+ +DONE" "$log" || true
done
[[ $status == 0 ]] && echo "fuzzing: 4 targets, ${seconds} s each, no failure"
exit $status
