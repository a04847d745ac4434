/* Fuzz target for the FUSE protocol engine: arbitrary request bytes fed to
 * fuse_ll_handle() after INIT, over a small tree in a local store (blob
 * files, read through the verified reader) in a temporary directory.  The
 * input is a sequence of requests, each prefixed by a 16-bit little-endian
 * length.  A request's header length field is set to its real length
 * unless the first flag bit says to keep the fuzzer's value, and small
 * node ids are mapped onto inodes that exist, so that the operations get
 * past the first checks.  After each input a new INIT (a new session) must
 * leave every inode, reader and handle gone (nothing leaked by any
 * request, whatever state the input left the engine in).  The first byte
 * also picks the front end: /dev/fuse-like (a read-only mount, zero-message
 * opens) or virtio-like (no such guarantee), with or without passthrough
 * (backing files registered through fake ops that count them: none may
 * stay registered after the new session). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "castore/store.h"
#include "fs/fs.h"
#include "fuse/fuse_ll.h"
#include "util/log.h"

#define N(s) .name = (s), .name_len = sizeof(s) - 1

static struct cas_store *store;
static uint8_t scratch[257 * 4096];
static char store_dir[] = "/tmp/fuzz-fuse-XXXXXX";

static void remove_store(void) {
        char cmd[64];

        cas_store_free(TAKE_PTR(store));
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", store_dir);
        if (system(cmd) != 0)
                fprintf(stderr, "fuzz-fuse: could not remove %s\n", store_dir);
}

static void setup(void) {
        struct cas_directory *sub, *top;
        struct cas_digest hello, big;
        enum cas_verr why;
        static uint8_t bigdata[100000];

        log_set_max_level(LOG_LEVEL_ERR - 1); /* quiet: hostile requests are expected to fail */
        if (!mkdtemp(store_dir) || cas_store_open(store_dir, CAS_STORE_CREATE, &store) < 0)
                abort();
        atexit(remove_store);
        for (size_t i = 0; i < sizeof(bigdata); i++)
                bigdata[i] = i % 251;
        cas_blob_put(store->blobs, "hello", 5, 0, &hello);
        cas_blob_put(store->blobs, bigdata, sizeof(bigdata), 0, &big);
        struct cas_node sn[] = { { .kind = CAS_NODE_FILE, N("x"), .digest = hello, .size = 5 } };
        if (cas_directory_new(sn, 1, &sub, NULL) < 0 || cas_dir_put(store->dirs, &sub, 1, 0, &why) < 0)
                abort();
        struct cas_node tn[] = {
                { .kind = CAS_NODE_FILE, N("a"), .digest = hello, .size = 5 },
                { .kind = CAS_NODE_FILE, N("b"), .digest = big, .size = sizeof(bigdata), .executable = true },
                { .kind = CAS_NODE_SYMLINK, N("c"), .target = "a", .target_len = 1 },
                { .kind = CAS_NODE_DIRECTORY, N("d"), .digest = sub->digest, .size = 1 },
                { .kind = CAS_NODE_FILE, N("e"), .digest = cas_digest_empty, .size = 0 }, /* blob absent */
        };
        if (cas_directory_new(tn, 5, &top, NULL) < 0 || cas_dir_put(store->dirs, &top, 1, 0, &why) < 0)
                abort();
        struct cas_node r = { .kind = CAS_NODE_DIRECTORY, N("t"), .digest = top->digest, .size = top->size };
        cas_root_put(store->roots, &r);
        cas_directory_free(sub);
        cas_directory_free(top);
}

static size_t build(uint8_t *buf, uint32_t opcode, uint64_t nodeid, const void *body, size_t len) {
        struct fuse_in_header h = { .len = sizeof(h) + len, .opcode = opcode, .unique = 1, .nodeid = nodeid };
        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), body, len);
        return h.len;
}

/* Looks up name in parent; the node id or 0. */
static uint64_t lookup(struct fuse_ll *ll, uint64_t parent, const char *name) {
        uint8_t req[128];
        struct fuse_ll_reply rep;
        struct fuse_entry_out eo;

        fuse_ll_handle(ll, req, build(req, FUSE_LOOKUP, parent, name, strlen(name) + 1), scratch, sizeof(scratch),
                       &rep);
        fuse_ll_reply_done(ll, &rep);
        if (rep.hdr.error != 0 || rep.payload_len != sizeof(eo))
                return 0;
        memcpy(&eo, rep.payload, sizeof(eo));
        return eo.nodeid;
}

static int backing_live; /* registered and not yet closed */

static int fake_backing_open(void *ctx, int fd) {
        return fd < 0 ? -EBADF : ++backing_live;
}

