#!/usr/bin/env python3
# A small vhost-user-fs front-end for tests: plays the VMM and the guest's
# virtio-fs driver at once (guest memory in a memfd, split rings, FUSE
# requests in descriptor chains), so that the daemon can be driven through
# situations a real guest cannot easily produce: many requests at once,
# memory that shrinks under the daemon, a second connection, requests in
# flight at GET_VRING_BASE or SIGTERM.
#
#   vhost_front.py SOCKET SCENARIO [ARGS...]   (see the scenarios at the end)
# Prints "# ..." diagnostics; exits 0 if the scenario's checks held.
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time

GET_FEATURES, SET_FEATURES, SET_OWNER = 1, 2, 3
SET_MEM_TABLE = 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
F_INDIRECT, F_EVENT_IDX, F_PROTOCOL, F_VERSION_1 = 28, 29, 30, 32
PF_MQ, PF_REPLY_ACK = 0, 3
DESC_NEXT, DESC_WRITE = 1, 2

FUSE_LOOKUP, FUSE_OPEN, FUSE_READ, FUSE_RELEASE, FUSE_INIT = 1, 14, 15, 18, 26
FUSE_ASYNC_READ, FUSE_MAX_PAGES = 1 << 0, 1 << 22

UVA = 0x7F0000000000
RING_SPACING = 0x20000  # each ring's desc/avail/used inside its own 128 KiB
BUF_BASE = 0x400000     # request and reply buffers from 4 MiB up


def log(*a):
    print("#", *a, flush=True)


class Closed(Exception):
    pass


class Ring:
    def __init__(self, front, q, num, event_idx):
        self.f, self.q, self.num, self.event_idx = front, q, num, event_idx
        base = q * RING_SPACING
        self.desc, self.avail, self.used = base, base + 0x8000, base + 0x10000
        self.avail_idx = 0   # ours, published in avail->idx
        self.last_used = 0   # next used entry to look at
        self.free = list(range(0, num, 2))  # pairs of descriptors
        self.pending = {}    # head -> (buffer offset, reply size)
        self.kick = os.eventfd(0, os.EFD_CLOEXEC)
        self.call = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.err = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)

    def u16(self, off, v=None):
        m = self.f.mem
        if v is None:
            return struct.unpack_from("<H", m, off)[0]
        struct.pack_into("<H", m, off, v & 0xFFFF)

    def add(self, request, reply_size, buf):
        """Queues one chain: request (readable), then reply_size writable bytes."""
        assert self.free, "no free descriptors"
        head = self.free.pop(0)
        m = self.f.mem
        m[buf:buf + len(request)] = request
        rbuf = buf + ((len(request) + 4095) & ~4095)
        struct.pack_into("<QIHH", m, self.desc + 16 * head, buf, len(request), DESC_NEXT, head + 1)
        struct.pack_into("<QIHH", m, self.desc + 16 * (head + 1), rbuf, reply_size, DESC_WRITE, 0)
        self.u16(self.avail + 4 + 2 * (self.avail_idx % self.num), head)
        self.avail_idx += 1
        self.u16(self.avail + 2, self.avail_idx)
        self.pending[head] = (rbuf, reply_size)
        return head

    def do_kick(self):
        os.eventfd_write(self.kick, 1)

    def used_idx(self):
        return self.u16(self.used + 2)

    def reap(self):
        """Completed chains: [(head, used len, reply bytes)]."""
        out = []
        while self.last_used != self.used_idx():
            e = self.used + 4 + 8 * (self.last_used % self.num)
            head, ln = struct.unpack_from("<II", self.f.mem, e)
            rbuf, size = self.pending.pop(head)
            out.append((head, ln, bytes(self.f.mem[rbuf:rbuf + min(ln, size)])))
            self.free.append(head)
            self.last_used = (self.last_used + 1) & 0xFFFF
        if self.event_idx:  # used_event: interrupt at the next completion
            self.u16(self.avail + 4 + 2 * self.num, self.last_used)
        return out

    def wait(self, count, timeout=20):
        """Waits until count chains completed; returns them."""
        done, end = [], time.time() + timeout
        while True:
            done += self.reap()
            if len(done) >= count:
                return done
            left = end - time.time()
            if left <= 0:
                raise TimeoutError(f"ring {self.q}: {len(done)} of {count} chains completed")
            r, _, _ = select.select([self.call], [], [], min(left, 0.2))
            if r:
                try:
                    os.eventfd_read(self.call)
                except BlockingIOError:
                    pass


