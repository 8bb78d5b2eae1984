#!/usr/bin/env bash
# Weak scaling of data-parallel training on this machine: benchmarks/mpi_scaling with 1 and then 2
# ranks (1 thread each, batch 128 per rank), and 2 processes training apart (the machine's ceiling),
# for the tutorial and the deep model, five rounds
# alternating, then the best images/s of each and the ratio. Usage: scripts/bench-distributed.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-150}
export TG_MNIST_DIR="${TG_MNIST_DIR:-$(cd .. && pwd)/shared/data/mnist}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scripts/install-deps.sh
cmake -S . -B build-bench -G Ninja -DTG_BUILD_BENCHMARKS=ON -DTG_BUILD_TESTS=OFF > /dev/null
cmake --build build-bench -j "$(nproc)" --target mpi_scaling
results=build-bench/distributed.jsonl
: > "$results"
for round in 1 2 3 4 5; do
  for model in tutorial deep; do
    for ranks in 1 2; do
      mpirun -np "$ranks" --bind-to core build-bench/benchmarks/mpi_scaling --model "$model" --steps "$steps" |
        tee -a "$results"
    done
    # The ceiling: 2 processes training apart, sharing the machine but not their gradients.
    mpirun -np 2 --bind-to core build-bench/benchmarks/mpi_scaling --model "$model" --steps "$steps" --independent |
      tee -a "$results"
  done
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
for model in ("tutorial", "deep"):
    best = {}
    for r in rows:
        kind = r["workload"].split("_")[0]
        if r["workload"].startswith((f"ddp_{model}_", f"independent_{model}_")):
            key = (kind, r["ranks"])
            if key not in best or r["images_per_second"] > best[key]["images_per_second"]:
                best[key] = r
    if ("ddp", 1) in best and ("ddp", 2) in best:
        one, two = best[("ddp", 1)], best[("ddp", 2)]
        apart = best.get(("independent", 2))
        print(f"{model}: 1 rank {one['images_per_second']:.0f} images/s, 2 ranks {two['images_per_second']:.0f} "
              f"images/s: {two['images_per_second'] / one['images_per_second']:.2f}x"
              + (f" (2 processes apart, no communication: {apart['images_per_second'] / one['images_per_second']:.2f}x)"
                 if apart else "")
              + (f"; apart, a step waiting for the slower process would cost {apart['synchronous_step_seconds']*1e3:.2f} ms"
                 f" against {apart['step_seconds']*1e3:.2f} ms" if apart else "")
              + f"; step {two['step_seconds']*1e3:.2f} ms, allreduce of {two['gradient_bytes']} B alone "
              f"{two['allreduce_seconds']*1e6:.0f} us, {two['buckets']} buckets, backward's end waited "
              f"{two['exposed_wait_seconds']*1e6:.0f} us, hidden {two['hidden_fraction']:.0%}")
PY
