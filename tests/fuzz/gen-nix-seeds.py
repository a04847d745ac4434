#!/usr/bin/env python3
"""Writes seed inputs for fuzz-nar (NAR streams, valid and broken) and
fuzz-pathinfo (tvix.store.v1.PathInfo messages, valid and broken).
Usage: gen-nix-seeds.py [CORPUSDIR]"""
import hashlib
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- NAR ----
def s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<Q", len(b)) + b + b"\0" * ((8 - len(b) % 8) % 8)


def toks(*t):
    return b"".join(s(x) for x in t)


def reg(data, exe=False):
    return toks("(", "type", "regular") + (toks("executable", "") if exe else b"") + s("contents") + s(data) + s(")")


def link(t):
    return toks("(", "type", "symlink", "target") + s(t) + s(")")


def dir_(*entries):
    return toks("(", "type", "directory") + b"".join(
        toks("entry", "(", "name") + s(n) + s("node") + node + s(")") for n, node in entries) + s(")")


def nar(node):
    return s("nix-archive-1") + node


keep = dir_((".keep", reg(b"")))
complicated = dir_((".keep", reg(b"")), ("aa", link("/nix/store/somewhereelse")), ("keep", keep))
write("nar", "symlink", nar(link("/nix/store/somewhereelse")))
write("nar", "hello", nar(reg(b"Hello World!")))
write("nar", "hello-exec", nar(reg(b"Hello World!", exe=True)))
write("nar", "complicated", nar(complicated))
write("nar", "empty-dir", nar(dir_()))
write("nar", "nested", nar(dir_(("a", dir_(("b", dir_(("c", reg(b"12345678")))))),
                                 (b"\xff\xfe", reg(b"1234567", exe=True)))))
write("nar", "bad-unsorted", nar(dir_(("b", reg(b"")), ("a", reg(b"")))))
write("nar", "bad-padding", nar(reg(b"x"))[:-17] + b"\1" + nar(reg(b"x"))[-16:])
write("nar", "bad-truncated", nar(complicated)[:300])

# ---- PathInfo (protobuf, hand-encoded) ----
def varint(v):
    b = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            b.append(c | 0x80)
        else:
            b.append(c)
            return bytes(b)


def field(num, data):  # length-delimited
    return varint(num << 3 | 2) + varint(len(data)) + data


def uint(num, v):
    return varint(num << 3) + varint(v) if v else b""


ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def nixbase32(b):
    n = (len(b) * 8 + 4) // 5
    r = []
    for k in range(n - 1, -1, -1):
        bit = k * 5
        i, j = bit // 8, bit % 8
        v = b[i] >> j
        if i + 1 < len(b):
            v |= b[i + 1] << (8 - j)
        r.append(ALPHABET[v & 31])
    return "".join(r)


def basename(digest, name):
    return nixbase32(digest) + "-" + name


d1, d2 = bytes(range(20)), bytes(range(100, 120))
b3 = hashlib.blake2b(b"x", digest_size=32).digest()  # any 32 bytes
file_node = field(2, field(1, basename(d1, "hello").encode()) + field(2, b3) + uint(3, 12))
dir_node = field(1, field(1, basename(d1, "src").encode()) + field(2, b3) + uint(3, 4))
link_node = field(3, field(1, basename(d1, "link").encode()) + field(2, b"/nix/store/somewhereelse"))


def narinfo(refs=(), sigs=(), deriver=None, ca=None):
    m = uint(1, 128) + field(2, bytes(32))
    for name, data in sigs:
        m += field(3, field(1, name.encode()) + field(2, data))
    for r in refs:
        m += field(4, basename(r, "ref").encode())
    if deriver:
        m += field(5, field(1, deriver.encode()) + field(2, d2))
    if ca:
        m += field(6, uint(1, ca[0]) + field(2, ca[1]))
    return m


def pathinfo(node, refs=(), **kw):
    return field(1, node) + b"".join(field(2, r) for r in refs) + field(3, narinfo(refs, **kw))


write("pathinfo", "file", pathinfo(file_node))
write("pathinfo", "dir-full", pathinfo(dir_node, refs=(d1, d2), sigs=(("cache.nixos.org-1", bytes(64)),),
                                       deriver="foo.drv", ca=(0, bytes(32))))
write("pathinfo", "symlink-ca", pathinfo(link_node, ca=(7, bytes(32))))
write("pathinfo", "bad-ref-count", field(1, file_node) + field(2, d1) + field(3, narinfo()))
write("pathinfo", "bad-ca-len", pathinfo(file_node, ca=(2, bytes(32))))
write("pathinfo", "bad-name", pathinfo(field(2, field(1, b"hello") + field(2, b3))))