class Front:
    def __init__(self, path, mem_size=64 << 20, num=256, nqueues=2, event_idx=True, memfd=None):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.s.settimeout(20)
        self.mem_size = mem_size
        self.memfd = memfd if memfd is not None else os.memfd_create("guest", os.MFD_CLOEXEC)
        os.ftruncate(self.memfd, mem_size)
        self.mem = mmap.mmap(self.memfd, mem_size)
        self.unique = 0
        self.next_buf = BUF_BASE
        feats = self.get_u64(GET_FEATURES)
        self.msg(SET_OWNER)
        pf = self.get_u64(GET_PROTOCOL_FEATURES)
        self.msg(SET_PROTOCOL_FEATURES, struct.pack("<Q", pf & ((1 << PF_MQ) | (1 << PF_REPLY_ACK))))
        self.queues = self.get_u64(GET_QUEUE_NUM)
        want = (1 << F_VERSION_1) | (1 << F_PROTOCOL) | (1 << F_INDIRECT) | ((1 << F_EVENT_IDX) if event_idx else 0)
        assert feats & want == want, hex(feats)
        self.acked(SET_FEATURES, struct.pack("<Q", want))
        self.set_mem_table()
        self.rings = [Ring(self, q, num, event_idx) for q in range(nqueues)]
        for r in self.rings:
            self.start_ring(r, 0)

    # ---- vhost-user messages
    def send(self, req, payload=b"", fds=(), flags=1):
        data = struct.pack("<III", req, flags, len(payload)) + payload
        if fds:
            socket.send_fds(self.s, [data], list(fds))
        else:
            self.s.sendall(data)

    def recv_reply(self, req):
        h = self.recv_exact(12)
        r, flags, size = struct.unpack("<III", h)
        assert r == req and flags == 5, (r, flags, size)
        return self.recv_exact(size)

    def recv_exact(self, n):
        b = b""
        while len(b) < n:
            k = self.s.recv(n - len(b))
            if not k:
                raise Closed("the back-end closed the connection")
            b += k
        return b

    def msg(self, req, payload=b"", fds=()):
        self.send(req, payload, fds)

    def acked(self, req, payload=b"", fds=()):
        self.send(req, payload, fds, flags=1 | 8)
        ack = struct.unpack("<Q", self.recv_reply(req))[0]
        assert ack == 0, f"request {req} NACKed"

    def get_u64(self, req):
        self.send(req)
        return struct.unpack("<Q", self.recv_reply(req))[0]

    def set_mem_table(self):
        region = struct.pack("<QQQQ", 0, self.mem_size, UVA, 0)
        self.acked(SET_MEM_TABLE, struct.pack("<II", 1, 0) + region, [self.memfd])

    def start_ring(self, r, base):
        self.acked(SET_VRING_NUM, struct.pack("<II", r.q, r.num))
        self.acked(SET_VRING_BASE, struct.pack("<II", r.q, base))
        self.acked(SET_VRING_ADDR, struct.pack("<IIQQQQ", r.q, 0, UVA + r.desc, UVA + r.used, UVA + r.avail, 0))
        self.acked(SET_VRING_CALL, struct.pack("<Q", r.q), [r.call])
        self.acked(SET_VRING_ERR, struct.pack("<Q", r.q), [r.err])
        self.acked(SET_VRING_KICK, struct.pack("<Q", r.q), [r.kick])
        self.acked(SET_VRING_ENABLE, struct.pack("<II", r.q, 1))

    def get_vring_base(self, q):
        self.send(GET_VRING_BASE, struct.pack("<II", q, 0))
        idx, num = struct.unpack("<II", self.recv_reply(GET_VRING_BASE))
        assert idx == q
        return num

    # ---- FUSE requests
    def fuse(self, opcode, nodeid, body, reply_size=4096, q=1, kick=True):
        """Queues a request; returns its head."""
        self.unique += 1
        req = struct.pack("<IIQQIIIHH", 40 + len(body), opcode, self.unique, nodeid, 0, 0, 0, 0, 0) + body
        need = ((len(req) + 4095) & ~4095) + ((reply_size + 4095) & ~4095)
        if self.next_buf + need > self.mem_size:
            self.next_buf = BUF_BASE
        buf = self.next_buf
        self.next_buf += need
        head = self.rings[q].add(req, reply_size, buf)
        if kick:
            self.rings[q].do_kick()
        return head

    def call(self, opcode, nodeid, body, reply_size=4096, q=1):
        """One request, waited for: (error, payload, used len)."""
        self.fuse(opcode, nodeid, body, reply_size, q)
        (_, ln, data), = self.rings[q].wait(1)
        return parse_reply(data, ln)

    def init(self):
        err, out, _ = self.call(FUSE_INIT, 0, struct.pack("<IIIII44x", 7, 36, 1 << 20,
                                                             FUSE_ASYNC_READ | FUSE_MAX_PAGES, 0))
        assert err == 0, err
        return out

    def lookup(self, parent, name):
        err, out, _ = self.call(FUSE_LOOKUP, parent, name.encode() + b"\0")
        assert err == 0, (name, err)
        nodeid, = struct.unpack_from("<Q", out, 0)
        size, = struct.unpack_from("<Q", out, 40 + 8)
        return nodeid, size

    def open(self, nodeid):
        err, out, _ = self.call(FUSE_OPEN, nodeid, struct.pack("<II", os.O_RDONLY, 0))
        assert err == 0, err
        return struct.unpack_from("<Q", out, 0)[0]

    def read_req(self, nodeid, fh, off, size, q=1, kick=True):
        return self.fuse(FUSE_READ, nodeid, struct.pack("<QQIIQII", fh, off, size, 0, 0, 0, 0), 16 + size, q, kick)

    def close(self):
        self.s.close()


