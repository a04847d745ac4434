/* Fuzz target for verified blob reads: a true blob T (its digest is the
 * trust anchor), a stored copy S and a stored outboard O, both damaged by
 * the input, served by a small in-harness backend.  Whatever S and O hold,
 * every byte cas_vblob_pread returns must be T's byte at that offset.
 *
 * Input: [1 byte size selector][2 bytes seed][mutations: (4-byte offset,
 * 1-byte xor) records for S, a 0xff 0xff 0xff 0xff separator, records for
 * O][read requests: (4-byte offset, 3-byte length) records]. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "castore/outboard.h"
#include "castore/vblob.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sizes around the group boundaries that shape the tree. */
static const uint32_t sizes[] = {
        0, 1, 1024, 16383, 16384, 16385, 32768, 32769, 49152, 65537, 3 * 16384 + 1000, 5 * 16384,
        7 * 16384 + 1, 16 * 16384, 17 * 16384 + 5, 33 * 16384,
};

struct fz_service {
        struct cas_blob_service base;
        struct cas_digest digest; /* of T */
        uint8_t *stored;          /* S */
        size_t size;              /* T's, and S's when opened */
        size_t stored_len;        /* S's now */
        uint8_t *ob;              /* O */
        size_t ob_len;
};

struct fz_reader {
        struct cas_blob_reader base;
        const struct fz_service *s;
};

static ssize_t fz_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        const struct fz_service *s = ((struct fz_reader *) r)->s;

        if (off >= s->stored_len)
                return 0;
        len = MIN(len, (size_t) (s->stored_len - off));
        memcpy(buf, s->stored + off, len);
        return (ssize_t) len;
}

static void fz_close(struct cas_blob_reader *r) {
        free(r);
}

static const struct cas_blob_reader_ops fz_reader_ops = { .pread = fz_pread, .close = fz_close };

static int fz_open(struct cas_blob_service *bs, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct fz_service *s = (struct fz_service *) bs;
        struct fz_reader *r;

        if (!cas_digest_equal(d, &s->digest))
                return -ENOENT;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        /* The size the file had when opened; S may have shrunk since. */
        r->base = (struct cas_blob_reader){ .ops = &fz_reader_ops, .digest = *d, .size = s->size, .fd = -1 };
        r->s = s;
        *ret = &r->base;
        return 0;
}

static int fz_outboard_get(struct cas_blob_service *bs, const struct cas_digest *d, uint8_t **ret, size_t *ret_len) {
        struct fz_service *s = (struct fz_service *) bs;

        if (!s->ob)
                return -ENOENT;
        *ret = malloc(s->ob_len ? s->ob_len : 1);
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, s->ob, s->ob_len);
        *ret_len = s->ob_len;
        return 0;
}

static const struct cas_blob_ops fz_ops = { .name = "fuzz", .open = fz_open, .outboard_get = fz_outboard_get };

static uint32_t le32(const uint8_t *p) {
        return p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* Applies (offset, xor) records to buf until the separator; returns the
 * bytes consumed. */
static size_t mutate(const uint8_t *in, size_t n, uint8_t *buf, size_t len) {
        size_t i = 0;

        while (i + 5 <= n) {
                uint32_t off = le32(in + i);

                if (off == 0xffffffffu)
                        return i + 4;
                if (len > 0)
                        buf[off % len] ^= in[i + 4] ? in[i + 4] : 1;
                i += 5;
        }
        return i;
}

/* T, its digest and its outboard depend only on (size, seed): the last
 * few are kept, so an execution spends its time in the code under test
 * rather than in rebuilding them (inputs that differ only in damage and
 * reads share a truth).  The fuzzer runs one input at a time. */
struct truth {
        uint32_t n, seed;
        uint8_t *bytes;
        struct cas_digest digest;
        uint8_t *ob;
};
static struct truth truths[16];
static unsigned truth_next;

static const struct truth *truth_of(uint32_t n, uint32_t seed) {
        struct truth *t;

        for (size_t k = 0; k < ELEMENTSOF(truths); k++)
                if (truths[k].bytes && truths[k].n == n && truths[k].seed == seed)
                        return &truths[k];
        t = &truths[truth_next++ % ELEMENTSOF(truths)];
        free(t->bytes);
        free(t->ob);
        t->n = n;
        t->seed = seed;
        t->bytes = malloc(n + 1);
        t->ob = malloc(cas_outboard_len(n) + 1);
        if (!t->bytes || !t->ob)
                abort();
        for (uint32_t i = 0; i < n; i++)
                t->bytes[i] = (uint8_t) (i * 31 + seed + (i >> 10));
        cas_digest_of(t->bytes, n, &t->digest);
        cas_outboard_of(t->bytes, n, t->ob);
        return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct fz_service s = { .base.ops = &fz_ops };
        const struct truth *t;
        struct cas_vblob *v = NULL;
        uint8_t *truth, *buf;
        uint32_t n, seed;
        size_t i;

        if (size < 3)
                return 0;
        log_set_max_level(LOG_LEVEL_ERR - 1);
        n = sizes[data[0] % ELEMENTSOF(sizes)];
        seed = data[1] | (uint32_t) data[2] << 8;
        t = truth_of(n, seed);
        truth = t->bytes;
        s.stored = malloc(n + 1);
        s.ob_len = cas_outboard_len(n);
        s.ob = (data[0] & 0x80) ? NULL : malloc(s.ob_len + 1); /* no stored outboard: built on open */
        buf = malloc(3 * CAS_GROUP_SIZE + 1);
        if (!s.stored || !buf)
                abort();
        s.digest = t->digest;
        memcpy(s.stored, truth, n);
        s.size = s.stored_len = n;
        if (s.ob)
                memcpy(s.ob, t->ob, s.ob_len);
        i = 3 + mutate(data + 3, size - 3, s.stored, n);
        if (s.ob)
                i += mutate(data + i, size - i, s.ob, s.ob_len);
        if (i < size && data[i] & 1) /* a short stored blob */
                s.stored_len = n / 2;

        if (cas_vblob_open(&s.base, &s.digest, n, &v) == 0) {
                for (; i + 7 <= size; i += 7) {
                        uint32_t off = le32(data + i) % (n + 2);
                        uint32_t len = (data[i + 4] | (uint32_t) data[i + 5] << 8 | (uint32_t) data[i + 6] << 16) %
                                       (3 * CAS_GROUP_SIZE + 1);
                        ssize_t got = cas_vblob_pread(v, buf, len, off);

                        if (got < 0 && got != -EBADMSG)
                                abort();
                        if (got > 0 && ((uint64_t) off + (uint64_t) got > n || memcmp(buf, truth + off, (size_t) got) != 0))
                                abort(); /* a byte that is not T's */
                }
                cas_vblob_close(v);
        }
        free(s.stored);
        free(s.ob);
        free(buf);
        return 0;
}
