/* Unit tests for the FUSE protocol engine, driven with synthetic request
 * buffers: INIT negotiation, request validation (-EPROTO), ENOSYS and
 * EROFS answers, and the encoding of entry, attr, open, read, readdir,
 * xattr and statfs replies over a memory:// store. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/store.h"
#include "fs/fs.h"
#include "fuse/fuse_ll.h"
#include "test.h"

#define N(s) .name = (s), .name_len = sizeof(s) - 1

static struct cas_store *store;
static struct cas_digest hello;
static uint8_t scratch[(256 + 1) * 4096];
static uint8_t req[16384];
static uint64_t unique;

/* A local store, whose blobs are files (passthrough, verified reads with
 * an outboard): root "r" = { f1: "first blob", f2: "second blob", f3:
 * BIG_LEN bytes of big_byte(i) }. */
static struct cas_store *local;
static char local_dir[] = "/tmp/test-fuse_ll-XXXXXX";
#define BIG_LEN ((1u << 20) + 5000)

static uint8_t big_byte(size_t i) {
        return (uint8_t) (i * 7 + i / 4096);
}

static void make_store(void) {
        struct cas_directory *d, *top;
        enum cas_verr why;

        CHECK_OK(cas_store_open("memory://", 0, &store));
        CHECK_OK(cas_blob_put(store->blobs, "hello", 5, 0, &hello));
        struct cas_node n[] = {
                { .kind = CAS_NODE_FILE, N("a"), .digest = hello, .size = 5 },
                { .kind = CAS_NODE_FILE, N("b"), .digest = hello, .size = 5, .executable = true },
                { .kind = CAS_NODE_SYMLINK, N("c"), .target = "/x/y", .target_len = 4 },
                { .kind = CAS_NODE_FILE, N("d"), .digest = hello, .size = 5 },
        };
        CHECK_OK(cas_directory_new(n, ELEMENTSOF(n), &d, NULL));
        CHECK_OK(cas_dir_put(store->dirs, &d, 1, 0, &why));
        struct cas_node t = { .kind = CAS_NODE_DIRECTORY, N("tree"), .digest = d->digest, .size = d->size };
        CHECK_OK(cas_directory_new(&t, 1, &top, NULL));
        CHECK_OK(cas_root_put(store->roots, &t));
        cas_directory_free(d);
        cas_directory_free(top);
}

static void make_local_store(void) {
        struct cas_digest d1, d2, d3;
        enum cas_verr why;
        struct cas_directory *dd;
        uint8_t *big = malloc(BIG_LEN);

        CHECK(big);
        for (size_t i = 0; i < BIG_LEN; i++)
                big[i] = big_byte(i);
        CHECK(mkdtemp(local_dir));
        CHECK_OK(cas_store_open(local_dir, CAS_STORE_CREATE, &local));
        CHECK_OK(cas_blob_put(local->blobs, "first blob", 10, 0, &d1));
        CHECK_OK(cas_blob_put(local->blobs, "second blob", 11, 0, &d2));
        CHECK_OK(cas_blob_put(local->blobs, big, BIG_LEN, 0, &d3));
        free(big);
        struct cas_node n[] = { { .kind = CAS_NODE_FILE, N("f1"), .digest = d1, .size = 10 },
                                { .kind = CAS_NODE_FILE, N("f2"), .digest = d2, .size = 11 },
                                { .kind = CAS_NODE_FILE, N("f3"), .digest = d3, .size = BIG_LEN } };
        CHECK_OK(cas_directory_new(n, ELEMENTSOF(n), &dd, NULL));
        CHECK_OK(cas_dir_put(local->dirs, &dd, 1, 0, &why));
        struct cas_node r = { .kind = CAS_NODE_DIRECTORY, N("r"), .digest = dd->digest, .size = dd->size };
        CHECK_OK(cas_root_put(local->roots, &r));
        cas_directory_free(dd);
}

static void remove_local_store(void) {
        char cmd[300];

        cas_store_free(local);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", local_dir);
        CHECK_EQ(system(cmd), 0);
}

/* Builds a request; returns its length. */
static size_t build(uint32_t opcode, uint64_t nodeid, const void *a, size_t alen, const void *b, size_t blen) {
        struct fuse_in_header h = {
                .len = sizeof(h) + alen + blen,
                .opcode = opcode,
                .unique = ++unique,
                .nodeid = nodeid,
        };
        CHECK(h.len <= sizeof(req));
        memcpy(req, &h, sizeof(h));
        if (alen)
                memcpy(req + sizeof(h), a, alen);
        if (blen)
                memcpy(req + sizeof(h) + alen, b, blen);
        return h.len;
}

static int handle(struct fuse_ll *ll, size_t len, struct fuse_ll_reply *rep) {
        int r = fuse_ll_handle(ll, req, len, scratch, sizeof(scratch), rep);
        if (!rep->none) {
                CHECK_EQ(rep->hdr.unique, unique);
                CHECK_EQ(rep->hdr.len, sizeof(struct fuse_out_header) + rep->payload_len);
        }
        return r;
}

/* Sends a request that must succeed; returns the payload length. */
static size_t call_ok(struct fuse_ll *ll, uint32_t opcode, uint64_t nodeid, const void *a, size_t alen, const void *b,
                      size_t blen, struct fuse_ll_reply *rep) {
        CHECK_OK(handle(ll, build(opcode, nodeid, a, alen, b, blen), rep));
        CHECK(!rep->none);
        if (rep->hdr.error != 0)
                fprintf(stderr, "opcode %u: error %d\n", opcode, rep->hdr.error);
        CHECK_EQ(rep->hdr.error, 0);
        return rep->payload_len;
}

static int call_err(struct fuse_ll *ll, uint32_t opcode, uint64_t nodeid, const void *a, size_t alen) {
        struct fuse_ll_reply rep;
        CHECK_OK(handle(ll, build(opcode, nodeid, a, alen, NULL, 0), &rep));
        CHECK(!rep.none);
        CHECK_EQ(rep.payload_len, 0);
        return rep.hdr.error;
}

static struct fuse_ll_init_out init_with(struct fuse_ll *ll, uint32_t major, uint32_t minor, uint64_t flags,
                                         size_t *ret_len) {
        struct fuse_init_in in = {
                .major = major,
                .minor = minor,
                .max_readahead = 131072,
                .flags = (uint32_t) flags,
                .flags2 = (uint32_t) (flags >> 32),
        };
        struct fuse_ll_reply rep;
        struct fuse_ll_init_out out = {};
        size_t n = call_ok(ll, FUSE_INIT, 0, &in, sizeof(in), NULL, 0, &rep);
        CHECK(n <= sizeof(out));
        memcpy(&out, rep.payload, n);
        fuse_ll_reply_done(ll, &rep); /* delivered: the session is complete */
        if (ret_len)
                *ret_len = n;
        return out;
}

#define KERNEL_FLAGS                                                                                           \
        (FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT | FUSE_BIG_WRITES |  \
         FUSE_DONT_MASK | FUSE_SPLICE_WRITE | FUSE_SPLICE_MOVE | FUSE_SPLICE_READ | FUSE_FLOCK_LOCKS |        \
         FUSE_HAS_IOCTL_DIR | FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |            \
         FUSE_ASYNC_DIO | FUSE_WRITEBACK_CACHE | FUSE_NO_OPEN_SUPPORT | FUSE_PARALLEL_DIROPS |                \
         FUSE_HANDLE_KILLPRIV | FUSE_POSIX_ACL | FUSE_ABORT_ERROR | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS |    \
         FUSE_NO_OPENDIR_SUPPORT | FUSE_EXPLICIT_INVAL_DATA | FUSE_INIT_EXT | FUSE_SECURITY_CTX |             \
         FUSE_PASSTHROUGH | FUSE_HAS_RESEND)

/* A transport's passthrough: ids count up from 7; probe_result is what
 * the trial registration gives, refuse what later ones give. */