static int fake_backing_close(void *ctx, int id) {
        if (id <= 0 || backing_live <= 0)
                abort(); /* closed what was never registered, or twice */
        backing_live--;
        return 0;
}

static const struct fuse_ll_backing_ops fake_backing = { .open = fake_backing_open, .close = fake_backing_close };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t mode = size > 0 ? data[0] : 0;
        const struct fuse_ll_caps t = {
                .name = "fuzz",
                .readonly_mount = !(mode & 0x40),
                .calls_reply_done = true,
                .backing = (mode & 0x20) ? &fake_backing : NULL,
        };
        struct fs_root_provider p;
        struct fs_config cfg;
        struct fuse_ll_config lcfg = { .max_pages = 256, .passthrough = (mode & 0x20) != 0 };
        struct fuse_ll *ll;
        struct fs *fs;
        struct fuse_ll_reply rep;
        uint64_t ids[8];
        uint8_t *req;
        size_t pos = 0;

        if (!store)
                setup();
        p = (struct fs_root_provider){ &fs_root_service_ops, store->roots };
        cfg = (struct fs_config){ .list_root = (mode & 0x80) != 0, .roots = &p, .n_roots = 1,
                                  .passthrough_unverified = (mode & 0x20) != 0 };
        if (fs_new(store->blobs, store->dirs, &cfg, &fs) < 0 || fuse_ll_new(fs, &t, &lcfg, &ll) < 0)
                abort();
        req = malloc(fuse_ll_request_size(ll));
        if (!req)
                abort();
        const struct fuse_init_in in = { .major = 7, .minor = 45, .flags = 0xffffffff, .flags2 = 0xffffffff };
        fuse_ll_handle(ll, req, build(req, FUSE_INIT, 0, &in, sizeof(in)), scratch, sizeof(scratch), &rep);
        fuse_ll_reply_done(ll, &rep);

        ids[0] = FUSE_ROOT_ID;
        ids[1] = lookup(ll, 1, "t");
        ids[2] = lookup(ll, ids[1], "a");
        ids[3] = lookup(ll, ids[1], "b");
        ids[4] = lookup(ll, ids[1], "c");
        ids[5] = lookup(ll, ids[1], "d");
        ids[6] = lookup(ll, ids[1], "e");
        ids[7] = 0;

        while (pos + 3 <= size) {
                size_t len = data[pos] | (size_t) data[pos + 1] << 8;
                uint8_t flags = data[pos + 2];
                pos += 3;
                len = len > size - pos ? size - pos : len;
                if (len > fuse_ll_request_size(ll))
                        len = fuse_ll_request_size(ll);
                memcpy(req, data + pos, len);
                pos += len;
                uint32_t opcode = 0;
                if (len >= sizeof(struct fuse_in_header)) {
                        struct fuse_in_header h;
                        memcpy(&h, req, sizeof(h));
                        if (!(flags & 1))
                                h.len = len;
                        if (h.nodeid < 256)
                                h.nodeid = ids[h.nodeid % 8];
                        memcpy(req, &h, sizeof(h));
                        opcode = h.opcode;
                }
                int r = fuse_ll_handle(ll, req, len, scratch, sizeof(scratch), &rep);
                /* the reply must describe itself consistently */
                if (!rep.none) {
                        if (rep.hdr.len != sizeof(struct fuse_out_header) + rep.payload_len)
                                abort();
                        if (rep.payload_len > sizeof(scratch))
                                abort();
                        if (rep.payload_len > 0 && rep.payload != scratch &&
                            !((const uint8_t *) rep.payload >= scratch &&
                              (const uint8_t *) rep.payload + rep.payload_len <= scratch + sizeof(scratch)))
                                abort();
                        if (rep.hdr.error > 0 || rep.hdr.error < -4095)
                                abort();
                        if (rep.hdr.error != 0 && rep.payload_len != 0)
                                abort();
                        /* file data is in the payload, never more than negotiated */
                        if (opcode == FUSE_READ && rep.payload_len > fuse_ll_max_read(ll))
                                abort();
                }
                fuse_ll_reply_done(ll, &rep);
                if (r == -ESHUTDOWN)
                        break;
        }
        /* a new session: whatever the requests did, nothing may be left */
        struct fs_stats st;
        if (fuse_ll_handle(ll, req, build(req, FUSE_INIT, 0, &in, sizeof(in)), scratch, sizeof(scratch), &rep) < 0 ||
            rep.hdr.error != 0)
                abort();
        fuse_ll_reply_done(ll, &rep);
        fs_get_stats(fs, &st);
        if (st.inodes != 1 || st.open_files != 0 || st.dirs_loaded != 0 || backing_live != 0)
                abort();
        free(req);
        fuse_ll_free(ll);
        fs_free(fs);
        if (backing_live != 0)
                abort();
        return 0;
}
