#!/usr/bin/env python3
"""Checks that a portable build of libtapegrad.so runs on any x86-64 CPU: only the functions
compiled for an instruction set (namespaces tg::kernels::avx2 and ::avx512, and xsimd's code for
those sets) contain its instructions. Everything else must be plain x86-64 (SSE2): one AVX
instruction there and the library dies with SIGILL on an older CPU. Instructions are judged by
their encoding (a VEX or EVEX prefix) and, for the SSE3/SSSE3/SSE4/BMI extensions, which use the
old encoding, by mnemonic.  Usage: isa_check.py LIBRARY"""
import re
import subprocess
import sys

# Legacy and REX prefixes that may stand before an instruction's opcode (or its VEX/EVEX prefix).
PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3} | set(range(0x40, 0x50))
# Beyond x86-64's SSE2 without a VEX prefix. (objdump prints `rep bsf`, which every x86-64 CPU
# runs, as tzcnt: that one is left out.)
BEYOND_SSE2 = re.compile(
    r"^(?:addsubp[sd]|h(?:add|sub)p[sd]|movddup|movs[hl]dup|lddqu|monitor|mwait|"  # SSE3
    r"pshufb|palignr|pabs[bwd]|ph(?:add|sub)(?:w|d|sw)|pmaddubsw|pmulhrsw|psign[bwd]|"  # SSSE3
    r"blendv?p[sd]|pblendw|pblendvb|dpp[sd]|extractps|insertps|pextr[bdq]|pinsr[bdq]|"  # SSE4.1
    r"pm(?:ax|in)(?:sb|sd|ud|uw)|pmov[sz]x(?:bw|bd|bq|wd|wq|dq)|pmuldq|pmulld|ptest|round[ps][sd]|"
    r"packusdw|pcmpeqq|mpsadbw|phminposuw|movntdqa|"
    r"pcmpgtq|pcmp[ei]str[im]|crc32[bwlq]?|popcnt[wlq]?|"  # SSE4.2, POPCNT
    r"lzcnt[wlq]?|andn[lq]?|bextr[lq]?|bls(?:i|msk|r)[lq]?|bzhi[lq]?|mulx[lq]?|pdep[lq]?|pext[lq]?|"  # BMI
    r"rorx[lq]?|sarx[lq]?|shlx[lq]?|shrx[lq]?|movbe[wlq]?|cmpxchg16b|adcx[lq]?|adox[lq]?)$")


def level_of(function):
    """The instruction set a function may use: 2 (AVX-512), 1 (AVX2+FMA) or 0 (baseline)."""
    if "tg::kernels::avx512::" in function or "xsimd::avx512" in function:
        return 2
    if "tg::kernels::avx2::" in function or "xsimd::fma3<xsimd::avx2>" in function or "xsimd::avx2" in function \
            or "xsimd::avx>" in function or "xsimd::fma3<xsimd::avx>" in function:
        return 1
    return 0


def encoding(raw):
    """'evex', 'vex' or 'legacy' for an instruction's bytes."""
    i = 0
    while i < len(raw) and raw[i] in PREFIXES:
        i += 1
    if i < len(raw) and raw[i] == 0x62:  # BOUND, the opcode's old meaning, is invalid in 64-bit code
        return "evex"
    if i < len(raw) and raw[i] in (0xC4, 0xC5, 0x8F):  # VEX (and AMD's XOP); LES/LDS likewise
        return "vex" if raw[i] != 0x8F or (i + 1 < len(raw) and raw[i + 1] & 0x1F >= 8) else "legacy"
    return "legacy"


def main():
    disassembly = subprocess.run(["objdump", "-d", "-C", "--insn-width=16", sys.argv[1]], check=True,
                                 capture_output=True, text=True).stdout
    function, level = "", 0
    bad, counts, instructions = {}, [0, 0, 0], 0
    for line in disassembly.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
            level = level_of(function)
            counts[level] += 1
            continue
        parts = line.split("\t")
        if len(parts) < 3 or not function:
            continue
        try:
            raw = bytes.fromhex(parts[1].strip())
        except ValueError:
            continue
        fields = parts[2].split(None, 1)
        if not raw or not fields:
            continue
        instructions += 1
        mnemonic = fields[0]
        kind = encoding(raw)
        if level == 0 and (kind != "legacy" or BEYOND_SSE2.match(mnemonic)):
            bad.setdefault(function, parts[2].strip())
        elif level == 1 and kind == "evex":
            bad.setdefault(function, parts[2].strip() + " (EVEX: AVX-512 in an AVX2 function)")
    for function, instruction in sorted(bad.items())[:20]:
        print(f"not portable: {function}\n    {instruction}")
    print(f"{instructions} instructions in {counts[0]} baseline, {counts[1]} AVX2 and {counts[2]} AVX-512 "
          f"functions; {len(bad)} use instructions beyond their level")
    if min(counts) == 0 or instructions < 1000:
        print("the disassembly does not look like a portable tapegrad library (a level without functions)")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