static int fake_attempts, fake_opens, fake_closes, fake_probes, fake_probe_result, fake_refuse, fake_next_id;
static int fake_backing_open(void *ctx, int fd) {
        CHECK(fd >= 0);
        fake_attempts++;
        if (fake_refuse < 0)
                return fake_refuse;
        fake_opens++;
        return 7 + fake_next_id++;
}
static int fake_backing_close(void *ctx, int id) {
        CHECK(id >= 7);
        fake_closes++;
        return 0;
}
static int fake_backing_probe(void *ctx) {
        fake_probes++;
        return fake_probe_result;
}
static void fake_reset(void) {
        fake_attempts = fake_opens = fake_closes = fake_probes = fake_probe_result = fake_refuse = fake_next_id = 0;
}
static const struct fuse_ll_backing_ops fake_backing = { .open = fake_backing_open, .close = fake_backing_close };
static const struct fuse_ll_backing_ops fake_backing_probed = {
        .open = fake_backing_open, .close = fake_backing_close, .probe = fake_backing_probe
};

struct env {
        struct fs *fs;
        struct fuse_ll *ll;
};

/* Like /dev/fuse: a mount the kernel keeps read-only, nothing else. */
static const struct fuse_ll_caps plain = { .name = "test", .readonly_mount = true };

static struct env env_new_on(struct cas_store *st, bool list_root, const struct fuse_ll_caps *t, bool passthrough) {
        static struct fs_root_provider p;
        p = (struct fs_root_provider){ &fs_root_service_ops, st->roots };
        /* passthrough tests hand over blob files without fs-verity (--passthrough=on) */
        struct fs_config cfg = { .list_root = list_root, .roots = &p, .n_roots = 1, .passthrough_unverified = passthrough };
        struct fuse_ll_config lcfg = { .passthrough = passthrough };
        struct env e;
        CHECK_OK(fs_new(st->blobs, st->dirs, &cfg, &e.fs));
        CHECK_OK(fuse_ll_new(e.fs, t ? t : &plain, &lcfg, &e.ll));
        CHECK(fuse_ll_request_size(e.ll) >= 8192);
        CHECK(fuse_ll_scratch_size(e.ll) <= sizeof(scratch));
        return e;
}

static struct env env_new(bool list_root, const struct fuse_ll_caps *t, bool passthrough) {
        return env_new_on(store, list_root, t, passthrough);
}

static void env_free(struct env *e) {
        fuse_ll_free(e->ll);
        fs_free(e->fs);
}

static struct env env_init(bool list_root) {
        struct env e = env_new(list_root, NULL, false);
        init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
        return e;
}

static void test_init(void) {
        struct fuse_ll_caps t = { .name = "test", .readonly_mount = true, .backing = &fake_backing };
        size_t len;

        /* everything offered, passthrough allowed */
        struct env e = env_new(false, &t, true);
        struct fuse_ll_init_out o = init_with(e.ll, 7, 45, KERNEL_FLAGS, &len);
        uint64_t got = o.flags | (uint64_t) o.flags2 << 32;
        CHECK_EQ(len, 64);
        CHECK_EQ(o.major, 7);
        CHECK_EQ(o.minor, 45);
        CHECK_EQ(o.max_readahead, 131072);
        uint64_t want = FUSE_ASYNC_READ | FUSE_PARALLEL_DIROPS | FUSE_DO_READDIRPLUS |
                        FUSE_CACHE_SYMLINKS | FUSE_MAX_PAGES | FUSE_EXPLICIT_INVAL_DATA | FUSE_ASYNC_DIO |
                        FUSE_INIT_EXT | FUSE_PASSTHROUGH;
        CHECK_EQ(got, want);
        /* READ data is always in the reply: splice is never asked for */
        CHECK(!(got & (FUSE_SPLICE_WRITE | FUSE_SPLICE_MOVE | FUSE_SPLICE_READ)));
        CHECK(!(got & (FUSE_WRITEBACK_CACHE | FUSE_POSIX_LOCKS | FUSE_AUTO_INVAL_DATA | FUSE_NO_OPEN_SUPPORT)));
        /* every READDIR carries attributes: a walk needs no LOOKUP per entry */
        CHECK(!(got & FUSE_READDIRPLUS_AUTO));
        CHECK_EQ(o.max_pages, 256);
        CHECK_EQ(o.max_stack_depth, 1);
        CHECK_EQ(o.time_gran, 1);
        CHECK(o.max_write >= 4096);
        CHECK(fuse_ll_passthrough(e.ll));
        CHECK_EQ(fuse_ll_max_read(e.ll), 1 << 20);
        env_free(&e);

        /* passthrough off by configuration */
        e = env_new(false, &t, false);
        o = init_with(e.ll, 7, 45, KERNEL_FLAGS, &len);
        got = o.flags | (uint64_t) o.flags2 << 32;
        CHECK(!(got & FUSE_PASSTHROUGH));
        CHECK_EQ(o.max_stack_depth, 0);
        CHECK(!fuse_ll_passthrough(e.ll));
        env_free(&e);

        /* a newer kernel: we answer with our minor */
        e = env_new(false, &t, true);
        o = init_with(e.ll, 7, 99, KERNEL_FLAGS, &len);
        CHECK_EQ(o.minor, FUSE_LL_MINOR);
        CHECK(fuse_ll_passthrough(e.ll));
        env_free(&e);

        /* a 7.38 kernel: no passthrough, no flags2 bits it did not offer */
        e = env_new(false, &t, true);
        o = init_with(e.ll, 7, 38, KERNEL_FLAGS & ~FUSE_PASSTHROUGH, &len);
        CHECK_EQ(o.minor, 38);
        CHECK_EQ(o.flags2, 0);
        CHECK(!fuse_ll_passthrough(e.ll));
        env_free(&e);

        /* without FUSE_INIT_EXT flags2 is neither read nor answered */
        e = env_new(false, &t, true);
        o = init_with(e.ll, 7, 45, KERNEL_FLAGS & ~(uint64_t) FUSE_INIT_EXT, &len);
        CHECK_EQ(o.flags2, 0);
        CHECK(!(o.flags & FUSE_INIT_EXT));
        CHECK(!fuse_ll_passthrough(e.ll));
        env_free(&e);

        /* an old kernel gets the short reply of its version, and no max_pages */
        e = env_new(false, &t, false);
        o = init_with(e.ll, 7, 22, FUSE_ASYNC_READ | FUSE_BIG_WRITES, &len);
        CHECK_EQ(len, 24);
        CHECK_EQ(o.minor, 22);
        CHECK_EQ(o.flags, FUSE_ASYNC_READ);
        CHECK_EQ(fuse_ll_max_read(e.ll), 32 * 4096);
        env_free(&e);

        /* a newer major version: answer 7 and wait for another INIT */
        e = env_new(false, &t, false);
        o = init_with(e.ll, 8, 0, 0, &len);
        CHECK_EQ(o.major, 7);
        CHECK_EQ(call_err(e.ll, FUSE_GETATTR, 1, (struct fuse_getattr_in[]){ {} }, 16), -EIO);
        o = init_with(e.ll, 7, 45, KERNEL_FLAGS, &len);
        CHECK_EQ(o.minor, 45);
        env_free(&e);

        /* too old */
        e = env_new(false, &t, false);
        struct fuse_init_in in = { .major = 7, .minor = 8 };
        struct fuse_ll_reply rep;
        CHECK_EQ(handle(e.ll, build(FUSE_INIT, 0, &in, sizeof(in), NULL, 0), &rep), -EPROTO);
        CHECK(rep.hdr.error < 0);
        in.major = 6;
        in.minor = 45;
        CHECK_EQ(handle(e.ll, build(FUSE_INIT, 0, &in, sizeof(in), NULL, 0), &rep), -EPROTO);
        /* a truncated INIT */
        CHECK_EQ(handle(e.ll, build(FUSE_INIT, 0, &in, 8, NULL, 0), &rep), -EPROTO);
        env_free(&e);
}

