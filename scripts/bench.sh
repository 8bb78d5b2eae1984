#!/usr/bin/env bash
# Builds the benchmark programs and runs every workload for tapegrad, PyTorch (Debian's
# python3-torch) and libtorch's C++ frontend in one run, at 1 and 2 threads, then prints the
# table of times and ratios. Usage: scripts/bench.sh [--quick] [--threads "1 2"] [--only a,b] [--native]
# --native also builds tapegrad for this machine's CPU only (-DTG_NATIVE=ON, in build-bench-native)
# and runs its programs right after the portable ones, as impl "tapegrad-native": the portable
# build's cost, side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
threads_list="1 2"
only=""
native=0
while (($#)); do
  case $1 in
    --quick) quick="--quick" ;;
    --threads) threads_list=$2; shift ;;
    --only) only=$2; shift ;;
    --native) native=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-deps.sh --bench
export TG_MNIST_DIR="${TG_MNIST_DIR:-$(cd .. && pwd)/shared/data/mnist}"
cmake -S . -B build-bench -G Ninja -DTG_BUILD_BENCHMARKS=ON -DTG_BUILD_TESTS=OFF -DTG_BUILD_EXAMPLES=ON > /dev/null
cmake --build build-bench -j "$(nproc)"
if ((native)); then
  cmake -S . -B build-bench-native -G Ninja -DTG_NATIVE=ON -DTG_BUILD_BENCHMARKS=ON -DTG_BUILD_TESTS=OFF \
    -DTG_BUILD_EXAMPLES=OFF > /dev/null
  cmake --build build-bench-native -j "$(nproc)" --target bench_core bench_ops bench_train bench_lstm
fi
results=build-bench/results.jsonl
: > "$results"
only_args=()
[[ -n "$only" ]] && only_args=(--only "$only")
for t in $threads_list; do
  for program in build-bench/benchmarks/bench_*; do
    [[ -x "$program" && ! -d "$program" ]] || continue
    echo "running $(basename "$program") --threads $t" >&2
    "$program" --threads "$t" $quick "${only_args[@]}" >> "$results"
    native_program=build-bench-native/benchmarks/$(basename "$program")
    if ((native)) && [[ -x "$native_program" ]]; then
      echo "running $(basename "$program") --threads $t (native build)" >&2
      "$native_program" --threads "$t" $quick "${only_args[@]}" |
        sed 's/"impl": "tapegrad"/"impl": "tapegrad-native"/' >> "$results"
    fi
  done
  echo "running bench_torch.py --threads $t" >&2
  OPENBLAS_NUM_THREADS=$t /usr/bin/python3 benchmarks/bench_torch.py --threads "$t" $quick "${only_args[@]}" >> "$results"
done
/usr/bin/python3 benchmarks/report.py "$results"
