/* Reading the object-store blob service: a single-chunk blob is fetched
 * whole and checked against its digest; a larger one reads its index and
 * fetches, per range read, only the chunks the range covers, each checked
 * against its chunk digest (the whole-blob guarantee is vblob's, through
 * the outboard). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blob_objstore_int.h"
#include "castore/outboard.h"
#include "util/log.h"

struct objstore_reader {
        struct cas_blob_reader base;
        struct blob_objstore *s;
        uint8_t *whole;            /* a single-chunk blob, verified; else NULL */
        uint8_t *ob;               /* its outboard, computed from whole */
        struct chunk_ref *chunks;  /* immutable: the index, NULL with whole */
        size_t n;
        pthread_mutex_t lock;
        size_t last;       /* lock: which chunk last_data holds */
        uint8_t *last_data; /* lock: the last chunk fetched (checked), or NULL */
};

/* Copies n bytes at `from` of chunk i into dst, fetching the chunk unless
 * it is the one kept from the last fetch.  No lock across the fetch. */
static int chunk_copy(struct objstore_reader *rd, size_t i, uint8_t *dst, uint64_t from, size_t n) {
        const struct chunk_ref *c = &rd->chunks[i];
        uint8_t *data, *old;
        size_t len;
        int r;

        pthread_mutex_lock(&rd->lock);
        if (rd->last_data && rd->last == i) {
                memcpy(dst, rd->last_data + from, n);
                pthread_mutex_unlock(&rd->lock);
                return 0;
        }
        pthread_mutex_unlock(&rd->lock);
        r = objstore_chunk_get(rd->s, &c->digest, &data, &len);
        if (r == -ENOENT)
                r = log_error_errno(-EIO, "blob %s: its chunk %s is missing", CAS_DIGEST_B3(&rd->base.digest),
                                    CAS_DIGEST_B3(&c->digest));
        if (r < 0)
                return r;
        if (len != c->size) {
                free(data);
                return log_error_errno(-EBADMSG, "blob %s: chunk %s has %zu bytes, its index says %" PRIu64,
                                       CAS_DIGEST_B3(&rd->base.digest), CAS_DIGEST_B3(&c->digest), len, c->size);
        }
        memcpy(dst, data + from, n);
        pthread_mutex_lock(&rd->lock);
        old = rd->last_data;
        rd->last_data = data;
        rd->last = i;
        pthread_mutex_unlock(&rd->lock);
        free(old);
        return 0;
}

/* The chunk holding byte off (< size). */
static size_t chunk_at(const struct objstore_reader *rd, uint64_t off) {
        size_t lo = 0, hi = rd->n;

        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;

                if (rd->chunks[mid].off <= off)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

static ssize_t objstore_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        struct objstore_reader *rd = (struct objstore_reader *) r;
        size_t done = 0;

        if (off >= r->size)
                return 0;
        len = (size_t) MIN((uint64_t) len, r->size - off);
        if (rd->whole) {
                memcpy(buf, rd->whole + off, len);
                return (ssize_t) len;
        }
        for (size_t i = chunk_at(rd, off); done < len; i++) {
                const struct chunk_ref *c = &rd->chunks[i];
                uint64_t from = off + done - c->off;
                size_t n = (size_t) MIN((uint64_t) (len - done), c->size - from);
                int e = chunk_copy(rd, i, (uint8_t *) buf + done, from, n);

                if (e < 0)
                        return e;
                done += n;
        }
        return (ssize_t) done;
}

static void objstore_reader_close(struct cas_blob_reader *r) {
        struct objstore_reader *rd = (struct objstore_reader *) r;

        free(rd->whole);
        free(rd->ob);
        free(rd->chunks);
        free(rd->last_data);
        pthread_mutex_destroy(&rd->lock);
        free(rd);
}

static const struct cas_blob_reader_ops objstore_reader_ops = {
        .pread = objstore_pread,
        .close = objstore_reader_close,
};

/* A single-chunk blob: verified whole, its outboard computed here. */
static int reader_whole(struct objstore_reader *rd, uint8_t *data, size_t len) {
        rd->whole = data;
        rd->base.data = data;
        rd->base.size = len;
        rd->base.verified = true;
        if (cas_outboard_len(len) > 0) {
                rd->ob = malloc(cas_outboard_len(len));
                if (!rd->ob)
                        return -ENOMEM;
                cas_outboard_of(data, len, rd->ob);
                rd->base.outboard = rd->ob;
                rd->base.outboard_len = cas_outboard_len(len);
        }
        return 0;
}

int objstore_open(struct cas_blob_service *bs, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct blob_objstore *s = to_objstore(bs);
        struct objstore_reader *rd = calloc(1, sizeof(*rd));
        uint8_t *data;
        size_t len;
        int r;

        if (!rd)
                return -ENOMEM;
        rd->base = (struct cas_blob_reader){ .ops = &objstore_reader_ops, .digest = *d, .fd = -1 };
        rd->s = s;
        pthread_mutex_init(&rd->lock, NULL);
        r = objstore_chunk_get(s, d, &data, &len); /* a single-chunk blob is its chunk */
        if (r >= 0)
                r = reader_whole(rd, data, len);
        else if (r == -ENOENT) {
                r = objstore_index_get(s, d, &rd->chunks, &rd->n, &rd->base.size);
                /* an index naming no chunk stands for its (missing) chunk,
                 * unless the blob is the empty one, which snix never stores */
                if (r >= 0 && rd->n == 0 && !cas_digest_equal(d, &cas_digest_empty))
                        r = log_error_errno(-EIO, "blob %s: its index names no chunk and it has no chunk",
                                            CAS_DIGEST_B3(d));
        }
        if (r < 0) {
                objstore_reader_close(&rd->base);
                return r;
        }
        *ret = &rd->base;
        return 0;
}

int objstore_stat(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
        int r = objstore_open(s, d, &rd);

        if (r < 0)
                return r;
        *ret_size = rd->size;
        return 0;
}