static void test_before_init(void) {
        struct env e = env_new(false, NULL, false);
        struct fuse_ll_reply rep;
        struct fuse_forget_in f = { 1 };

        CHECK_EQ(call_err(e.ll, FUSE_LOOKUP, 1, "tree", 5), -EIO);
        CHECK_OK(handle(e.ll, build(FUSE_FORGET, 5, &f, sizeof(f), NULL, 0), &rep));
        CHECK(rep.none);
        env_free(&e);
}

static void test_malformed(void) {
        struct env e = env_init(false);
        struct fuse_ll_reply rep;
        size_t len;

        /* shorter than a header */
        CHECK_EQ(fuse_ll_handle(e.ll, req, 39, scratch, sizeof(scratch), &rep), -EPROTO);
        CHECK(rep.none);
        CHECK_EQ(fuse_ll_handle(e.ll, req, 0, scratch, sizeof(scratch), &rep), -EPROTO);
        /* header length disagrees with the bytes received */
        len = build(FUSE_LOOKUP, 1, "tree", 5, NULL, 0);
        CHECK_EQ(fuse_ll_handle(e.ll, req, len - 1, scratch, sizeof(scratch), &rep), -EPROTO);
        CHECK(!rep.none);
        CHECK_EQ(rep.hdr.error, -EIO);
        CHECK_EQ(rep.hdr.unique, unique);
        ((struct fuse_in_header *) req)->len = len + 1;
        CHECK_EQ(fuse_ll_handle(e.ll, req, len, scratch, sizeof(scratch), &rep), -EPROTO);
        ((struct fuse_in_header *) req)->len = 0xffffffff;
        CHECK_EQ(fuse_ll_handle(e.ll, req, len, scratch, sizeof(scratch), &rep), -EPROTO);
        /* names without their NUL, or empty bodies */
        CHECK_EQ(handle(e.ll, build(FUSE_LOOKUP, 1, "tree", 4, NULL, 0), &rep), -EPROTO);
        CHECK_EQ(rep.hdr.error, -EIO);
        CHECK_EQ(handle(e.ll, build(FUSE_LOOKUP, 1, NULL, 0, NULL, 0), &rep), -EPROTO);
        struct fuse_getxattr_in gx = { .size = 100 };
        CHECK_EQ(handle(e.ll, build(FUSE_GETXATTR, 1, &gx, sizeof(gx), "user.x", 6), &rep), -EPROTO);
        CHECK_EQ(handle(e.ll, build(FUSE_GETXATTR, 1, &gx, sizeof(gx), NULL, 0), &rep), -EPROTO);
        /* bodies shorter than the opcode's arguments */
        struct fuse_read_in rd = {};
        CHECK_EQ(handle(e.ll, build(FUSE_READ, 2, &rd, sizeof(rd) - 1, NULL, 0), &rep), -EPROTO);
        CHECK_EQ(handle(e.ll, build(FUSE_GETATTR, 1, &rd, 8, NULL, 0), &rep), -EPROTO);
        CHECK_EQ(handle(e.ll, build(FUSE_OPEN, 2, &rd, 4, NULL, 0), &rep), -EPROTO);
        CHECK_EQ(handle(e.ll, build(FUSE_READDIR, 1, &rd, 39, NULL, 0), &rep), -EPROTO);
        CHECK_EQ(handle(e.ll, build(FUSE_RELEASE, 1, &rd, 16, NULL, 0), &rep), -EPROTO);
        CHECK_EQ(handle(e.ll, build(FUSE_ACCESS, 1, &rd, 4, NULL, 0), &rep), -EPROTO);
        CHECK_EQ(handle(e.ll, build(FUSE_FORGET, 5, &rd, 4, NULL, 0), &rep), -EPROTO);
        CHECK(rep.none); /* FORGET never gets a reply, even when malformed */
        /* extensions longer than the body */
        len = build(FUSE_LOOKUP, 1, "tree", 5, NULL, 0);
        ((struct fuse_in_header *) req)->total_extlen = 1;
        CHECK_EQ(handle(e.ll, len, &rep), -EPROTO);
        /* a BATCH_FORGET announcing more entries than it carries */
        struct {
                struct fuse_batch_forget_in in;
                struct fuse_forget_one one;
        } bf = { { .count = 2 }, { 99, 1 } };
        CHECK_EQ(handle(e.ll, build(FUSE_BATCH_FORGET, 0, &bf, sizeof(bf), NULL, 0), &rep), -EPROTO);
        CHECK(rep.none);
        /* still serving afterwards */
        struct fuse_entry_out eo;
        call_ok(e.ll, FUSE_LOOKUP, 1, "tree", 5, NULL, 0, &rep);
        memcpy(&eo, rep.payload, sizeof(eo));
        CHECK(eo.nodeid > 1);
        env_free(&e);
}

static void test_enosys_erofs(void) {
        struct env e = env_init(false);
        static const uint32_t erofs[] = { FUSE_SETATTR, FUSE_SYMLINK, FUSE_MKNOD, FUSE_MKDIR, FUSE_UNLINK,
                                          FUSE_RMDIR, FUSE_RENAME, FUSE_LINK, FUSE_WRITE, FUSE_SETXATTR,
                                          FUSE_REMOVEXATTR, FUSE_CREATE, FUSE_FALLOCATE, FUSE_RENAME2,
                                          FUSE_COPY_FILE_RANGE, FUSE_TMPFILE };
        static const uint32_t enosys[] = { 0, 7, 19, FUSE_FSYNC, FUSE_FLUSH, FUSE_GETLK, FUSE_SETLK, FUSE_BMAP,
                                           FUSE_POLL, FUSE_LSEEK, FUSE_STATX, FUSE_SYNCFS, 55, 999,
                                           4096, 0xffffffff };
        uint8_t body[128] = {};

        for (size_t i = 0; i < ELEMENTSOF(erofs); i++)
                CHECK_EQ(call_err(e.ll, erofs[i], 1, body, sizeof(body)), -EROFS);
        for (size_t i = 0; i < ELEMENTSOF(enosys); i++)
                CHECK_EQ(call_err(e.ll, enosys[i], 1, body, sizeof(body)), -ENOSYS);
        /* sent again on every ioctl whatever the answer: the errno isatty() wants */
        CHECK_EQ(call_err(e.ll, FUSE_IOCTL, 1, body, sizeof(body)), -ENOTTY);
        /* opening a file for writing */
        struct fuse_ll_reply rep;
        struct fuse_entry_out eo;
        call_ok(e.ll, FUSE_LOOKUP, 1, "tree", 5, NULL, 0, &rep);
        memcpy(&eo, rep.payload, sizeof(eo));
        call_ok(e.ll, FUSE_LOOKUP, eo.nodeid, "a", 2, NULL, 0, &rep);
        memcpy(&eo, rep.payload, sizeof(eo));
        struct fuse_open_in oi = { .flags = O_RDWR };
        CHECK_EQ(call_err(e.ll, FUSE_OPEN, eo.nodeid, &oi, sizeof(oi)), -EROFS);
        struct fuse_access_in ai = { .mask = W_OK };
        CHECK_EQ(call_err(e.ll, FUSE_ACCESS, eo.nodeid, &ai, sizeof(ai)), -EROFS);
        env_free(&e);
}

static uint64_t lookup(struct env *e, uint64_t parent, const char *name, struct fuse_entry_out *eo) {
        struct fuse_ll_reply rep;
        CHECK_EQ(call_ok(e->ll, FUSE_LOOKUP, parent, name, strlen(name) + 1, NULL, 0, &rep), sizeof(*eo));
        memcpy(eo, rep.payload, sizeof(*eo));
        return eo->nodeid;
}

