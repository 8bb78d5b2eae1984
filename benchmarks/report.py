#!/usr/bin/python3
"""Reads the benchmark programs' JSON lines and prints one table: per workload and thread
count, each implementation's time and tapegrad's ratio to each reference (below 1 is faster)."""
import json
import sys
from collections import defaultdict


def fmt_time(s):
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.2f} us"


def main(path):
    rows = defaultdict(dict)
    extra = defaultdict(dict)
    order = []
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        key = (r["workload"], r["threads"])
        if key not in rows:
            order.append(key)
        rows[key][r["impl"]] = r
    impls = ["tapegrad", "pytorch", "libtorch", "openblas", "floor"]
    if any("tapegrad-native" in r for r in rows.values()):  # scripts/bench.sh --native
        impls.append("tapegrad-native")
    refs = impls[1:]
    print(f"| workload | threads | {' | '.join(impls)} | {' | '.join('tapegrad/' + r for r in refs)} |")
    print("|---|---|" + "---|" * (len(impls) + len(refs)))
    for key in order:
        workload, threads = key
        r = rows[key]
        if workload == "peak_rss":
            cells = [f"{r[i]['peak_rss_mib']:.0f} MiB" if i in r else "" for i in impls]
            print(f"| peak RSS of the benchmark process | {threads} | {' | '.join(cells)} |" + " |" * len(refs))
            continue
        if workload.endswith("_speedup"):
            t = r["tapegrad"]
            print(f"| {workload}: 1 thread {fmt_time(t['one_thread_seconds'])}, {threads} threads "
                  f"{fmt_time(t['seconds'])}, alternating in one process | {threads} | **{t['speedup']:.2f}x** |"
                  + " |" * (len(impls) - 1 + len(refs)))
            continue
        def cell(i):
            if i not in r:
                return ""
            s = fmt_time(r[i]["seconds"])
            if "gflops" in r[i]:
                s += f" ({r[i]['gflops']:.0f} GFLOP/s)"
            return s
        ratios = []
        for ref in refs:
            if "tapegrad" in r and ref in r and r[ref]["seconds"] > 0:
                ratios.append(f"{r['tapegrad']['seconds'] / r[ref]['seconds']:.2f}")
            else:
                ratios.append("")
        print(f"| {workload} ({r[next(iter(r))]['unit']}) | {threads} | {' | '.join(cell(i) for i in impls)} | "
              f"{' | '.join(ratios)} |")


if __name__ == "__main__":
    main(sys.argv[1])
