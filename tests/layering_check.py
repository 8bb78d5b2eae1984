#!/usr/bin/env python3
"""Holds the source tree to the dependency rule (DESIGN.md section 1): kernels <- autograd <- ops <- nn;
optim, datasets and distributed see autograd only (nn may use distributed for data-parallel
training); only the Keras-style training code (nn/train) sees optim
and datasets. Internal headers (kernels/ and any detail/ folder) stay out of the public headers,
the examples and the benchmarks. Each `#include "..."` of a project header is checked against the
including file's folder, and must be spelled "tapegrad/<folder>/<file>" (a bare "nn/module.hpp"
could pick up a user's header of that name). And the umbrella header stays lean: nothing it
includes, directly or through project headers, includes xtensor or fmt's formatting (those come
with autograd/xarray.hpp and autograd/check.hpp, which users include when they need them).
Usage: layering_check.py SOURCE_DIR"""
import pathlib
import re
import sys

# Folder of the including file -> folders (prefixes) it may include from.
ALLOWED = {
    "kernels/": ["kernels/"],
    "autograd/": ["autograd/", "kernels/"],
    "ops/": ["ops/", "autograd/", "kernels/"],
    "nn/train/": ["nn/", "ops/", "autograd/", "optim/", "datasets/", "distributed/"],
    "nn/": ["nn/", "ops/", "autograd/", "distributed/"],
    "optim/": ["optim/", "autograd/"],
    "datasets/": ["datasets/", "autograd/"],
    "distributed/": ["distributed/", "autograd/"],
    "examples/": ["tapegrad.hpp", "autograd/", "ops/", "nn/", "optim/", "datasets/", "distributed/"],
    "benchmarks/": ["bench_", "tapegrad.hpp", "autograd/", "ops/", "nn/", "optim/", "datasets/", "distributed/"],
    "tapegrad.hpp": ["autograd/", "ops/", "nn/", "optim/", "datasets/", "distributed/"],
}
INTERNAL = re.compile(r"^kernels/(?!(error|check)\.hpp$)|/detail/")  # tg::Error and TG_CHECK are public
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
ANY_INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^">]+)[">]')
# What the umbrella header must not reach: each costs a user file that includes it a second or so.
HEAVY = re.compile(r"^(xtensor/|xsimd/|fmt/|filesystem$|random$|mutex$|chrono$|tapegrad/kernels/check\.hpp$|"
                   r"tapegrad/autograd/(check|xarray|format)\.hpp$)")


def umbrella_problems(root):
    """The heavy includes reachable from tapegrad.hpp through project headers, as file:line."""
    problems, seen, todo = [], set(), ["tapegrad.hpp"]
    while todo:
        relative = todo.pop()
        if relative in seen or not (root / relative).exists():
            continue
        seen.add(relative)
        for line_number, line in enumerate((root / relative).read_text().splitlines(), start=1):
            match = ANY_INCLUDE.match(line)
            if not match:
                continue
            spelled = match.group(1)
            if HEAVY.search(spelled):
                problems.append(f"{relative}:{line_number}: includes {spelled}, which tapegrad.hpp must not reach")
            elif spelled.startswith("tapegrad/"):
                todo.append(spelled.removeprefix("tapegrad/"))
    return problems


def folder_rule(relative):
    for prefix in sorted(ALLOWED, key=len, reverse=True):  # nn/train/ before nn/
        if relative.startswith(prefix) or relative == prefix:
            return prefix
    return None


def main(root):
    root = pathlib.Path(root)
    problems, checked = [], 0
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.suffix not in (".hpp", ".cpp") or relative.startswith(("build", "tests/")):
            continue
        rule = folder_rule(relative)
        if rule is None:
            continue
        public_header = path.suffix == ".hpp" and not INTERNAL.search(relative) and rule not in ("examples/",
                                                                                                 "benchmarks/")
        for line_number, line in enumerate(path.read_text().splitlines(), start=1):
            match = INCLUDE.match(line)
            if not match:
                continue
            spelled = match.group(1)
            included = spelled.removeprefix("tapegrad/")
            where = f"{relative}:{line_number}"
            if rule.startswith(("examples/", "benchmarks/")) and (path.parent / spelled).exists():
                continue  # a program's own header, next to it (or another program's, by a relative path)
            if not (root / included).exists() and not rule.startswith(("examples/", "benchmarks/")):
                continue  # a system header spelled with quotes
            checked += 1
            if spelled == included and not included.startswith("bench_"):
                problems.append(f'{where}: includes "{spelled}"; spell it "tapegrad/{spelled}"')
                continue
            within_train = rule == "nn/" and included.startswith("nn/train/")
            if within_train or not any(included.startswith(p) for p in ALLOWED[rule]):
                problems.append(f"{where}: includes {included}, outside what {rule} may see")
            elif INTERNAL.search(included) and (public_header or rule in ("examples/", "benchmarks/")):
                problems.append(f"{where}: includes the internal header {included}")
    problems += umbrella_problems(root)
    for p in problems:
        print(p)
    print(f"{checked} includes checked; {len(problems)} break the dependency rule")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