def connect(sock, timeout=10, **kw):
    """A Front on sock, once the daemon serves it: the daemon serves one
    front-end at a time and hangs up on others at once, and it may not
    have seen the previous front-end (an earlier scenario, or one just
    closed) go yet.  Retries until served or timeout seconds passed."""
    end, tries = time.time() + timeout, 0
    while True:
        tries += 1
        try:
            f = Front(sock, **kw)
            break
        except (Closed, ConnectionResetError, BrokenPipeError):
            if time.time() > end:
                raise
            time.sleep(0.02)
    if tries > 1:
        log(f"served at connection attempt {tries}")
    return f


def parse_reply(data, ln):
    assert ln >= 16, f"used length {ln}"
    length, err, _ = struct.unpack_from("<IiQ", data, 0)
    assert length == ln, f"reply header says {length} bytes, used length {ln}"
    return err, data[16:ln], ln


def walk(f, path):
    node = 1
    for part in path.split("/"):
        node, size = f.lookup(node, part)
    return node, size


# ---- scenarios

def sc_read(sock, path, host_file):
    """Reads a file through the daemon and compares it."""
    f = connect(sock)
    f.init()
    node, size = walk(f, path)
    fh = f.open(node)
    err, data, ln = f.call(FUSE_READ, node, struct.pack("<QQIIQII", fh, 0, 1 << 20, 0, 0, 0, 0), 16 + (1 << 20))
    want = open(host_file, "rb").read(1 << 20)
    assert err == 0 and data == want and ln == 16 + len(want), (err, ln)
    log(f"read {len(data)} bytes of {path}; used length {ln}")