static void test_lookup_getattr(void) {
        struct env e = env_init(false);
        struct fuse_entry_out eo;
        struct fuse_attr_out ao;
        struct fuse_ll_reply rep;
        uint64_t tree = lookup(&e, 1, "tree", &eo);

        CHECK_EQ(eo.attr.ino, tree);
        CHECK_EQ(eo.attr.mode, S_IFDIR | 0555);
        CHECK_EQ(eo.attr.size, 4);
        CHECK_EQ(eo.entry_valid, 1); /* root names: short */
        CHECK(eo.attr_valid > 3600);
        CHECK_EQ(call_err(e.ll, FUSE_LOOKUP, 1, "tre", 4), -ENOENT);
        uint64_t a = lookup(&e, tree, "a", &eo);
        CHECK_EQ(eo.attr.mode, S_IFREG | 0444);
        CHECK_EQ(eo.attr.size, 5);
        CHECK_EQ(eo.attr.blksize, 4096);
        CHECK_EQ(eo.attr.mtime, 1);
        CHECK(eo.entry_valid > 3600);
        CHECK_EQ(lookup(&e, tree, "d", &eo), a);
        CHECK(lookup(&e, tree, "b", &eo) != a);
        CHECK_EQ(eo.attr.mode, S_IFREG | 0555);
        /* negative entry below the root: nodeid 0, cacheable */
        CHECK_EQ(lookup(&e, tree, "zz", &eo), 0);
        CHECK(eo.entry_valid > 3600);

        struct fuse_getattr_in gi = {};
        CHECK_EQ(call_ok(e.ll, FUSE_GETATTR, a, &gi, sizeof(gi), NULL, 0, &rep), sizeof(ao));
        memcpy(&ao, rep.payload, sizeof(ao));
        CHECK_EQ(ao.attr.ino, a);
        CHECK_EQ(ao.attr.size, 5);
        CHECK_EQ(call_ok(e.ll, FUSE_GETATTR, 1, &gi, sizeof(gi), NULL, 0, &rep), sizeof(ao));
        memcpy(&ao, rep.payload, sizeof(ao));
        CHECK_EQ(ao.attr.ino, 1);
        CHECK_EQ(ao.attr_valid, 1);
        CHECK_EQ(call_err(e.ll, FUSE_GETATTR, 123456, &gi, sizeof(gi)), -ESTALE);

        /* readlink */
        uint64_t c = lookup(&e, tree, "c", &eo);
        CHECK_EQ(eo.attr.mode, S_IFLNK | 0444);
        CHECK_EQ(call_ok(e.ll, FUSE_READLINK, c, NULL, 0, NULL, 0, &rep), 4);
        CHECK(memcmp(rep.payload, "/x/y", 4) == 0);
        CHECK_EQ(call_err(e.ll, FUSE_READLINK, a, NULL, 0), -EINVAL);

        /* forget: no reply; the inode goes once every lookup is forgotten */
        struct fuse_forget_in fi = { 2 };
        CHECK_OK(handle(e.ll, build(FUSE_FORGET, a, &fi, sizeof(fi), NULL, 0), &rep));
        CHECK(rep.none);
        CHECK_EQ(call_err(e.ll, FUSE_GETATTR, a, &gi, sizeof(gi)), -ESTALE);
        struct {
                struct fuse_batch_forget_in in;
                struct fuse_forget_one one[2];
        } bf = { { .count = 2 }, { { c, 1 }, { tree, 1 } } };
        CHECK_OK(handle(e.ll, build(FUSE_BATCH_FORGET, 0, &bf, sizeof(bf), NULL, 0), &rep));
        CHECK(rep.none);
        CHECK_EQ(call_err(e.ll, FUSE_READLINK, c, NULL, 0), -ESTALE);
        struct fs_stats st;
        fs_get_stats(e.fs, &st);
        CHECK_EQ(st.inodes, 2); /* root and b */

        struct fuse_interrupt_in ii = { unique };
        CHECK_OK(handle(e.ll, build(FUSE_INTERRUPT, 0, &ii, sizeof(ii), NULL, 0), &rep));
        CHECK(rep.none);
        env_free(&e);
}

static void test_open_read(void) {
        /* a kernel that always sends OPEN */
        struct env e = env_new(false, NULL, false);
        init_with(e.ll, 7, 45, KERNEL_FLAGS & ~(uint64_t) FUSE_NO_OPEN_SUPPORT, NULL);
        struct fuse_entry_out eo;
        struct fuse_ll_reply rep;
        struct fuse_ll_open_out oo;
        uint64_t tree = lookup(&e, 1, "tree", &eo);
        uint64_t a = lookup(&e, tree, "a", &eo);
        struct fuse_open_in oi = { .flags = O_RDONLY };

        CHECK_EQ(call_ok(e.ll, FUSE_OPEN, a, &oi, sizeof(oi), NULL, 0, &rep), sizeof(oo));
        memcpy(&oo, rep.payload, sizeof(oo));
        CHECK(oo.open_flags & FOPEN_KEEP_CACHE);
        CHECK(!(oo.open_flags & (FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO)));
        CHECK(oo.open_flags & FOPEN_NOFLUSH);
        struct fuse_read_in ri = { .fh = oo.fh, .offset = 1, .size = 100 };
        CHECK_EQ(call_ok(e.ll, FUSE_READ, a, &ri, sizeof(ri), NULL, 0, &rep), 4);
        CHECK(memcmp(rep.payload, "ello", 4) == 0);
        ri.offset = 5;
        CHECK_EQ(call_ok(e.ll, FUSE_READ, a, &ri, sizeof(ri), NULL, 0, &rep), 0);
        ri.fh = oo.fh + 1;
        CHECK_EQ(call_err(e.ll, FUSE_READ, a, &ri, sizeof(ri)), -EBADF);
        /* this kernel was never told it may read without opening */
        ri.fh = 0;
        CHECK_EQ(call_err(e.ll, FUSE_READ, a, &ri, sizeof(ri)), -EBADF);
        struct fuse_release_in rl = { .fh = oo.fh };
        call_ok(e.ll, FUSE_RELEASE, a, &rl, sizeof(rl), NULL, 0, &rep);
        ri.fh = oo.fh;
        CHECK_EQ(call_err(e.ll, FUSE_READ, a, &ri, sizeof(ri)), -EBADF);
        CHECK_EQ(call_err(e.ll, FUSE_OPEN, tree, &oi, sizeof(oi)), -EISDIR);

        /* statfs */
        struct fuse_statfs_out so;
        CHECK_EQ(call_ok(e.ll, FUSE_STATFS, 1, NULL, 0, NULL, 0, &rep), sizeof(so));
        memcpy(&so, rep.payload, sizeof(so));
        CHECK_EQ(so.st.namelen, 255);
        CHECK_EQ(so.st.bsize, 4096);
        env_free(&e);

        /* zero-message open: OPEN gets ENOSYS, READ works with fh 0 */
        e = env_init(false);
        tree = lookup(&e, 1, "tree", &eo);
        a = lookup(&e, tree, "a", &eo);
        CHECK_EQ(call_err(e.ll, FUSE_OPEN, a, &oi, sizeof(oi)), -ENOSYS);
        ri = (struct fuse_read_in){ .fh = 0, .offset = 0, .size = 4096 };
        CHECK_EQ(call_ok(e.ll, FUSE_READ, a, &ri, sizeof(ri), NULL, 0, &rep), 5);
        CHECK(memcmp(rep.payload, "hello", 5) == 0);
        env_free(&e);

        /* with passthrough enabled OPEN is answered (the backing id comes with it) */
        struct fuse_ll_caps t = { .name = "test", .readonly_mount = true, .backing = &fake_backing };
        e = env_new(false, &t, true);
        init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
        tree = lookup(&e, 1, "tree", &eo);
        a = lookup(&e, tree, "a", &eo);
        CHECK_EQ(call_ok(e.ll, FUSE_OPEN, a, &oi, sizeof(oi), NULL, 0, &rep), sizeof(oo));
        memcpy(&oo, rep.payload, sizeof(oo));
        CHECK(!(oo.open_flags & FOPEN_PASSTHROUGH)); /* a memory blob has no file to pass through */
        env_free(&e);
}

/* READ data comes back in the reply itself, verified and copied into
 * scratch, at most the negotiated size: nothing stays in use once
 * fuse_ll_handle() returns, whether or not the transport calls
 * fuse_ll_reply_done() (zero-message opens, fh 0, room for one idle
 * reader). */
