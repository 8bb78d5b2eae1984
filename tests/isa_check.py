#!/usr/bin/env python3
"""Checks that a portable build of libtapegrad.so runs on any x86-64 CPU: only functions compiled
for an instruction set (namespaces tg::kernels::avx2 and ::avx512, and xsimd's code for those
sets) contain its instructions. Everything else must be plain x86-64 (SSE2): one AVX instruction
there and the library dies with SIGILL on an older CPU.  Usage: isa_check.py LIBRARY"""
import re
import subprocess
import sys

# Instructions beyond x86-64's baseline that GCC emits for AVX, AVX2, BMI and friends. (objdump
# prints `rep bsf`, which every x86-64 CPU runs, as tzcnt: that one is left out.)
BEYOND_BASELINE = re.compile(r"^(v\w+|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx|lzcnt|"
                             r"popcnt|movbe|crc32|kmov\w*|kand\w*|kor\w*|kxor\w*|knot\w*|kshift\w*|kortest\w*)$")
AVX512_REGISTER = re.compile(r"%zmm|%k[0-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b")


def level_of(function):
    """The instruction set a function may use: 2 (AVX-512), 1 (AVX2+FMA) or 0 (baseline)."""
    if "tg::kernels::avx512::" in function or "xsimd::avx512" in function:
        return 2
    if "tg::kernels::avx2::" in function or "xsimd::fma3<xsimd::avx2>" in function or "xsimd::avx2" in function \
            or "xsimd::avx>" in function or "xsimd::fma3<xsimd::avx>" in function:
        return 1
    return 0


def main():
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", sys.argv[1]], check=True,
                                 capture_output=True, text=True).stdout
    function, level = "", 0
    bad = {}
    counts = [0, 0, 0]
    for line in disassembly.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
            level = level_of(function)
            counts[level] += 1
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not function:
            continue
        fields = parts[1].split(None, 1)
        if not fields:
            continue
        mnemonic, operands = fields[0], fields[1] if len(fields) > 1 else ""
        if level == 0 and BEYOND_BASELINE.match(mnemonic):
            bad.setdefault(function, f"{mnemonic} {operands}".strip())
        elif level == 1 and AVX512_REGISTER.search(operands):
            bad.setdefault(function, f"{mnemonic} {operands} (AVX-512 in an AVX2 function)")
    for function, instruction in sorted(bad.items())[:20]:
        print(f"not portable: {function}\n    {instruction}")
    print(f"functions: {counts[0]} baseline, {counts[1]} AVX2, {counts[2]} AVX-512; {len(bad)} use instructions "
          f"beyond their level")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