def sc_parallel(sock, path, host_file, count="32", size="1048576", rounds="1"):
    """count READs of size bytes at once, rounds times; checks every byte
    and used length; prints the time the daemon took."""
    count, size, rounds = int(count), int(size), int(rounds)
    f = connect(sock, mem_size=max(64 << 20, BUF_BASE + count * (size + 8192) + (1 << 20)))
    f.init()
    node, fsize = walk(f, path)
    fh = f.open(node)
    host = open(host_file, "rb").read()
    ring = f.rings[1]
    best = None
    for rnd in range(rounds):
        offs = {}
        for i in range(count):
            off = (i * size * 7 + rnd * 4096) % max(1, fsize - size)
            offs[f.read_req(node, fh, off, size, kick=False)] = off
        t0 = time.time()
        ring.do_kick()
        done = ring.wait(count, timeout=120)
        dt = time.time() - t0
        best = dt if best is None else min(best, dt)
        for head, ln, data in done:
            err, payload, _ = parse_reply(data, ln)
            off = offs[head]
            assert err == 0 and payload == host[off:off + size], (head, err, ln)
    log(f"{count} reads of {size} bytes in {best:.3f}s (best of {rounds}): {count * size / best / 1e6:.0f} MB/s")
    print(f"TIME {best:.4f}")


def sc_files(sock, path, host_dir, size="1048576"):
    """Opens every file of a directory (names from host_dir) and reads up to
    size bytes of each, all reads at once; checks them and prints the time
    the daemon took.  First reads of a blob verify it: CPU work that a
    daemon serving requests in parallel can spread over cores."""
    size = int(size)
    names = sorted(os.listdir(host_dir))
    f = connect(sock, mem_size=max(64 << 20, BUF_BASE + len(names) * (size + 8192) + (1 << 20)))
    f.init()
    dnode, _ = walk(f, path)
    nodes = {n: f.lookup(dnode, n)[0] for n in names}
    ring = f.rings[1]
    t0 = time.time()
    heads = {f.fuse(FUSE_OPEN, nodes[n], struct.pack("<II", os.O_RDONLY, 0), kick=False): n for n in names}
    ring.do_kick()
    fhs = {}
    for head, ln, data in ring.wait(len(names), timeout=300):
        err, out, _ = parse_reply(data, ln)
        assert err == 0, (heads[head], err)
        fhs[heads[head]] = struct.unpack_from("<Q", out, 0)[0]
    t1 = time.time()
    heads = {f.read_req(nodes[n], fhs[n], 0, size, kick=False): n for n in names}
    ring.do_kick()
    done = ring.wait(len(names), timeout=300)
    t2 = time.time()
    for head, ln, data in done:
        err, payload, _ = parse_reply(data, ln)
        want = open(os.path.join(host_dir, heads[head]), "rb").read(size)
        assert err == 0 and payload == want, (heads[head], err, ln)
    log(f"{len(names)} files: opens (first use: blob verified) {t1 - t0:.3f}s, reads {t2 - t1:.3f}s")
    print(f"TIME {t2 - t0:.4f}")


