#!/usr/bin/env python3
"""Extracts the uncompressed kernel ELF from a bzImage whose payload is
xz- or gzip-compressed (Debian's are xz), so QEMU can boot it directly
through its PVH entry point and skip the slow in-guest decompression.
Usage: extract-vmlinux.py BZIMAGE OUT"""
import lzma
import sys
import zlib

def main():
    data = open(sys.argv[1], "rb").read()
    candidates = []
    pos = data.find(b"\xfd7zXZ\x00")
    while pos >= 0:
        candidates.append(("xz", pos))
        pos = data.find(b"\xfd7zXZ\x00", pos + 1)
    pos = data.find(b"\x1f\x8b\x08")
    while pos >= 0:
        candidates.append(("gz", pos))
        pos = data.find(b"\x1f\x8b\x08", pos + 1)
    for kind, off in candidates:
        try:
            if kind == "xz":
                out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[off:])
            else:
                out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[off:])
        except (lzma.LZMAError, zlib.error, EOFError):
            continue
        if out[:4] == b"\x7fELF":
            with open(sys.argv[2], "wb") as f:
                f.write(out)
            return 0
    print("extract-vmlinux: no compressed ELF payload found", file=sys.stderr)
    return 1

sys.exit(main())