static void test_read_copies(void) {
        for (int mode = 0; mode < 2; mode++) {
                struct fs_root_provider p = { &fs_root_service_ops, local->roots };
                struct fs_config cfg = { .roots = &p, .n_roots = 1, .idle_readers = 1 };
                struct fuse_ll_caps t = { .name = "test", .readonly_mount = true, .calls_reply_done = mode == 1 };
                struct env e;
                struct fuse_entry_out eo;
                struct fuse_ll_reply r1, r2;
                struct fs_stats st;
                size_t n;

                CHECK_OK(fs_new(local->blobs, local->dirs, &cfg, &e.fs));
                CHECK_OK(fuse_ll_new(e.fs, &t, NULL, &e.ll));
                init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
                uint64_t rr = lookup(&e, 1, "r", &eo);
                uint64_t f1 = lookup(&e, rr, "f1", &eo), f2 = lookup(&e, rr, "f2", &eo);
                uint64_t f3 = lookup(&e, rr, "f3", &eo);
                struct fuse_read_in ri = { .fh = 0, .size = 4096 };
                CHECK_EQ(call_ok(e.ll, FUSE_READ, f1, &ri, sizeof(ri), NULL, 0, &r1), 10);
                CHECK(r1.payload == scratch);
                CHECK(memcmp(r1.payload, "first blob", 10) == 0);
                fs_get_stats(e.fs, &st);
                CHECK_EQ(st.open_files, 1); /* f1's reader, idle already */
                /* f2's reader goes idle and pushes f1's out, although the
                 * transport has not said it is done with r1 */
                CHECK_EQ(call_ok(e.ll, FUSE_READ, f2, &ri, sizeof(ri), NULL, 0, &r2), 11);
                CHECK(memcmp(r2.payload, "second blob", 11) == 0);
                fs_get_stats(e.fs, &st);
                CHECK_EQ(st.open_files, 1);
                if (mode == 1) {
                        fuse_ll_reply_done(e.ll, &r1);
                        fuse_ll_reply_done(e.ll, &r2);
                        fuse_ll_reply_done(e.ll, &r1);
                }

                /* a read larger than negotiated gets 1 MiB, the rest after it */
                ri.size = 4u << 20;
                n = call_ok(e.ll, FUSE_READ, f3, &ri, sizeof(ri), NULL, 0, &r1);
                CHECK_EQ(n, 1u << 20);
                CHECK_EQ(n, fuse_ll_max_read(e.ll));
                for (size_t i = 0; i < n; i++)
                        if (((const uint8_t *) r1.payload)[i] != big_byte(i))
                                CHECK(!"READ data differs");
                if (mode == 1)
                        fuse_ll_reply_done(e.ll, &r1);
                ri.offset = 1u << 20;
                n = call_ok(e.ll, FUSE_READ, f3, &ri, sizeof(ri), NULL, 0, &r1);
                CHECK_EQ(n, 5000);
                for (size_t i = 0; i < n; i++)
                        if (((const uint8_t *) r1.payload)[i] != big_byte((1u << 20) + i))
                                CHECK(!"READ data differs");
                if (mode == 1)
                        fuse_ll_reply_done(e.ll, &r1);
                ri.offset = BIG_LEN;
                CHECK_EQ(call_ok(e.ll, FUSE_READ, f3, &ri, sizeof(ri), NULL, 0, &r1), 0);
                fs_get_stats(e.fs, &st);
                CHECK_EQ(st.open_files, 1);

                /* an error reply carries nothing */
                ri.fh = 12345;
                ri.offset = 0;
                CHECK_EQ(call_err(e.ll, FUSE_READ, f1, &ri, sizeof(ri)), -EBADF);
                fuse_ll_free(e.ll);
                fs_free(e.fs);
        }
}

/* Walks the entries of a READDIR(PLUS) reply; returns the count and the
 * last offset, appending names to out. */
static size_t parse_dir(const uint8_t *p, size_t len, bool plus, char *out, uint64_t *ret_off, uint64_t *inos) {
        size_t n = 0, pos = 0;
        while (pos < len) {
                struct fuse_dirent d;
                size_t head = plus ? sizeof(struct fuse_entry_out) : 0;
                CHECK(pos + head + sizeof(d) <= len);
                memcpy(&d, p + pos + head, sizeof(d));
                if (plus) {
                        struct fuse_entry_out eo;
                        memcpy(&eo, p + pos, sizeof(eo));
                        CHECK_EQ(eo.nodeid, d.ino);
                        CHECK_EQ(eo.attr.ino, d.ino);
                        CHECK_EQ(eo.attr.mode >> 12, d.type);
                }
                strncat(out, (const char *) p + pos + head + sizeof(d), d.namelen);
                strcat(out, "/");
                if (inos)
                        inos[n] = d.ino;
                *ret_off = d.off;
                pos += FUSE_DIRENT_ALIGN(head + sizeof(d) + d.namelen);
                n++;
        }
        CHECK_EQ(pos, len);
        return n;
}

static void test_readdir(void) {
        /* a kernel without zero-message opendir: OPENDIR is answered */
        struct env e = env_new(false, NULL, false);
        init_with(e.ll, 7, 45, KERNEL_FLAGS & ~(uint64_t) FUSE_NO_OPENDIR_SUPPORT, NULL);
        struct fuse_entry_out eo;
        struct fuse_ll_reply rep;
        struct fuse_ll_open_out oo;
        uint64_t tree = lookup(&e, 1, "tree", &eo);
        struct fuse_open_in oi = { .flags = O_RDONLY | O_DIRECTORY };
        char names[256];
        uint64_t off = 0, inos[8];

        CHECK_EQ(call_err(e.ll, FUSE_OPENDIR, 1, &oi, sizeof(oi)), -EPERM);
        call_ok(e.ll, FUSE_OPENDIR, tree, &oi, sizeof(oi), NULL, 0, &rep);
        memcpy(&oo, rep.payload, sizeof(oo));
        CHECK(oo.open_flags & FOPEN_CACHE_DIR);
        CHECK(oo.open_flags & FOPEN_KEEP_CACHE);

        struct fuse_read_in ri = { .fh = oo.fh, .size = 4096 };
        names[0] = 0;
        size_t n = call_ok(e.ll, FUSE_READDIR, tree, &ri, sizeof(ri), NULL, 0, &rep);
        CHECK_EQ(parse_dir(rep.payload, n, false, names, &off, inos), 4);
        CHECK_STREQ(names, "a/b/c/d/");
        CHECK_EQ(off, 4);
        CHECK_EQ(inos[0], inos[3]);
        /* a buffer for 3 entries (32 bytes each), then resume */
        names[0] = 0;
        ri.size = 3 * 32 + 31;
        n = call_ok(e.ll, FUSE_READDIR, tree, &ri, sizeof(ri), NULL, 0, &rep);
        CHECK_EQ(parse_dir(rep.payload, n, false, names, &off, NULL), 3);
        ri.offset = off;
        n = call_ok(e.ll, FUSE_READDIR, tree, &ri, sizeof(ri), NULL, 0, &rep);
        CHECK_EQ(parse_dir(rep.payload, n, false, names, &off, NULL), 1);
        CHECK_STREQ(names, "a/b/c/d/");
        ri.offset = off;
        CHECK_EQ(call_ok(e.ll, FUSE_READDIR, tree, &ri, sizeof(ri), NULL, 0, &rep), 0);
        /* a buffer too small for any entry */
        ri.offset = 0;
        ri.size = 10;
        CHECK_EQ(call_ok(e.ll, FUSE_READDIR, tree, &ri, sizeof(ri), NULL, 0, &rep), 0);

        /* readdirplus: two entries per call, references counted */
        struct fs_stats st0, st1;
        fs_get_stats(e.fs, &st0);
        names[0] = 0;
        ri.offset = 0;
        ri.size = 2 * 160;
        n = call_ok(e.ll, FUSE_READDIRPLUS, tree, &ri, sizeof(ri), NULL, 0, &rep);
        CHECK_EQ(parse_dir(rep.payload, n, true, names, &off, NULL), 2);
        ri.offset = off;
        n = call_ok(e.ll, FUSE_READDIRPLUS, tree, &ri, sizeof(ri), NULL, 0, &rep);
        CHECK_EQ(parse_dir(rep.payload, n, true, names, &off, NULL), 2);
        CHECK_STREQ(names, "a/b/c/d/");
        fs_get_stats(e.fs, &st1);
        CHECK_EQ(st1.inodes, st0.inodes + 3); /* a = d */
        struct fuse_release_in rl = { .fh = oo.fh };
        call_ok(e.ll, FUSE_RELEASEDIR, tree, &rl, sizeof(rl), NULL, 0, &rep);
        env_free(&e);

        /* zero-message opendir: OPENDIR gets ENOSYS (the kernel then opens
         * directories itself, cached), READDIR works without a handle */
        e = env_init(false);
        tree = lookup(&e, 1, "tree", &eo);
        CHECK_EQ(call_err(e.ll, FUSE_OPENDIR, tree, &oi, sizeof(oi)), -ENOSYS);
        CHECK_EQ(call_err(e.ll, FUSE_OPENDIR, 1, &oi, sizeof(oi)), -ENOSYS);
        ri = (struct fuse_read_in){ .fh = 0, .size = 4096 };
        names[0] = 0;
        n = call_ok(e.ll, FUSE_READDIRPLUS, tree, &ri, sizeof(ri), NULL, 0, &rep);
        CHECK_EQ(parse_dir(rep.payload, n, true, names, &off, NULL), 4);
        CHECK_STREQ(names, "a/b/c/d/");
        CHECK_EQ(call_err(e.ll, FUSE_READDIR, 1, &ri, sizeof(ri)), -EPERM);
        env_free(&e);

        /* the root with --list-root: OPENDIR is needed for its snapshot */
        e = env_init(true);
        call_ok(e.ll, FUSE_OPENDIR, 1, &oi, sizeof(oi), NULL, 0, &rep);
        memcpy(&oo, rep.payload, sizeof(oo));
        CHECK(!(oo.open_flags & (FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE)));
        ri = (struct fuse_read_in){ .fh = oo.fh, .size = 4096 };
        names[0] = 0;
        n = call_ok(e.ll, FUSE_READDIRPLUS, 1, &ri, sizeof(ri), NULL, 0, &rep);
        CHECK_EQ(parse_dir(rep.payload, n, true, names, &off, NULL), 1);
        CHECK_STREQ(names, "tree/");
        rl.fh = oo.fh;
        call_ok(e.ll, FUSE_RELEASEDIR, 1, &rl, sizeof(rl), NULL, 0, &rep);
        CHECK_EQ(call_err(e.ll, FUSE_READDIR, 1, &ri, sizeof(ri)), -EBADF);
        env_free(&e);
}