def sc_latency(sock, big, small):
    """Head-of-line blocking: the first OPEN of a large file (its blob is
    verified: hashed in full) and, right behind it on the same ring, a
    LOOKUP of another name.  Prints when each one completed."""
    f = connect(sock)
    f.init()
    bnode, _ = walk(f, big)
    parent, name = small.rsplit("/", 1)
    pnode, _ = walk(f, parent)
    ring = f.rings[1]
    h_open = f.fuse(FUSE_OPEN, bnode, struct.pack("<II", os.O_RDONLY, 0), kick=False)
    h_look = f.fuse(FUSE_LOOKUP, pnode, name.encode() + b"\0", kick=False)
    t0 = time.time()
    ring.do_kick()
    when = {}
    while len(when) < 2:
        for head, ln, data in ring.wait(1):
            assert parse_reply(data, ln)[0] == 0
            when[head] = time.time() - t0
    log(f"OPEN of {big} answered after {when[h_open] * 1000:.1f} ms, LOOKUP queued behind it after "
        f"{when[h_look] * 1000:.1f} ms")
    print(f"TIME {when[h_open]:.4f} {when[h_look]:.4f}")


def sc_shrink(sock, path, host_file, daemon_pid):
    """The VMM shrinks guest memory under the daemon: a reply buffer in the
    lost part, then the rings themselves.  The daemon must survive, report
    the ring broken on its err fd, and serve the next connection."""
    daemon_pid = int(daemon_pid)
    f = connect(sock)
    f.init()
    node, _ = walk(f, path)
    fh = f.open(node)
    ring = f.rings[1]
    # buffers live from 4 MiB up: keep the rings and the page the next
    # request goes to, lose the page after it, where its reply goes
    os.ftruncate(f.memfd, BUF_BASE + 4096)
    f.next_buf = BUF_BASE
    f.read_req(node, fh, 0, 4096)
    (_, ln, _), = ring.wait(1)
    assert ln == 0, f"used length {ln} for a reply into vanished memory"
    log("reply buffer in vanished memory: chain returned with used length 0")
    os.kill(daemon_pid, 0)
    # now the rings are gone too: the daemon cannot even pop
    os.ftruncate(f.memfd, 0)
    ring.do_kick()
    end = time.time() + 10
    while time.time() < end:
        r, _, _ = select.select([ring.err], [], [], 0.2)
        if r:
            break
    assert r, "no error signalled on the ring's err fd"
    log("rings in vanished memory: ring reported broken on its err fd")
    os.kill(daemon_pid, 0)
    f.close()
    sc_read(sock, path, host_file)


def sc_second(sock, path, host_file):
    """A second front-end while one is served is hung up on at once; the
    first keeps working."""
    a = connect(sock)
    a.init()
    b = socket.socket(socket.AF_UNIX)
    b.connect(sock)
    b.settimeout(5)
    t0 = time.time()
    # The daemon may close the connection before our message arrives, or
    # while it is still unread: the send then fails with EPIPE or the
    # receive with ECONNRESET.  Either is the refusal; a timeout is not.
    try:
        # the daemon may hang up before the request is even sent
        b.sendall(struct.pack("<III", GET_FEATURES, 1, 0))
        got = b.recv(64)
    except (ConnectionResetError, BrokenPipeError):
        got = b""
    b.close()
    assert got == b"", "the second connection was answered"
    log(f"second connection closed after {time.time() - t0:.2f}s")
    node, _ = walk(a, path)
    fh = a.open(node)
    err, data, _ = a.call(FUSE_READ, node, struct.pack("<QQIIQII", fh, 0, 4096, 0, 0, 0, 0), 16 + 4096)
    assert err == 0 and data == open(host_file, "rb").read(4096)
    log("first connection still served")


