/* Verified file contents for the NAR renderer: takes each file from the
 * read-ahead, or reads and verifies it here, and writes it to the NAR
 * writer (see nar_contents.h). */
#include "store/nar_contents.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/io.h"
#include "util/log.h"
#include "store/nar_prefetch.h"

/* On-disk blobs up to this size are read once into a scratch buffer,
 * verified there and written from it: one read, and nothing can change
 * between the check and the output.  Larger ones are verified, then read
 * a second time as they are written. */
#define WHOLE_BLOB_MAX NAR_PREFETCH_FILE_MAX

struct nar_contents {
        struct cas_blob_service *blobs; /* not owned */
        bool output;
        struct nar_prefetch *pf;  /* read-ahead of the files, or NULL */
        uint8_t *scratch;         /* WHOLE_BLOB_MAX bytes, allocated on first use */
};

int nar_contents_new(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                     bool output, bool serial, struct nar_contents **ret) {
        struct nar_contents *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->blobs = blobs;
        c->output = output;
        /* without the read-ahead (no memory, no threads) the render reads alone */
        if (!serial && root->kind != CAS_NODE_SYMLINK && nar_prefetch_start(blobs, dirs, root, output, 0, &c->pf) < 0)
                c->pf = NULL;
        *ret = c;
        return 0;
}

void nar_contents_free(struct nar_contents *c) {
        if (!c)
                return;
        nar_prefetch_stop(c->pf);
        free(c->scratch);
        free(c);
}

/* Writes bytes of a blob held in memory: verified first, then copied from
 * the same bytes. */
static int write_verified(struct nar_writer *w, const struct cas_digest *want, const uint8_t *data, size_t len) {
        struct cas_digest d;

        cas_digest_of(data, len, &d);
        if (!cas_digest_equal(&d, want))
                return log_error_errno(-EBADMSG, "Blob %s does not match its digest", CAS_DIGEST_HEX(want));
        return nar_write_contents(w, data, len);
}

/* Reads a small on-disk blob whole into the scratch buffer. */
static int read_whole(struct nar_contents *c, struct cas_blob_reader *b) {
        ssize_t n;

        if (!c->scratch) {
                c->scratch = malloc(WHOLE_BLOB_MAX);
                if (!c->scratch)
                        return -ENOMEM;
        }
        n = cas_blob_pread_full(b, c->scratch, (size_t) b->size, 0);
        if (n < 0)
                return log_error_errno((int) n, "Failed to read blob %s: %m", CAS_DIGEST_HEX(&b->digest));
        if ((uint64_t) n < b->size)
                return log_error_errno(-EBADMSG, "Blob %s is shorter than its size %" PRIu64,
                                       CAS_DIGEST_HEX(&b->digest), b->size);
        return 0;
}

/* Streams a blob read with pread into the writer's buffer, hashing what
 * is read if hash.  The caller has verified it already when output
 * escapes; hashing again catches a file that changed between the two
 * reads. */
static int write_streamed(struct nar_writer *w, struct cas_blob_reader *b, bool hash) {
        struct cas_hasher h;
        struct cas_digest d;
        uint64_t off = 0;
        int r;

        cas_hasher_init(&h);
        while (off < b->size) {
                uint8_t *p;
                size_t room;
                ssize_t n;

                r = nar_write_reserve(w, &p, &room);
                if (r < 0)
                        return r;
                n = cas_blob_pread(b, p, room, off);
                if (n < 0)
                        return log_error_errno((int) n, "Failed to read blob %s: %m", CAS_DIGEST_HEX(&b->digest));
                if (n == 0)
                        return log_error_errno(-EBADMSG, "Blob %s is shorter than its size %" PRIu64,
                                               CAS_DIGEST_HEX(&b->digest), b->size);
                if (hash)
                        cas_hasher_update(&h, p, (size_t) n);
                nar_write_commit(w, (size_t) n);
                off += (uint64_t) n;
        }
        if (!hash)
                return 0;
        cas_hasher_final(&h, &d);
        if (!cas_digest_equal(&d, &b->digest))
                return log_error_errno(-EBADMSG, "Blob %s changed or does not match its digest",
                                       CAS_DIGEST_HEX(&b->digest));
        return 0;
}

/* Streams a large blob the read-ahead verified.  Its file is not hashed
 * again: a ctime still the one from before the check shows that nothing
 * wrote to it since. */
static int write_fetched_reader(struct nar_writer *w, const struct nar_fetched *f) {
        struct cas_blob_reader *b = f->reader;
        struct stat st;
        int r;

        if (!f->verified) /* hash only: nothing escapes before the check */
                return write_streamed(w, b, true);
        if (b->data)
                return nar_write_contents(w, b->data, (size_t) b->size);
        if (b->fd < 0 || f->ctime_ns < 0)
                return write_streamed(w, b, true);
        r = write_streamed(w, b, false);
        if (r < 0)
                return r;
        if (fstat(b->fd, &st) < 0)
                return log_error_errno(negative_errno(), "Failed to stat blob %s: %m", CAS_DIGEST_HEX(&b->digest));
        if (timespec_ns(st.st_ctim) != f->ctime_ns)
                return log_error_errno(-EBADMSG, "Blob %s changed while it was read", CAS_DIGEST_HEX(&b->digest));
        return 0;
}

/* A file the read-ahead verified: 1 when written, 0 when the read-ahead
 * does not have it. */
static int write_prefetched(struct nar_contents *c, const struct cas_node *n, struct nar_writer *w) {
        struct nar_fetched f;
        int r;

        r = nar_prefetch_take(c->pf, n, &f);
        if (r <= 0)
                return r;
        r = f.reader ? write_fetched_reader(w, &f) : nar_write_contents(w, f.data, (size_t) n->size);
        free(f.data);
        cas_blob_reader_close(f.reader);
        return r < 0 ? r : 1;
}

/* The same checks without the read-ahead, on the calling thread. */
static int write_serial(struct nar_contents *c, const struct cas_node *n, struct nar_writer *w) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *b = NULL;
        int r;

        r = cas_blob_open(c->blobs, &n->digest, &b);
        if (r == -ENOENT)
                return log_error_errno(r, "Blob %s is missing", CAS_DIGEST_HEX(&n->digest));
        if (r < 0)
                return log_error_errno(r, "Failed to open blob %s: %m", CAS_DIGEST_HEX(&n->digest));
        if (b->size != n->size)
                return log_error_errno(-EBADMSG, "Blob %s has %" PRIu64 " bytes, the file node says %" PRIu64,
                                       CAS_DIGEST_HEX(&n->digest), b->size, n->size);
        if (b->data)
                return write_verified(w, &b->digest, b->data, (size_t) b->size);
        if (!c->output) /* hash only: one pass, checked at its end */
                return write_streamed(w, b, true);
        if (b->size <= WHOLE_BLOB_MAX) {
                r = read_whole(c, b);
                if (r < 0)
                        return r;
                return write_verified(w, &b->digest, c->scratch, (size_t) b->size);
        }
        /* verify before any byte of it can escape */
        r = cas_blob_reader_verify(b);
        if (r < 0)
                return log_error_errno(r, "Blob %s does not verify: %m", CAS_DIGEST_HEX(&n->digest));
        return write_streamed(w, b, true);
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
