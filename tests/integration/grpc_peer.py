"""An independent peer for castore's gRPC remote store (SPEC §6).

Written only from the .proto files, with Debian's python3-grpcio and
python3-protobuf and BLAKE3 from b3sum, it checks castore from both ends of
the tvix/snix castore protocol (run by tests/integration/test-grpc-peer.sh):

  server         in-memory Blob, Directory and PathInfo services under the
                 tvix.* or snix.* package names, validating what they receive
                 the way upstream servers do, and logging it (--log) for the
                 test to inspect; --liar flips one byte of every blob it sends.
  client-checks  drives a server (castore's daemon, or this one) through round
                 trips and the protocol's edge cases; one ok/not ok line each.

The stubs are generated at test time into a directory on PYTHONPATH, as the
modules tvix.* and snix.* (the same .proto files under the two packages).
"""
import argparse
import functools
import hashlib
import importlib
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import types
from concurrent import futures

import grpc

SC = grpc.StatusCode
B32 = "0123456789abcdfghijklmnpqrsvwxyz"
STORE_NAME = re.compile(rb"[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]{1,211}")
HEALTH = "/grpc.health.v1.Health/Check"


def stubs(pkg):
    m = lambda n: importlib.import_module(f"{pkg}.{n}")  # noqa: E731
    return types.SimpleNamespace(
        c=m("castore_pb2"), b=m("rpc_blobstore_pb2"), bg=m("rpc_blobstore_pb2_grpc"),
        dg=m("rpc_directory_pb2_grpc"), d=m("rpc_directory_pb2"), p=m("pathinfo_pb2"),
        r=m("rpc_pathinfo_pb2"), rg=m("rpc_pathinfo_pb2_grpc"))


@functools.lru_cache(maxsize=256)
def b3(data):
    """BLAKE3-256 of data, by b3sum (Python has no BLAKE3 here)."""
    return subprocess.run(["b3sum", "--no-names", "--raw"], input=data,
                          stdout=subprocess.PIPE, check=True).stdout


