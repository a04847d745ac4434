#!/usr/bin/env python3
"""Writes seed inputs for fuzz-vhost_msg and fuzz-virtqueue (see the input
layouts described at the top of each target).  Usage: gen-vhost-seeds.py CORPUSDIR"""
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")

# ---- vhost_msg: records of u8 fdspec, u16 len, bytes
def msg(req, payload=b"", flags=1):
    return struct.pack("<III", req, flags, len(payload)) + payload

def rec(data, nmem=0, nev=0, memshift=4):
    spec = (nmem & 3) | ((nev & 7) << 2) | ((memshift & 7) << 5)
    return struct.pack("<BH", spec, len(data)) + data

NEED = 1 | 8
u64 = lambda v: struct.pack("<Q", v)
state = lambda i, n: struct.pack("<II", i, n)
UVA = 0x7f0000000000
MEM = 4096 << 4  # 64 KiB memfd
features = (1 << 32) | (1 << 28) | (1 << 29) | (1 << 30)

def handshake(nq=2):
    s = rec(msg(3)) + rec(msg(1)) + rec(msg(15)) + rec(msg(16, u64(9), NEED)) + rec(msg(17))
    s += rec(msg(2, u64(features), NEED))
    region = struct.pack("<QQQQ", 0, MEM, UVA, 0)
    s += rec(msg(5, struct.pack("<II", 1, 0) + region, NEED), nmem=1)
    for q in range(nq):
        base = 0x4000 * q
        s += rec(msg(8, state(q, 64), NEED))
        s += rec(msg(10, state(q, 0), NEED))
        s += rec(msg(9, struct.pack("<IIQQQQ", q, 0, UVA + base, UVA + base + 0x2000, UVA + base + 0x1000, 0), NEED))
        s += rec(msg(13, u64(q), NEED), nev=1)
        s += rec(msg(12, u64(q), NEED), nev=1)
        s += rec(msg(18, state(q, 1), NEED))
    return s

def stop(nq=2):
    return b"".join(rec(msg(11, state(q, 0))) for q in range(nq))

seeds = {
    "handshake": handshake(),
    "handshake-reboot": handshake() + stop() + handshake(),
    "reset-device": handshake() + rec(msg(34, b"", NEED)) + rec(msg(4)),
    "log-base": rec(msg(6, struct.pack("<QQ", 4096, 0), NEED), nmem=1) + rec(msg(7), nev=1),
    "too-many-fds": rec(msg(5, struct.pack("<II", 2, 0) + bytes(64), NEED), nmem=3, nev=7),
    "bad-version": rec(msg(1, b"", 2)),
    "unknown": rec(msg(99, b"", NEED)) + rec(msg(24, bytes(12 + 16))),
    "nofd-kick": rec(msg(12, u64(0x100), NEED)) + rec(msg(13, u64(0x100), NEED)),
}
os.makedirs(os.path.join(out, "vhost_msg"), exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, "vhost_msg", name), "wb") as f:
        f.write(data)

# ---- virtqueue: u16 num, u8 flags, u16 last_avail, u32 desc/avail/used offsets, u32 split, memory
def ring(num, flags, descs, heads, size=0x4000, split=0, indirect_tables=()):
    mem = bytearray(size)
    desc_off, avail_off, used_off = 0, 0x1000, 0x2000
    for i, (addr, ln, fl, nxt) in descs.items():
        struct.pack_into("<QIHH", mem, desc_off + 16 * i, addr, ln, fl, nxt)
    for off, entries in indirect_tables:
        for i, (addr, ln, fl, nxt) in enumerate(entries):
            struct.pack_into("<QIHH", mem, off + 16 * i, addr, ln, fl, nxt)
    struct.pack_into("<HH", mem, avail_off, 0, len(heads))
    for i, h in enumerate(heads):
        struct.pack_into("<H", mem, avail_off + 4 + 2 * i, h)
    n = num.bit_length() - 1
    hdr = struct.pack("<HBHIIII", n, flags, 0, desc_off, avail_off, used_off, split)
    return hdr + bytes(mem)

G = 0x40000000  # guest address of the memory (fuzz-virtqueue.c GPA_BASE)
vseeds = {
    "simple": ring(16, 2, {0: (G + 0x3000, 40, 1, 1), 1: (G + 0x3100, 256, 2, 0)}, [0]),
    "indirect": ring(16, 3, {0: (G + 0x3800, 48, 4, 0)}, [0],
                     indirect_tables=[(0x3800, [(G + 0x3000, 40, 1, 1), (G + 0x3100, 64, 3, 2), (G + 0x3200, 64, 2, 0)])]),
    "loop": ring(16, 0, {0: (G + 0x3000, 8, 1, 1), 1: (G + 0x3000, 8, 1, 0)}, [0, 1]),
    "split-regions": ring(16, 2, {0: (G + 0x2ff8, 16, 1, 1), 1: (G + 0x3ff0, 32, 2, 0)}, [0], split=0x3000),
    "many": ring(64, 2, {i: (G + 0x3000 + 8 * i, 8, 1 if i < 31 else 3, i + 1) for i in range(63)}, [0, 0, 0]),
}
os.makedirs(os.path.join(out, "virtqueue"), exist_ok=True)
for name, data in vseeds.items():
    with open(os.path.join(out, "virtqueue", name), "wb") as f:
        f.write(data)