static void test_xattr(void) {
        struct env e = env_init(false);
        struct fuse_entry_out eo;
        struct fuse_ll_reply rep;
        struct fuse_getxattr_out go;
        uint64_t tree = lookup(&e, 1, "tree", &eo);
        uint64_t a = lookup(&e, tree, "a", &eo);
        struct fuse_getxattr_in gi = { .size = 0 };
        char want[CAS_DIGEST_B3_LEN + 1];

        CHECK_EQ(call_ok(e.ll, FUSE_GETXATTR, a, &gi, sizeof(gi), FS_XATTR_BLOB_DIGEST,
                         sizeof(FS_XATTR_BLOB_DIGEST), &rep), sizeof(go));
        memcpy(&go, rep.payload, sizeof(go));
        CHECK_EQ(go.size, CAS_DIGEST_B3_LEN);
        gi.size = 100;
        CHECK_EQ(call_ok(e.ll, FUSE_GETXATTR, a, &gi, sizeof(gi), FS_XATTR_BLOB_DIGEST,
                         sizeof(FS_XATTR_BLOB_DIGEST), &rep), CAS_DIGEST_B3_LEN);
        cas_digest_to_b3(&hello, want);
        CHECK(memcmp(rep.payload, want, CAS_DIGEST_B3_LEN) == 0);
        gi.size = 5;
        CHECK_OK(handle(e.ll, build(FUSE_GETXATTR, a, &gi, sizeof(gi), FS_XATTR_BLOB_DIGEST,
                                    sizeof(FS_XATTR_BLOB_DIGEST)), &rep));
        CHECK_EQ(rep.hdr.error, -ERANGE);
        CHECK_OK(handle(e.ll, build(FUSE_GETXATTR, a, &gi, sizeof(gi), "user.nope", 10), &rep));
        CHECK_EQ(rep.hdr.error, -ENODATA);

        gi.size = 0;
        CHECK_EQ(call_ok(e.ll, FUSE_LISTXATTR, tree, &gi, sizeof(gi), NULL, 0, &rep), sizeof(go));
        memcpy(&go, rep.payload, sizeof(go));
        CHECK_EQ(go.size, sizeof(FS_XATTR_DIRECTORY_DIGEST));
        gi.size = 200;
        CHECK_EQ(call_ok(e.ll, FUSE_LISTXATTR, tree, &gi, sizeof(gi), NULL, 0, &rep), sizeof(FS_XATTR_DIRECTORY_DIGEST));
        CHECK(memcmp(rep.payload, FS_XATTR_DIRECTORY_DIGEST, sizeof(FS_XATTR_DIRECTORY_DIGEST)) == 0);
        env_free(&e);
}

static void test_destroy(void) {
        struct env e = env_init(false);
        struct fuse_ll_reply rep;
        struct fuse_entry_out eo;

        lookup(&e, 1, "tree", &eo);
        CHECK_EQ(handle(e.ll, build(FUSE_DESTROY, 0, NULL, 0, NULL, 0), &rep), -ESHUTDOWN);
        CHECK(!rep.none);
        CHECK_EQ(rep.hdr.error, 0);
        CHECK_EQ(handle(e.ll, build(FUSE_LOOKUP, 1, "tree", 5, NULL, 0), &rep), -ESHUTDOWN);
        CHECK_EQ(rep.hdr.error, -ENOTCONN);
        /* a new session (virtiofs guest remount) starts clean */
        init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
        struct fs_stats st;
        fs_get_stats(e.fs, &st);
        CHECK_EQ(st.inodes, 1);
        lookup(&e, 1, "tree", &eo);
        env_free(&e);
}

static uint64_t open_file(struct env *e, uint64_t ino, struct fuse_ll_open_out *oo) {
        struct fuse_open_in oi = { .flags = O_RDONLY };
        struct fuse_ll_reply rep;

        CHECK_EQ(call_ok(e->ll, FUSE_OPEN, ino, &oi, sizeof(oi), NULL, 0, &rep), sizeof(*oo));
        memcpy(oo, rep.payload, sizeof(*oo));
        fuse_ll_reply_done(e->ll, &rep);
        return oo->fh;
}

/* A new INIT on the same engine (a virtiofs guest that rebooted or
 * remounted) starts a new session: the fs forgets the old kernel's
 * inodes, handles and backing files, and everything the first INIT
 * negotiated is negotiated afresh. */