def nixbase32(b):
    out = []
    for k in range((len(b) * 8 + 4) // 5 - 1, -1, -1):
        i, j = divmod(k * 5, 8)
        c = b[i] >> j | (b[i + 1] << (8 - j) if i + 1 < len(b) else 0)
        out.append(B32[c & 31])
    return "".join(out)


def ca_hash(nar_sha256, name):
    """The 20-byte digest of the store path `nix-store --add` gives a tree."""
    h = hashlib.sha256(f"source:sha256:{nar_sha256.hex()}:/nix/store:{name}".encode()).digest()
    out = bytearray(20)
    for i, x in enumerate(h):
        out[i % 20] ^= x
    return bytes(out)


def nar(node, dirs, blobs):
    """(size, sha256) of the NAR of a Node; dirs and blobs map digests to
    Directory messages and bytes (KeyError if something is missing)."""
    out = [b"nix-archive-1"]

    def walk(kind, n):
        out.extend([b"(", b"type"])
        if kind == "file":
            out.extend([b"regular"] + [b"executable", b""] * n.executable + [b"contents", blobs[n.digest]])
        elif kind == "symlink":
            out.extend([b"symlink", b"target", n.target])
        else:
            d = dirs[n.digest]
            out.append(b"directory")
            es = [(e.name, k, e) for k, lst in (("directory", d.directories), ("file", d.files),
                                                ("symlink", d.symlinks)) for e in lst]
            for name, k, e in sorted(es, key=lambda t: t[0]):
                out.extend([b"entry", b"(", b"name", name, b"node"])
                walk(k, e)
                out.append(b")")
        out.append(b")")
    kind = node.WhichOneof("node")
    walk(kind, getattr(node, kind))
    data = b"".join(struct.pack("<Q", len(s)) + s + bytes(-len(s) % 8) for s in out)
    return len(data), hashlib.sha256(data).digest()


def check_dir(d):
    """Why a Directory is invalid (SPEC §1 validation), or None."""
    names = []
    for lst in (d.directories, d.files, d.symlinks):
        ns = [e.name for e in lst]
        if any(a >= b for a, b in zip(ns, ns[1:])):
            return "names not sorted"
        names += ns
    if len(set(names)) != len(names):
        return "duplicate names"
    if any(not n or n in (b".", b"..") or len(n) > 255 or b"\0" in n or b"/" in n for n in names):
        return "bad name"
    if any(len(e.digest) != 32 for e in list(d.directories) + list(d.files)):
        return "bad digest"
    if any(not s.target or len(s.target) > 4095 or b"\0" in s.target for s in d.symlinks):
        return "bad symlink target"
    return None


# ---------------------------------------------------------------- server

class Peer:
    """The three services over one in-memory store."""

    def __init__(self, S, log, liar):
        self.S, self.log, self.liar, self.lock = S, log, liar, threading.Lock()
        self.blobs, self.dirs, self.sizes, self.infos = {}, {}, {}, {}

    def note(self, line):
        if self.log:
            with self.lock, open(self.log, "a") as f:
                f.write(line + "\n")

    @staticmethod
    def digest(ctx, d, n=32):
        if len(d) != n:
            ctx.abort(SC.INVALID_ARGUMENT, f"digest of {len(d)} bytes, want {n}")
        return d

    # BlobService
    def Stat(self, req, ctx):
        if self.digest(ctx, req.digest) not in self.blobs:
            ctx.abort(SC.NOT_FOUND, "no such blob")
        return self.S.b.StatBlobResponse()

    def Read(self, req, ctx):
        data = self.blobs.get(self.digest(ctx, req.digest))
        if data is None:
            ctx.abort(SC.NOT_FOUND, "no such blob")
        if self.liar and data:
            data = bytearray(data)
            data[len(data) // 2] ^= 1
        pos, step = 0, 1000  # growing messages: the reader must join them
        while pos < len(data):
            yield self.S.b.BlobChunk(data=bytes(data[pos:pos + step]))
            pos, step = pos + step, min(step * 4, 1 << 17)

    def PutBlob(self, it, ctx):
        data = b"".join(c.data for c in it)
        d = b3(data)
        self.blobs[d] = data
        self.note(f"blob {d.hex()} {len(data)}")
        return self.S.b.PutBlobResponse(digest=d)

    # DirectoryService
    def PutDirectories(self, it, ctx):
        new, sizes, root = {}, {}, None
        for d in it:
            why = check_dir(d)
            size = len(d.directories) + len(d.files) + len(d.symlinks)
            for c in d.directories:
                have = sizes.get(c.digest, self.sizes.get(c.digest))
                if have is None:
                    why = why or f"child {c.name!r} neither sent before nor stored"
                elif c.size != have:
                    why = why or f"child {c.name!r} claims size {c.size}, has {have}"
                else:
                    size += have
            if why:
                ctx.abort(SC.INVALID_ARGUMENT, why)
            root = b3(d.SerializeToString())
            new[root], sizes[root] = d, size
        if root is None:
            ctx.abort(SC.INVALID_ARGUMENT, "no directory sent")
        reach, todo = set(), [root]
        while todo:
            dg = todo.pop()
            if dg in new and dg not in reach:
                reach.add(dg)
                todo += [c.digest for c in new[dg].directories]
        if len(reach) != len(new):
            ctx.abort(SC.INVALID_ARGUMENT, f"{len(new) - len(reach)} directories not connected to the root")
        self.dirs.update(new)
        self.sizes.update(sizes)
        for dg, d in new.items():
            missing = sum(f.digest not in self.blobs for f in d.files)
            self.note(f"directory {dg.hex()} missing-blobs={missing}")
        return self.S.d.PutDirectoryResponse(root_digest=root)

    def GetDirectories(self, req, ctx):
        if req.WhichOneof("by_what") is None:
            ctx.abort(SC.INVALID_ARGUMENT, "no digest")
        d = self.digest(ctx, req.digest)
        if d not in self.dirs:
            ctx.abort(SC.NOT_FOUND, "no such directory")
        queue, seen = [d], {d}
        while queue:
            dir_ = self.dirs[queue.pop(0)]
            yield dir_
            for c in dir_.directories if req.recursive else ():
                if c.digest not in seen:
                    seen.add(c.digest)
                    queue.append(c.digest)

    # PathInfoService
    def PutPathInfo(self, pi, ctx):
        kind = pi.node.WhichOneof("node")
        n = getattr(pi.node, kind) if kind else None
        refs, names = list(pi.references), list(pi.narinfo.reference_names)
        why = ("no root node" if n is None else
               "bad store path name" if not STORE_NAME.fullmatch(n.name) else
               "no narinfo" if not pi.HasField("narinfo") else
               "references do not match reference_names" if len(refs) != len(names) or any(
                   len(r) != 20 or not m.startswith(nixbase32(r) + "-") for r, m in zip(refs, names)) else
               "root directory not stored" if kind == "directory" and n.digest not in self.dirs else
               "root blob not stored" if kind == "file" and n.digest not in self.blobs else None)
        if why:
            ctx.abort(SC.INVALID_ARGUMENT, why)
        base = n.name.decode()
        try:
            size, sha = nar(pi.node, self.dirs, self.blobs)
            nar_ok = "ok" if (size, sha) == (pi.narinfo.nar_size, pi.narinfo.nar_sha256) else "mismatch"
            ca_ok = "ok" if base[:32] == nixbase32(ca_hash(sha, base[33:])) else "mismatch"
        except KeyError:
            nar_ok = ca_ok = "missing-data"
        self.infos[base[:32]] = pi
        self.note(f"pathinfo {base} nar={nar_ok} ca={ca_ok} refs={len(refs)}")
        return pi

    def GetPathInfo(self, req, ctx):
        if req.WhichOneof("by_what") is None:
            ctx.abort(SC.UNIMPLEMENTED, "only by_output_hash")
        pi = self.infos.get(nixbase32(self.digest(ctx, req.by_output_hash, 20)))
        if pi is None:
            ctx.abort(SC.NOT_FOUND, "no such path")
        return pi

    def CalculateNAR(self, node, ctx):
        kind = node.WhichOneof("node")
        if kind is None or getattr(node, kind).name:
            ctx.abort(SC.INVALID_ARGUMENT, "want an anonymous node")
        try:
            size, sha = nar(node, self.dirs, self.blobs)
        except KeyError:
            ctx.abort(SC.NOT_FOUND, "tree not complete")
        return self.S.r.CalculateNARResponse(nar_size=size, nar_sha256=sha)

    def List(self, req, ctx):
        yield from list(self.infos.values())


def serve(a):
    S = stubs(a.pkg)
    peer = Peer(S, a.log, a.liar)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    ns = types.SimpleNamespace
    S.bg.add_BlobServiceServicer_to_server(ns(Stat=peer.Stat, Read=peer.Read, Put=peer.PutBlob), server)
    S.dg.add_DirectoryServiceServicer_to_server(ns(Get=peer.GetDirectories, Put=peer.PutDirectories), server)
    S.rg.add_PathInfoServiceServicer_to_server(ns(Get=peer.GetPathInfo, Put=peer.PutPathInfo,
                                                  CalculateNAR=peer.CalculateNAR, List=peer.List), server)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"\x08\x01")})])  # SERVING
    if a.unix:
        server.add_insecure_port("unix://" + a.unix)
    port = server.add_insecure_port(f"127.0.0.1:{a.port}") if a.port is not None else 0
    server.start()
    with open(a.ready + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.rename(a.ready + ".tmp", a.ready)
    done = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: done.set())
    while not done.wait(1):
        pass
    server.stop(0)


