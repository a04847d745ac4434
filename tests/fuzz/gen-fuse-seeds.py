#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-fuse (tests/fuzz/corpus/fuse/): sequences
of FUSE requests, each prefixed by a 16-bit length and a flag byte.  Node
ids below 256 are mapped by the target: 0 root, 1 tree "t", 2 file "a",
3 executable "b", 4 symlink "c", 5 directory "d", 6 file "e" (blob absent)."""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuse")

LOOKUP, FORGET, GETATTR, SETATTR, READLINK = 1, 2, 3, 4, 5
MKDIR, UNLINK, OPEN, READ, WRITE, STATFS, RELEASE = 9, 10, 14, 15, 16, 17, 18
GETXATTR, LISTXATTR, FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR = 22, 23, 25, 26, 27, 28, 29
ACCESS, CREATE, INTERRUPT, DESTROY, BATCH_FORGET, READDIRPLUS, LSEEK, STATX = 34, 35, 36, 38, 42, 44, 46, 52


def req(opcode, nodeid, body=b"", flags=0, extlen=0):
    h = struct.pack("<IIQQIIIHH", 40 + len(body), opcode, 7, nodeid, 0, 0, 0, extlen, 0)
    r = h + body
    return struct.pack("<HB", len(r), flags) + r


def read_in(fh=0, off=0, size=4096):
    return struct.pack("<QQIIQII", fh, off, size, 0, 0, 0, 0)


def open_in(flags=0):
    return struct.pack("<II", flags, 0)


def release_in(fh=0):
    return struct.pack("<QIIQ", fh, 0, 0, 0)


SEEDS = {
    "lookup-getattr": req(LOOKUP, 0, b"t\0") + req(LOOKUP, 1, b"a\0") + req(GETATTR, 2, bytes(16))
    + req(LOOKUP, 1, b"zz\0") + req(LOOKUP, 0, b"nope\0") + req(GETATTR, 0, bytes(16)),
    "readdir": req(OPENDIR, 1, open_in()) + req(READDIR, 1, read_in(size=80))
    + req(READDIR, 1, read_in(off=2, size=4096)) + req(READDIRPLUS, 1, read_in(size=400))
    + req(READDIRPLUS, 5, read_in(size=4096)) + req(RELEASEDIR, 1, release_in()),
    "root-listing": req(OPENDIR, 0, open_in()) + req(READDIRPLUS, 0, read_in(fh=1, size=4096))
    + req(READDIR, 0, read_in(fh=1, off=1)) + req(RELEASEDIR, 0, release_in(1)),
    "open-read": req(OPEN, 3, open_in()) + req(READ, 3, read_in(fh=0, off=4000, size=70000))
    + req(READ, 3, read_in(fh=0, off=99999, size=10)) + req(RELEASE, 3, release_in(0))
    + req(OPEN, 6, open_in()) + req(OPEN, 1, open_in()) + req(OPEN, 2, open_in(2)),
    "xattr": req(GETXATTR, 2, struct.pack("<II", 0, 0) + b"user.castore.blob.digest\0")
    + req(GETXATTR, 1, struct.pack("<II", 100, 0) + b"user.castore.directory.digest\0")
    + req(GETXATTR, 2, struct.pack("<II", 3, 0) + b"user.castore.blob.digest\0")
    + req(LISTXATTR, 1, struct.pack("<II", 0, 0)) + req(LISTXATTR, 2, struct.pack("<II", 200, 0)),
    "misc": req(READLINK, 4) + req(STATFS, 0) + req(ACCESS, 3, struct.pack("<II", 1, 0))
    + req(ACCESS, 2, struct.pack("<II", 2, 0)) + req(FLUSH, 2, bytes(24)) + req(LSEEK, 2, bytes(24))
    + req(STATX, 2, bytes(24)) + req(INTERRUPT, 0, struct.pack("<Q", 7)) + req(9999, 1, bytes(8)),
    "writes": req(MKDIR, 1, struct.pack("<II", 0o755, 0) + b"new\0") + req(UNLINK, 1, b"a\0")
    + req(WRITE, 2, bytes(40) + b"data") + req(SETATTR, 2, bytes(88)) + req(CREATE, 1, bytes(16) + b"x\0"),
    "forget": req(LOOKUP, 1, b"d\0") + req(FORGET, 5, struct.pack("<Q", 1))
    + req(BATCH_FORGET, 0, struct.pack("<II", 2, 0) + struct.pack("<QQ", 2**40, 1) + struct.pack("<QQ", 5, 3))
    + req(BATCH_FORGET, 0, struct.pack("<II", 1000, 0)) + req(GETATTR, 5, bytes(16)),
    "malformed": req(LOOKUP, 1, b"noterm") + req(GETATTR, 2, bytes(4)) + req(READ, 3, bytes(20))
    + req(LOOKUP, 1, b"a\0", flags=1) + req(LOOKUP, 1, b"a\0", extlen=9) + struct.pack("<HB", 10, 0) + bytes(10),
    "reinit": req(INIT, 0, struct.pack("<IIII", 7, 45, 65536, 0xffffffff) + bytes(48)) + req(DESTROY, 0)
    + req(LOOKUP, 0, b"t\0") + req(INIT, 0, struct.pack("<IIII", 8, 0, 0, 0)),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