static void test_reinit(void) {
        struct fuse_ll_caps t = { .name = "test", .readonly_mount = true, .calls_reply_done = true,
                                  .backing = &fake_backing };
        struct env e = env_new_on(local, true, &t, true);
        struct fuse_open_in oi = { .flags = O_RDONLY };
        struct fuse_getattr_in gi = {};
        struct fuse_ll_open_out oo, od;
        struct fuse_entry_out eo;
        struct fuse_ll_reply rep;
        struct fs_stats st;

        fake_reset();
        init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
        CHECK(fuse_ll_passthrough(e.ll));
        CHECK_EQ(fuse_ll_max_read(e.ll), 1 << 20);
        uint64_t r = lookup(&e, 1, "r", &eo), f1 = lookup(&e, r, "f1", &eo);
        open_file(&e, f1, &oo);
        CHECK(oo.open_flags & FOPEN_PASSTHROUGH);
        CHECK_EQ(oo.backing_id, 7);
        CHECK_EQ(fake_opens, 1);
        call_ok(e.ll, FUSE_OPENDIR, 1, &oi, sizeof(oi), NULL, 0, &rep);
        memcpy(&od, rep.payload, sizeof(od));
        fs_get_stats(e.fs, &st);
        CHECK_EQ(st.inodes, 3);
        CHECK_EQ(st.open_files, 1);
        CHECK_EQ(st.dirs_loaded, 1);

        /* an older kernel: no passthrough, no 1 MiB reads, no zero-message opens */
        init_with(e.ll, 7, 38, KERNEL_FLAGS & ~(uint64_t) (FUSE_PASSTHROUGH | FUSE_MAX_PAGES | FUSE_NO_OPEN_SUPPORT),
                  NULL);
        fs_get_stats(e.fs, &st);
        CHECK_EQ(st.inodes, 1);
        CHECK_EQ(st.open_files, 0);
        CHECK_EQ(st.dirs_loaded, 0);
        CHECK_EQ(fake_closes, 1); /* the old session's backing file */
        CHECK(!fuse_ll_passthrough(e.ll));
        CHECK_EQ(fuse_ll_passthrough_error(e.ll), -ENOPROTOOPT);
        CHECK_EQ(fuse_ll_max_read(e.ll), 32 * 4096);
        /* the old kernel's handles and node ids are gone */
        struct fuse_read_in ri = { .fh = oo.fh, .size = 4096 };
        CHECK_EQ(call_err(e.ll, FUSE_READ, f1, &ri, sizeof(ri)), -EBADF);
        struct fuse_release_in rl = { .fh = oo.fh };
        CHECK_EQ(call_err(e.ll, FUSE_RELEASE, f1, &rl, sizeof(rl)), -EBADF);
        ri.fh = od.fh;
        CHECK_EQ(call_err(e.ll, FUSE_READDIR, 1, &ri, sizeof(ri)), -EBADF);
        CHECK_EQ(call_err(e.ll, FUSE_GETATTR, f1, &gi, sizeof(gi)), -ESTALE);
        /* the new kernel finds the same numbers; opens as negotiated now */
        CHECK_EQ(lookup(&e, 1, "r", &eo), r);
        CHECK_EQ(lookup(&e, r, "f1", &eo), f1);
        open_file(&e, f1, &oo);
        CHECK(!(oo.open_flags & FOPEN_PASSTHROUGH));
        CHECK(oo.open_flags & FOPEN_KEEP_CACHE);
        CHECK_EQ(fake_opens, 1); /* nothing registered */
        ri = (struct fuse_read_in){ .fh = oo.fh, .size = 1 << 20 };
        CHECK_EQ(call_ok(e.ll, FUSE_READ, f1, &ri, sizeof(ri), NULL, 0, &rep), 10);
        CHECK(memcmp(rep.payload, "first blob", 10) == 0);
        fuse_ll_reply_done(e.ll, &rep);

        /* a session that ended with DESTROY, then a third kernel */
        CHECK_EQ(handle(e.ll, build(FUSE_DESTROY, 0, NULL, 0, NULL, 0), &rep), -ESHUTDOWN);
        init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
        CHECK(fuse_ll_passthrough(e.ll));
        CHECK_EQ(fake_closes, 1); /* that reader had no backing file */
        r = lookup(&e, 1, "r", &eo);
        open_file(&e, lookup(&e, r, "f2", &eo), &oo);
        CHECK(oo.open_flags & FOPEN_PASSTHROUGH);
        CHECK_EQ(fake_opens, 2);
        /* the session ends with the engine: its backing files are closed */
        fuse_ll_free(e.ll);
        CHECK_EQ(fake_closes, 2);
        fs_get_stats(e.fs, &st);
        CHECK_EQ(st.inodes, 1);
        fs_free(e.fs);
}

/* Passthrough is used only when configured, possible for the transport,
 * offered by the kernel (7.40+, in flags2) and, if the transport can try
 * a registration, not refused once the kernel has the INIT reply.  When
 * it is not used, files are opened without asking (zero-message opens). */
static void test_passthrough_decision(void) {
        static const struct {
                bool configured, transport;
                uint64_t kflags;
                uint32_t minor;
                int probe;
                bool offered, used;
                int error;
        } cases[] = {
                { true, true, KERNEL_FLAGS, 45, 0, true, true, 0 },
                { false, true, KERNEL_FLAGS, 45, 0, false, false, -ENOPROTOOPT },
                { true, false, KERNEL_FLAGS, 45, 0, false, false, -ENOPROTOOPT },
                { true, true, KERNEL_FLAGS & ~(uint64_t) FUSE_PASSTHROUGH, 45, 0, false, false, -ENOPROTOOPT },
                { true, true, KERNEL_FLAGS, 39, 0, false, false, -ENOPROTOOPT },
                { true, true, KERNEL_FLAGS & ~(uint64_t) FUSE_INIT_EXT, 45, 0, false, false, -ENOPROTOOPT },
                { true, true, KERNEL_FLAGS, 45, -EPERM, true, false, -EPERM },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct fuse_ll_caps t = { .name = "test", .readonly_mount = true, .calls_reply_done = true,
                                          .backing = cases[i].transport ? &fake_backing_probed : NULL };
                struct env e = env_new_on(local, false, &t, cases[i].configured);
                struct fuse_init_in in = { .major = 7, .minor = cases[i].minor, .max_readahead = 131072,
                                           .flags = (uint32_t) cases[i].kflags,
                                           .flags2 = (uint32_t) (cases[i].kflags >> 32) };
                struct fuse_open_in oi = { .flags = O_RDONLY };
                struct fuse_ll_init_out o = {};
                struct fuse_ll_open_out oo;
                struct fuse_entry_out eo;
                struct fuse_ll_reply rep;

                fake_reset();
                fake_probe_result = cases[i].probe;
                size_t n = call_ok(e.ll, FUSE_INIT, 0, &in, sizeof(in), NULL, 0, &rep);
                memcpy(&o, rep.payload, MIN(n, sizeof(o)));
                CHECK_EQ(!!(o.flags2 & (FUSE_PASSTHROUGH >> 32)), cases[i].offered);
                CHECK_EQ(o.max_stack_depth, cases[i].offered ? 1 : 0);
                CHECK_EQ(fake_probes, 0); /* the kernel does not have the reply yet */
                fuse_ll_reply_done(e.ll, &rep);
                CHECK_EQ(fake_probes, cases[i].offered ? 1 : 0);
                CHECK_EQ(fuse_ll_passthrough(e.ll), cases[i].used);
                CHECK_EQ(fuse_ll_passthrough_error(e.ll), cases[i].error);

                uint64_t r = lookup(&e, 1, "r", &eo), f1 = lookup(&e, r, "f1", &eo);
                if (cases[i].used) {
                        open_file(&e, f1, &oo);
                        CHECK(oo.open_flags & FOPEN_PASSTHROUGH);
                        CHECK_EQ(oo.backing_id, 7);
                        CHECK_EQ(fake_opens, 1);
                } else {
                        CHECK_EQ(call_err(e.ll, FUSE_OPEN, f1, &oi, sizeof(oi)), -ENOSYS);
                        struct fuse_read_in ri = { .fh = 0, .size = 4096 };
                        CHECK_EQ(call_ok(e.ll, FUSE_READ, f1, &ri, sizeof(ri), NULL, 0, &rep), 10);
                        CHECK(memcmp(rep.payload, "first blob", 10) == 0);
                        fuse_ll_reply_done(e.ll, &rep);
                        CHECK_EQ(fake_opens, 0);
                }
                env_free(&e);
                CHECK_EQ(fake_closes, fake_opens);
        }
}

/* A registration refused after INIT (no trial registration, or the kernel
 * changed its mind): that file is served through the daemon, no other
 * registration is tried in the session, and (with a kernel that can)
 * opens are no longer asked for. */
