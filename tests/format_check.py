#!/usr/bin/env python3
"""Holds the C++ sources to the tree's .clang-format: runs `clang-format --dry-run -Werror` on every
.cpp and .hpp of the project's folders and fails naming each file that would change.
Usage: format_check.py CLANG_FORMAT SOURCE_DIR"""
import pathlib
import subprocess
import sys

FOLDERS = ["kernels", "autograd", "ops", "nn", "optim", "datasets", "distributed", "examples", "benchmarks", "tests"]


def main(clang_format, root):
    root = pathlib.Path(root)
    files = [str(p) for folder in FOLDERS for p in sorted((root / folder).rglob("*"))
             if p.suffix in (".cpp", ".hpp") and p.is_file()]
    files.append(str(root / "tapegrad.hpp"))
    run = subprocess.run([clang_format, "--dry-run", "-Werror", *files], capture_output=True, text=True)
    bad = sorted({line.split(":")[0] for line in run.stderr.splitlines() if ": error:" in line})
    for path in bad:
        print(f"{pathlib.Path(path).relative_to(root)}: not formatted (clang-format -i {path})")
    print(f"{len(files)} files checked; {len(bad)} not formatted")
    return 1 if bad or run.returncode not in (0, 1) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