def sc_vring_base(sock, path, host_file, count="100"):
    """GET_VRING_BASE with requests in flight: when it answers, every chain
    it counts as taken has been answered (used idx == base); the ring then
    restarts at that base (as across a guest reboot's device reset)."""
    count = int(count)
    f = connect(sock)
    f.init()
    node, _ = walk(f, path)
    fh = f.open(node)
    ring = f.rings[1]
    start = ring.avail_idx
    for i in range(count):
        f.read_req(node, fh, i * 65536, 65536, kick=False)
    ring.do_kick()
    base = f.get_vring_base(1)
    used = ring.used_idx()
    log(f"GET_VRING_BASE: base {base}, used idx {used}; {base - start} of {count} offered were taken")
    assert base == used, (base, used)
    done = ring.reap()
    assert len(done) == base - start, (len(done), base - start)
    for _, ln, data in done:
        err, _, _ = parse_reply(data, ln)
        assert err == 0 and ln == 16 + 65536
    # restart where it stopped; the rest of the chains get served
    ring.kick = os.eventfd(0, os.EFD_CLOEXEC)
    f.start_ring(ring, base)
    ring.do_kick()
    rest = ring.wait(count - (base - start))
    assert all(parse_reply(d, ln)[0] == 0 for _, ln, d in rest)
    log(f"restarted at {base}: the other {len(rest)} chains answered")
    # a new session on the same device (a guest that rebooted)
    f.init()
    walk(f, path)
    log("second INIT on the connection: new session works")


def sc_remap(sock, path, host_file, count="100"):
    """SET_MEM_TABLE (the same memory, as after a hotplug elsewhere) while
    requests are in flight: the rings stop, every chain taken is answered,
    the rings restart on the new table and serve the rest."""
    count = int(count)
    f = connect(sock)
    f.init()
    node, _ = walk(f, path)
    fh = f.open(node)
    host = open(host_file, "rb").read(count * 65536)
    ring = f.rings[1]
    offs = {}
    for i in range(count):
        offs[f.read_req(node, fh, i * 65536, 65536, kick=False)] = i * 65536
    ring.do_kick()
    f.set_mem_table()
    ring.do_kick()
    done = ring.wait(count)
    for head, ln, data in done:
        err, payload, _ = parse_reply(data, ln)
        assert err == 0 and payload == host[offs[head]:offs[head] + 65536], (head, err, ln)
    log(f"new memory table with {count} requests in flight: all answered")


def sc_sigterm(sock, path, host_file, daemon_pid, count="32"):
    """SIGTERM with requests in flight: the daemon finishes them or not,
    but exits and closes the connection promptly (the caller checks the
    exit status)."""
    count, daemon_pid = int(count), int(daemon_pid)
    f = connect(sock)
    f.init()
    node, _ = walk(f, path)
    fh = f.open(node)
    for i in range(count):
        f.read_req(node, fh, i * (1 << 20), 1 << 20, kick=False)
    f.rings[1].do_kick()
    os.kill(daemon_pid, signal.SIGTERM)
    t0 = time.time()
    try:
        while f.s.recv(64):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    log(f"connection closed {time.time() - t0:.2f}s after SIGTERM")
    assert time.time() - t0 < 10


def sc_drop(sock, path, host_file):
    """Disconnects with requests queued and in flight, and in the middle of
    a message; the daemon serves the next connection."""
    f = connect(sock)
    f.init()
    node, _ = walk(f, path)
    fh = f.open(node)
    for i in range(16):
        f.read_req(node, fh, i * (1 << 20), 1 << 20)
    f.close()
    g = connect(sock)
    g.send(SET_VRING_NUM, b"\x01\x00")  # payload shorter than the header says
    g.s.sendall(struct.pack("<III", SET_MEM_TABLE, 1, 264) + b"\0" * 20)
    g.close()
    sc_read(sock, path, host_file)


SCENARIOS = {
    "read": sc_read,
    "parallel": sc_parallel,
    "files": sc_files,
    "latency": sc_latency,
    "shrink": sc_shrink,
    "second": sc_second,
    "vring-base": sc_vring_base,
    "remap": sc_remap,
    "sigterm": sc_sigterm,
    "drop": sc_drop,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} SOCKET {{{'|'.join(SCENARIOS)}}} ARGS...")
    try:
        SCENARIOS[sys.argv[2]](sys.argv[1], *sys.argv[3:])
    except (AssertionError, TimeoutError, Closed, OSError) as e:
        log(f"{sys.argv[2]}: {type(e).__name__}: {e}")
        sys.exit(1)