static void test_passthrough_refused_later(void) {
        struct fuse_ll_caps t = { .name = "test", .readonly_mount = true, .calls_reply_done = true,
                                  .backing = &fake_backing };
        struct fuse_open_in oi = { .flags = O_RDONLY };
        struct fuse_ll_open_out oo;
        struct fuse_entry_out eo;

        for (int zero_message = 0; zero_message < 2; zero_message++) {
                uint64_t kflags = zero_message ? KERNEL_FLAGS : KERNEL_FLAGS & ~(uint64_t) FUSE_NO_OPEN_SUPPORT;
                struct env e = env_new_on(local, false, &t, true);

                fake_reset();
                init_with(e.ll, 7, 45, kflags, NULL);
                CHECK(fuse_ll_passthrough(e.ll));
                uint64_t r = lookup(&e, 1, "r", &eo);
                uint64_t f1 = lookup(&e, r, "f1", &eo), f2 = lookup(&e, r, "f2", &eo);
                fake_refuse = -EPERM;
                open_file(&e, f1, &oo);
                CHECK(!(oo.open_flags & FOPEN_PASSTHROUGH));
                CHECK(oo.open_flags & FOPEN_KEEP_CACHE);
                if (zero_message)
                        CHECK_EQ(call_err(e.ll, FUSE_OPEN, f2, &oi, sizeof(oi)), -ENOSYS);
                else {
                        open_file(&e, f2, &oo);
                        CHECK(!(oo.open_flags & FOPEN_PASSTHROUGH));
                }
                CHECK_EQ(fake_attempts, 1);
                /* a new session tries again */
                fake_refuse = 0;
                init_with(e.ll, 7, 45, kflags, NULL);
                r = lookup(&e, 1, "r", &eo);
                open_file(&e, lookup(&e, r, "f2", &eo), &oo);
                CHECK(oo.open_flags & FOPEN_PASSTHROUGH);
                CHECK_EQ(fake_attempts, 2);
                env_free(&e);
                CHECK_EQ(fake_closes, 1);
        }
}

/* Capabilities other than passthrough: a mount the kernel does not keep
 * read-only (virtiofs) gets no zero-message opens; the configured read
 * size is what INIT offers (within what the protocol can say);
 * inconsistent capabilities are refused. */
static void test_caps(void) {
        struct fuse_ll_caps t = { .name = "virtio-like", .calls_reply_done = true };
        struct fuse_open_in oi = { .flags = O_RDONLY };
        struct fuse_ll_open_out oo;
        struct fuse_entry_out eo;
        struct fuse_ll_reply rep;
        struct fuse_ll *ll;
        struct env e;

        e = env_new_on(local, false, &t, true);
        struct fuse_ll_init_out o = init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
        CHECK(!(o.flags2 & (FUSE_PASSTHROUGH >> 32)));
        uint64_t r = lookup(&e, 1, "r", &eo), f1 = lookup(&e, r, "f1", &eo);
        struct fuse_open_in wr = { .flags = O_WRONLY };
        CHECK_EQ(call_err(e.ll, FUSE_OPEN, f1, &wr, sizeof(wr)), -EROFS);
        open_file(&e, f1, &oo);
        struct fuse_read_in ri = { .fh = 0, .size = 4096 };
        CHECK_EQ(call_err(e.ll, FUSE_READ, f1, &ri, sizeof(ri)), -EBADF);
        ri.fh = oo.fh;
        CHECK_EQ(call_ok(e.ll, FUSE_READ, f1, &ri, sizeof(ri), NULL, 0, &rep), 10);
        CHECK(memcmp(rep.payload, "first blob", 10) == 0);
        fuse_ll_reply_done(e.ll, &rep);
        CHECK_EQ(call_err(e.ll, FUSE_OPEN, 1, &oi, sizeof(oi)), -EISDIR);
        env_free(&e);

        struct fs *fs;
        struct fs_config cfg = {};
        static const struct fuse_ll_backing_ops no_open = { .close = fake_backing_close };
        CHECK_OK(fs_new(store->blobs, store->dirs, &cfg, &fs));
        struct fuse_ll_config lcfg = { .max_pages = 100 };
        CHECK_OK(fuse_ll_new(fs, &plain, &lcfg, &ll));
        o = init_with(ll, 7, 45, KERNEL_FLAGS, NULL);
        CHECK_EQ(o.max_pages, 100);
        CHECK_EQ(fuse_ll_max_read(ll), 100 * 4096);
        CHECK_EQ(fuse_ll_scratch_size(ll), 101 * 4096);
        fuse_ll_free(ll);
        lcfg.max_pages = 70000; /* max_pages is 16 bits on the wire */
        CHECK_OK(fuse_ll_new(fs, &plain, &lcfg, &ll));
        o = init_with(ll, 7, 45, KERNEL_FLAGS, NULL);
        CHECK_EQ(o.max_pages, 65535);
        fuse_ll_free(ll);

        t = (struct fuse_ll_caps){ .name = "probe, no reply_done", .backing = &fake_backing_probed };
        CHECK_EQ(fuse_ll_new(fs, &t, NULL, &ll), -EINVAL);
        t = (struct fuse_ll_caps){ .name = "no open", .calls_reply_done = true, .backing = &no_open };
        CHECK_EQ(fuse_ll_new(fs, &t, NULL, &ll), -EINVAL);
        fs_free(fs);
}

/* FUSE over io_uring is answered when the kernel offers it (7.42+, in
 * flags2) and the transport's rings are ready when INIT comes. */
static bool fake_rings;
static int fake_ready_calls;
static bool fake_io_uring_ready(void *ctx) {
        fake_ready_calls++;
        return fake_rings;
}

static void test_io_uring(void) {
        struct fuse_ll_caps t = { .name = "rings", .readonly_mount = true, .io_uring_ready = fake_io_uring_ready };
        const uint64_t offer = KERNEL_FLAGS | FUSE_OVER_IO_URING;
        static const struct {
                bool rings;
                uint64_t kflags;
                bool answered;
        } cases[] = {
                { true, offer, true },
                { false, offer, false },                          /* rings not set up */
                { true, KERNEL_FLAGS, false },                    /* enable_uring=N */
                { true, offer & ~(uint64_t) FUSE_INIT_EXT, false }, /* no flags2 at all */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct env e = env_new(false, &t, false);
                fake_rings = cases[i].rings;
                fake_ready_calls = 0;
                CHECK(!fuse_ll_io_uring(e.ll));
                struct fuse_ll_init_out o = init_with(e.ll, 7, 45, cases[i].kflags, NULL);
                CHECK_EQ(!!(o.flags2 & (FUSE_OVER_IO_URING >> 32)), cases[i].answered);
                CHECK_EQ(fuse_ll_io_uring(e.ll), cases[i].answered);
                /* asked only when the kernel offers it */
                int asked = (cases[i].kflags & FUSE_OVER_IO_URING) && (cases[i].kflags & FUSE_INIT_EXT);
                CHECK_EQ(fake_ready_calls, asked);
                env_free(&e);
        }
        /* without the callback, never; a new INIT decides afresh */
        struct env e = env_new(false, NULL, false);
        struct fuse_ll_init_out o = init_with(e.ll, 7, 45, offer, NULL);
        CHECK(!(o.flags2 & (FUSE_OVER_IO_URING >> 32)));
        env_free(&e);
        e = env_new(false, &t, false);
        fake_rings = true;
        init_with(e.ll, 7, 45, offer, NULL);
        CHECK(fuse_ll_io_uring(e.ll));
        init_with(e.ll, 7, 45, KERNEL_FLAGS, NULL);
        CHECK(!fuse_ll_io_uring(e.ll));
        env_free(&e);
}

int main(void) {
        make_store();
        make_local_store();
        RUN(test_init);
        RUN(test_before_init);
        RUN(test_malformed);
        RUN(test_enosys_erofs);
        RUN(test_lookup_getattr);
        RUN(test_open_read);
        RUN(test_read_copies);
        RUN(test_readdir);
        RUN(test_xattr);
        RUN(test_destroy);
        RUN(test_reinit);
        RUN(test_passthrough_decision);
        RUN(test_passthrough_refused_later);
        RUN(test_caps);
        RUN(test_io_uring);
        remove_local_store();
        cas_store_free(store);
        return 0;
}
