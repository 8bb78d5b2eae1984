#!/usr/bin/env python3
"""A rank that throws or is killed ends the whole job, fast and named: runs tests/distributed/fault.cpp
under mpiexec with 2 and 3 ranks, rank 1 failing at step 3, and checks that the job exits non-zero
within 30 s with a message naming rank 1. Usage: faults.py MPIEXEC FAULT_PROGRAM"""
import subprocess
import sys
import time


def main(mpiexec, program):
    failures = 0
    for ranks in (2, 3):
        for mode in ("throw", "kill"):
            start = time.monotonic()
            try:
                run = subprocess.run([mpiexec, "-n", str(ranks), program, mode], capture_output=True, text=True,
                                     timeout=30)
                code, output = run.returncode, run.stdout + run.stderr
            except subprocess.TimeoutExpired as e:
                code, output = None, "timed out after 30 s (a hang)\n" + str(e.stdout) + str(e.stderr)
            seconds = time.monotonic() - start
            named = "rank 1" in output
            ok = code not in (None, 0) and named
            failures += not ok
            print(f"{ranks} ranks, rank 1 {mode}s: exit code {code} after {seconds:.1f} s, "
                  f"{'names' if named else 'does NOT name'} rank 1: {'ok' if ok else 'FAILED'}")
            if not ok:
                print(output)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
