#!/usr/bin/env bash
# Builds the benchmark programs and runs every workload for tapegrad, PyTorch (Debian's
# python3-torch) and libtorch's C++ frontend in one run, at 1 and 2 threads, then prints the
# table of times and ratios. Usage: scripts/bench.sh [--quick] [--threads "1 2"] [--only a,b]
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
threads_list="1 2"
only=""
while (($#)); do
  case $1 in
    --quick) quick="--quick" ;;
    --threads) threads_list=$2; shift ;;
    --only) only=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-deps.sh --bench
export TG_MNIST_DIR="${TG_MNIST_DIR:-$(cd .. && pwd)/shared/data/mnist}"
cmake -S . -B build-bench -G Ninja -DTG_BUILD_BENCHMARKS=ON -DTG_BUILD_TESTS=OFF -DTG_BUILD_EXAMPLES=ON > /dev/null
cmake --build build-bench -j "$(nproc)"
results=build-bench/results.jsonl
: > "$results"
only_args=()
[[ -n "$only" ]] && only_args=(--only "$only")
for t in $threads_list; do
  for program in build-bench/benchmarks/bench_*; do
    [[ -x "$program" && ! -d "$program" ]] || continue
    echo "running $(basename "$program") --threads $t" >&2
    "$program" --threads "$t" $quick "${only_args[@]}" >> "$results"
  done
  echo "running bench_torch.py --threads $t" >&2
  OPENBLAS_NUM_THREADS=$t /usr/bin/python3 benchmarks/bench_torch.py --threads "$t" $quick "${only_args[@]}" >> "$results"
done
/usr/bin/python3 benchmarks/report.py "$results"
