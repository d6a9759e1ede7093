#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""nvme-check.py — the host's half of guest-nvme's verify: does the NVMe
controller's backing file hold the guest's pattern where the guest wrote it?

    nvme-check.py BACKING CONSOLE [--size BYTES]

CONSOLE is the guest's console log; each "nvme-pattern: off=N len=N
seed=0x..." line in it names a region the guest wrote (and read back) through
/dev/nvme0n1. The 64-bit little-endian word at byte offset o of the namespace
must be splitmix64(o ^ seed), the same function as guest-nvme.c's; the
namespace starts at byte 0 of the file. With --size, the file must also have
kept that size.

Prints one line, "ok (...)" or "FAIL (...)", and exits 0 or 1 (2 for usage).
"""
import re
import struct
import sys

M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def main(argv):
    args = argv[1:]
    want_size = None
    if "--size" in args:
        i = args.index("--size")
        want_size = int(args[i + 1], 0)
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    backing, console = args
    pat = re.compile(r"^nvme-pattern: off=(\d+) len=(\d+) seed=(0x[0-9a-f]+)")
    regions = []
    with open(console, errors="replace") as f:
        for line in f:
            m = pat.match(line.strip())
            if m:
                regions.append((int(m.group(1)), int(m.group(2)), int(m.group(3), 16)))
    if not regions:
        print("FAIL (no nvme-pattern lines in %s: the guest wrote nothing)" % console)
        return 1
    problems = []
    total = 0
    with open(backing, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        if want_size is not None and size != want_size:
            problems.append("the file has %d bytes, not %d" % (size, want_size))
        for off, length, seed in regions:
            f.seek(off)
            data = f.read(length)
            if len(data) != length:
                problems.append("%d bytes at %d: the file ends first" % (length, off))
                continue
            words = struct.unpack("<%dQ" % (length // 8), data)
            for i, w in enumerate(words):
                want = splitmix64((off + 8 * i) ^ seed)
                if w != want:
                    problems.append("byte %d: 0x%016x, want 0x%016x (region at %d)"
                                    % (off + 8 * i, w, want, off))
                    break
            else:
                total += length
    if problems:
        print("FAIL (%s)" % "; ".join(problems[:4]))
        return 1
    print("ok (%d regions, %d KiB, seed 0x%016x: every word at the offset the guest wrote it)"
          % (len(regions), total // 1024, regions[0][2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