# ---------------------------------------------------------------- client

def client_checks(a):
    S = stubs(a.pkg)
    fails = []

    def check(name, cond, detail=""):
        """One ok/not ok line; cond may be a callable, whose RpcError is a failure."""
        if callable(cond):
            try:
                cond = cond()
            except grpc.RpcError as e:
                cond, detail = False, f"{e.code().name}: {e.details()}"
        if not cond:
            fails.append(name)
            if detail:
                print(f"# {detail}")
        print(f"{'ok' if cond else 'not ok'} - {a.label}: {name}", flush=True)

    def status(call):
        try:
            r = call()
            if not hasattr(r, "SerializeToString"):
                list(r)  # a stream: its status comes at the end
            return None, "success"
        except grpc.RpcError as e:
            return e.code(), f"{e.code().name}: {e.details()}"

    def code(name, want, call, gone=()):
        """The call fails with status want; then each of gone fails with NOT_FOUND."""
        got, detail = status(call)
        left = [g for g in gone if status(g)[0] != SC.NOT_FOUND]
        check(name, got == want and not left,
              f"got {detail}, want {want.name}" + (f"; {len(left)} of it stored" if left else ""))

    def D(ds=(), fs=(), ls=()):
        d = S.c.Directory()
        for n, child, size in ds:
            d.directories.add(name=n, digest=dg(child), size=size)
        for n, b, x in fs:
            d.files.add(name=n, digest=b3(b), size=len(b), executable=x)
        for n, t in ls:
            d.symlinks.add(name=n, target=t)
        return d
    dg = lambda d: b3(d.SerializeToString())  # noqa: E731

    # The harness first: encoder, NAR renderer and nixbase32 against SPEC's known answers.
    keep = D(fs=[(b".keep", b"", False)])
    compl = D(ds=[(b"keep", keep, 1)], fs=[(b".keep", b"", False)], ls=[(b"aa", b"/nix/store/somewhereelse")])
    check("harness: encoder, NAR and nixbase32 known answers", dg(keep).hex().startswith("8b5b5d64")
          and dg(compl).hex().startswith("3f951a15")
          and nar(S.c.Node(directory=S.c.DirectoryNode(digest=dg(compl))), {dg(keep): keep, dg(compl): compl},
                  {b3(b""): b""})[1].hex().startswith("ebd52279")
          and nixbase32(bytes.fromhex("8a12321522fd91efbd60ebb2481af88580f61600")) == "00bgd045z0d4icpbc2yyz4gx48ak44la")

    target = a.addr.replace("grpc+unix://", "unix://").replace("grpc+http://", "")
    ch = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1),
                                                ("grpc.max_receive_message_length", 256 << 20)])
    grpc.channel_ready_future(ch).result(timeout=20)
    blob, dirs, pis = S.bg.BlobServiceStub(ch), S.dg.DirectoryServiceStub(ch), S.rg.PathInfoServiceStub(ch)
    check("health: SERVING", lambda: ch.unary_unary(HEALTH)(b"", timeout=10) == b"\x08\x01")
    salt = os.urandom(8).hex()  # a fresh tree each run: nothing of it is stored yet
    unknown = b3(salt.encode())
    if status(lambda: blob.Stat(S.b.StatBlobRequest(digest=unknown)))[0] == SC.UNIMPLEMENTED:
        check(f"the services are served under the {a.pkg}.* package names", False, "UNIMPLEMENTED")
        return 1

    # ---- blobs
    data = {n: os.urandom(n) for n in (0, 1, 16384, 16385, (1 << 20) + 1)}

    def round_trip(b):
        chunks = [b[:100], b""] + [b[i:i + (256 << 10)] for i in range(100, len(b), 256 << 10)] if b else []
        d = blob.Put(iter(S.b.BlobChunk(data=c) for c in chunks)).digest
        blob.Stat(S.b.StatBlobRequest(digest=d))
        return d == b3(b) and b"".join(c.data for c in blob.Read(S.b.ReadBlobRequest(digest=d))) == b
    for n, b in data.items():
        check(f"blob of {n} bytes: Put gives b3sum, Stat finds it, Read gives it back", lambda: round_trip(b))
    for n in (16385, (1 << 20) + 1):
        want = 32 * -(-n // 16384)  # docs/OUTBOARD.md: one chaining value per 16 KiB group
        if a.no_bao:
            print(f"skip - {a.label}: Stat send_bao of {n} bytes: this server makes no outboards", flush=True)
        else:
            check(f"Stat send_bao of {n} bytes: an outboard of {want} bytes", lambda: len(
                blob.Stat(S.b.StatBlobRequest(digest=b3(data[n]), send_bao=True)).bao) == want)
    code("Stat of an unknown blob: NOT_FOUND", SC.NOT_FOUND, lambda: blob.Stat(S.b.StatBlobRequest(digest=unknown)))
    code("Read of an unknown blob: NOT_FOUND", SC.NOT_FOUND, lambda: blob.Read(S.b.ReadBlobRequest(digest=unknown)))
    for n in (0, 31, 33):
        code(f"Stat of a {n}-byte digest: INVALID_ARGUMENT", SC.INVALID_ARGUMENT,
             lambda: blob.Stat(S.b.StatBlobRequest(digest=(unknown + b"x")[:n])))
    code("Read of a 31-byte digest: INVALID_ARGUMENT", SC.INVALID_ARGUMENT,
         lambda: blob.Read(S.b.ReadBlobRequest(digest=unknown[:31])))

    # ---- directories: R has a and b both -> X, X has c -> Y
    put = lambda *ds: dirs.Put(iter(ds)).root_digest  # noqa: E731
    get = lambda d, rec=True: list(dirs.Get(S.d.GetDirectoryRequest(digest=d, recursive=rec)))  # noqa: E731
    Y = D(fs=[(b"big", data[(1 << 20) + 1], True), (f"s-{salt}".encode(), data[1], False)],
          ls=[(b"link", b"/nix/store/somewhereelse")])
    X = D(ds=[(b"c", Y, 3)], fs=[(b"empty", b"", False)])
    R = D(ds=[(b"a", X, 5), (b"b", X, 5)], fs=[(b"f16k", data[16384], False)], ls=[(b"z", b"a/empty")])
    check("Directory Put leaves first: root digest = b3sum of the encoding", lambda: put(Y, X, R) == dg(R))
    check("Directory Get recursive: root first, each once, parents first", lambda: get(dg(R)) == [R, X, Y])
    check("Directory Get recursive of a subtree", lambda: get(dg(X)) == [X, Y])
    check("Directory Get not recursive: just it", lambda: get(dg(R), False) == [R])
    code("Directory Get of an unknown digest: NOT_FOUND", SC.NOT_FOUND, lambda: get(unknown))
    code("Directory Get without a digest: INVALID_ARGUMENT", SC.INVALID_ARGUMENT,
         lambda: dirs.Get(S.d.GetDirectoryRequest(recursive=True)))
    code("Directory Get of a 31-byte digest: INVALID_ARGUMENT", SC.INVALID_ARGUMENT, lambda: get(unknown[:31]))
    C = D(fs=[(f"c-{salt}".encode(), b"", False), (b"d", b"", False)])
    bad = {"a parent before its child": (D(ds=[(b"c", C, 2)]), C),
           "a child never sent": (D(ds=[(b"c", C, 2)], ls=[(b"m", b"missing")]),),
           "a child size that lies": (C, D(ds=[(b"c", C, 1)], ls=[(b"l", b"lies")])),
           "a directory not connected to the root": (C, D(ls=[(f"x-{salt}".encode(), b"x")])),
           "names out of order": (D(ls=[(f"z{salt}".encode(), b"z"), (b"a", b"a")]),),
           "a child size larger than true": (C, D(ds=[(b"c", C, 4)], ls=[(b"l", b"inflated")]))}
    for what, ds in bad.items():
        code(f"Directory Put with {what}: INVALID_ARGUMENT, nothing stored", SC.INVALID_ARGUMENT,
             lambda: put(*ds), [lambda d=d: get(dg(d)) for d in ds])

    # ---- path infos and NARs
    blobs, tree = {b3(b): b for b in data.values()}, {dg(d): d for d in (R, X, Y)}
    rnode = S.c.Node(directory=S.c.DirectoryNode(digest=dg(R), size=14))
    fnode = S.c.Node(file=S.c.FileNode(digest=b3(data[16385]), size=16385, executable=True))
    for what, node in (("the tree", rnode), ("an executable file", fnode)):
        check(f"CalculateNAR of {what} = the NAR rendered here", lambda: tuple(
            getattr(pis.CalculateNAR(node), f) for f in ("nar_size", "nar_sha256")) == nar(node, tree, blobs))
    code("CalculateNAR of a named node: INVALID_ARGUMENT", SC.INVALID_ARGUMENT, lambda: pis.CalculateNAR(
        S.c.Node(directory=S.c.DirectoryNode(name=b"named", digest=dg(R), size=14))))
    size, sha = nar(rnode, tree, blobs)
    name = f"grpc-peer-{salt}"
    h, h2 = ca_hash(sha, name), unknown[:20]

    def info(base, digest=dg(R), narinfo=True, refs=()):
        pi = S.p.PathInfo(node=S.c.Node(directory=S.c.DirectoryNode(name=base.encode(), digest=digest, size=14)),
                          references=list(refs))
        if narinfo:
            pi.narinfo.nar_size, pi.narinfo.nar_sha256 = size, sha
            pi.narinfo.ca.type, pi.narinfo.ca.digest = S.p.NARInfo.CA.NAR_SHA256, sha
        return pi
    pi = info(f"{nixbase32(h)}-{name}")
    check("PathInfo Put returns the PathInfo", lambda: pis.Put(pi) == pi)
    check("PathInfo Get by_output_hash finds it", lambda: pis.Get(S.r.GetPathInfoRequest(by_output_hash=h)) == pi)
    check("PathInfo List streams it", lambda: pi in list(pis.List(S.r.ListPathInfoRequest())))
    code("PathInfo Get of an unknown hash: NOT_FOUND", SC.NOT_FOUND,
         lambda: pis.Get(S.r.GetPathInfoRequest(by_output_hash=h2)))
    code("PathInfo Get of a 19-byte hash: INVALID_ARGUMENT", SC.INVALID_ARGUMENT,
         lambda: pis.Get(S.r.GetPathInfoRequest(by_output_hash=h[:19])))
    code("PathInfo Get without by_what: UNIMPLEMENTED", SC.UNIMPLEMENTED, lambda: pis.Get(S.r.GetPathInfoRequest()))
    for what, p in {"a bad store path name": info(f"{nixbase32(h2)[:31]}-x"),
                    "no narinfo": info(f"{nixbase32(h2)}-x", narinfo=False),
                    "references not matching their names": info(f"{nixbase32(h2)}-x", refs=[h]),
                    "a root directory not stored": info(f"{nixbase32(h2)}-x", digest=unknown)}.items():
        code(f"PathInfo Put with {what}: INVALID_ARGUMENT, nothing stored", SC.INVALID_ARGUMENT,
             lambda: pis.Put(p), [lambda: pis.Get(S.r.GetPathInfoRequest(by_output_hash=h2))])
    if a.record:
        with open(a.record, "a") as f:
            f.write(f"{nixbase32(h)}-{name} {size} {sha.hex()}\n")

    # ---- a message over the limit, then the server still serves
    code("a 64 MiB BlobChunk: RESOURCE_EXHAUSTED", SC.RESOURCE_EXHAUSTED,
         lambda: blob.Put(iter([S.b.BlobChunk(data=bytes(64 << 20))])))
    check("... and a Stat still works after it", lambda: blob.Stat(S.b.StatBlobRequest(digest=b3(data[1])),
                                                                   timeout=20) is not None)
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server", help="serve an in-memory store")
    s.add_argument("--pkg", choices=("tvix", "snix"), default="tvix")
    s.add_argument("--unix", help="listen on this unix socket")
    s.add_argument("--port", type=int, help="listen on this 127.0.0.1 port (0: a free one)")
    s.add_argument("--ready", required=True, help="written (the port) once serving")
    s.add_argument("--log", help="append what was received to this file")
    s.add_argument("--liar", action="store_true", help="flip one byte of each blob read")
    c = sub.add_parser("client-checks", help="check a server; ok/not ok lines")
    c.add_argument("--pkg", choices=("tvix", "snix"), default="tvix")
    c.add_argument("--addr", required=True, help="grpc+unix:///ABS/SOCK or grpc+http://HOST:PORT")
    c.add_argument("--label", default="grpc")
    c.add_argument("--no-bao", action="store_true", help="skip the outboard checks")
    c.add_argument("--record", help="append 'BASENAME NAR_SIZE NAR_SHA256' of the path put here")
    a = ap.parse_args()
    if a.cmd == "server":
        serve(a)
        return 0
    return client_checks(a)


if __name__ == "__main__":
    sys.exit(main())
