/* Verified file contents for the NAR renderer: takes each file from the
 * read-ahead, or opens it here, and writes it to the NAR writer through
 * the verified blob reader (see nar_contents.h). */
#include "store/nar_contents.h"

#include <errno.h>
#include <stdlib.h>

#include "castore/outboard.h"
#include "castore/vblob.h"
#include "store/nar_prefetch.h"
#include "util/log.h"

struct nar_contents {
        struct cas_blob_service *blobs; /* not owned */
        struct nar_prefetch *pf;        /* read-ahead of the files, or NULL */
};

/* Workers of the read-ahead.  Cold, each waits on the disk for most of
 * its file: more workers than CPUs keep the device's queue full (a cold
 * 64k-file NAR rendered at 126 MB/s with 2 workers, 290 MB/s with 16 on
 * two CPUs); the slots, not the workers, bound the memory held. */
#define READ_AHEAD_WORKERS 16u

int nar_contents_new(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                     bool serial, struct nar_contents **ret) {
        struct nar_contents *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->blobs = blobs;
        /* without the read-ahead (no memory, no threads) the render reads alone */
        if (!serial && root->kind != CAS_NODE_SYMLINK && nar_prefetch_start(blobs, dirs, root, READ_AHEAD_WORKERS, &c->pf) < 0)
                c->pf = NULL;
        *ret = c;
        return 0;
}

void nar_contents_free(struct nar_contents *c) {
        if (!c)
                return;
        nar_prefetch_stop(c->pf);
        free(c);
}

static int log_blob_error(int r, const struct cas_node *n) {
        if (r == -ENOENT)
                return log_error_errno(r, "Blob %s is missing", CAS_DIGEST_B3(&n->digest));
        if (r == -EBADMSG)
                return log_error_errno(r, "Blob %s does not match its digest or size", CAS_DIGEST_B3(&n->digest));
        return log_error_errno(r, "Failed to read blob %s: %m", CAS_DIGEST_B3(&n->digest));
}

/* Reads the blob, verified, straight into the writer's buffer.  Each read
 * ends on a group boundary (or the blob's end), so no group is hashed
 * twice. */
static int write_blob(struct nar_writer *w, struct cas_vblob *v, const struct cas_node *node) {
        uint64_t size = cas_vblob_size(v);
        int r;

        for (uint64_t off = 0; off < size;) {
                uint8_t *p;
                size_t room;
                ssize_t n;

                r = nar_write_reserve(w, &p, &room);
                if (r < 0)
                        return r;
                if (room > CAS_GROUP_SIZE && off + room < size)
                        room -= (size_t) ((off + room) % CAS_GROUP_SIZE);
                n = cas_vblob_pread(v, p, room, off);
                if (n == 0)
                        n = -EBADMSG;
                if (n < 0)
                        return log_blob_error((int) n, node);
                nar_write_commit(w, (size_t) n);
                off += (uint64_t) n;
        }
        return 0;
}

/* A file the read-ahead has, in one piece or several: 1 when written, 0
 * when the read-ahead does not have it. */
static int write_prefetched(struct nar_contents *c, const struct cas_node *n, struct nar_writer *w) {
        struct nar_fetched f = { .more = true };
        bool first = true;
        int r = 0;

        while (r >= 0 && f.more) {
                r = nar_prefetch_take(c->pf, n, &f);
                if (r == 0 && !first)
                        return log_error_errno(-EIO, "NAR read-ahead stopped inside blob %s", CAS_DIGEST_B3(&n->digest));
                if (r <= 0)
                        return r;
                first = false;
                r = nar_write_contents(w, f.data, f.len);
                free(f.data);
        }
        return r < 0 ? r : 1;
}

/* The same without the read-ahead, on the calling thread. */
static int write_serial(struct nar_contents *c, const struct cas_node *n, struct nar_writer *w) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        int r;

        r = cas_vblob_open(c->blobs, &n->digest, n->size, &v);
        if (r < 0)
                return log_blob_error(r, n);
        return write_blob(w, v, n);
}

int nar_contents_write(struct nar_contents *c, const struct cas_node *n, struct nar_writer *w) {
        int r;

        if (c->pf) {
                r = write_prefetched(c, n, w);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        return write_serial(c, n, w);
}
