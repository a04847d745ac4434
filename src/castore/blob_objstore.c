/* objectstore+… blob service (blob_objstore.h).  Writes: the stream is cut
 * with FastCDC as it arrives; each chunk is compressed and uploaded unless
 * its object exists; at commit the outboard, then the index go up, so an
 * index never names what is not stored.  Reads: a single-chunk blob is
 * fetched whole and checked against its digest; a larger one reads its
 * index and fetches, per range read, only the chunks the range covers,
 * each checked against its chunk digest.  The index is untrusted: the
 * whole-blob guarantee comes from verified reads (vblob.h) through the
 * outboard, itself checked against the blob digest. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "rpc_blobstore.pb-c.h"
#include "castore/blob_objstore.h"
#include "castore/fastcdc.h"
#include "castore/outboard.h"
#include "util/hex.h"
#include "util/log.h"

/* Limits on what the store may hand us (its objects are untrusted). */
#define CHUNK_MAX (16u << 20)               /* the Rust crate's largest maximum */
#define OBJECT_MAX (CHUNK_MAX + (1u << 20)) /* a compressed chunk */
#define INDEX_MAX (64u << 20)
#define OUTBOARD_MAX (256u << 20)           /* a blob of 128 TiB */
#define KEY_MAX 96

#define PREFIX "objectstore+"

struct blob_objstore {
        struct cas_blob_service base;
        struct cas_objstore *objs; /* owned; thread-safe */
        size_t avg;                /* immutable */
};

struct chunk_ref {
        struct cas_digest digest;
        uint64_t off, size;
};

static const struct cas_blob_ops objstore_ops;

static struct blob_objstore *to_objstore(struct cas_blob_service *s) {
        return (struct blob_objstore *) s;
}

/* kind/b3/<first 2 bytes in hex>/<hex digest> */
static void key_of(char *ret, const char *kind, const struct cas_digest *d) {
        const char *hex = CAS_DIGEST_HEX(d);

        snprintf(ret, KEY_MAX, "%s/b3/%.4s/%s", kind, hex, hex);
}

/* ---- chunks ---- */

/* Decompresses one or more zstd frames (with or without their content
 * size: snix's streaming encoder leaves it out) into at most max bytes:
 * -EBADMSG for anything else. */
static int unzstd(const uint8_t *in, size_t len, size_t max, uint8_t **ret, size_t *ret_len) {
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        unsigned long long hint = ZSTD_getFrameContentSize(in, len);
        size_t cap = hint < max ? (size_t) hint + 1 : 256u << 10;
        ZSTD_inBuffer ib = { in, len, 0 };
        ZSTD_outBuffer ob = { malloc(cap), cap, 0 };
        int r = dctx && ob.dst ? 0 : -ENOMEM;

        while (r >= 0) {
                if (ob.pos == ob.size) {
                        void *p = ob.size > max ? NULL : realloc(ob.dst, ob.size * 2);

                        if (!p) {
                                r = ob.size > max ? -EBADMSG : -ENOMEM;
                                break;
                        }
                        ob.dst = p;
                        ob.size *= 2;
                }
                size_t in_before = ib.pos, out_before = ob.pos;
                size_t z = ZSTD_decompressStream(dctx, &ob, &ib);
                if (ZSTD_isError(z))
                        r = -EBADMSG;
                else if (z == 0 && ib.pos == ib.size)
                        break; /* every frame complete */
                else if (ib.pos == in_before && ob.pos == out_before)
                        r = -EBADMSG; /* no progress with room to write: truncated */
        }
        if (r >= 0 && ob.pos > max)
                r = -EBADMSG;
        ZSTD_freeDCtx(dctx);
        if (r < 0) {
                free(ob.dst);
                return r;
        }
        *ret = ob.dst;
        *ret_len = ob.pos;
        return 0;
}

/* Chunk d, decompressed and checked to hash to d (malloc'ed): -ENOENT,
 * -EBADMSG (not zstd, too large, other bytes), or the store's error. */
static int chunk_get(struct blob_objstore *s, const struct cas_digest *d, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ uint8_t *z = NULL, *data = NULL;
        char key[KEY_MAX];
        struct cas_digest got;
        size_t zlen, len;
        int r;

        key_of(key, "chunks", d);
        r = cas_objstore_get(s->objs, key, OBJECT_MAX, &z, &zlen);
        if (r == -EFBIG)
                r = -EBADMSG;
        if (r < 0)
                return r;
        r = unzstd(z, zlen, CHUNK_MAX, &data, &len);
        if (r < 0)
                return log_error_errno(r, "chunk %s: not a zstd frame of at most %u bytes", key, CHUNK_MAX);
        cas_digest_of(data, len, &got);
        if (!cas_digest_equal(&got, d))
                return log_error_errno(-EBADMSG, "chunk %s: its content does not hash to its name", key);
        *ret = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}

/* Stores a chunk unless its object exists. */
static int chunk_put(struct blob_objstore *s, const uint8_t *data, size_t len, struct cas_digest *ret) {
        _cleanup_free_ uint8_t *z = NULL;
        char key[KEY_MAX];
        size_t zlen;
        int r;

        cas_digest_of(data, len, ret);
        key_of(key, "chunks", ret);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r != -ENOENT)
                return r;
        z = malloc(ZSTD_compressBound(len));
        if (!z)
                return -ENOMEM;
        zlen = ZSTD_compress(z, ZSTD_compressBound(len), data, len, ZSTD_CLEVEL_DEFAULT);
        if (ZSTD_isError(zlen))
                return log_error_errno(-EIO, "chunk %s: zstd: %s", key, ZSTD_getErrorName(zlen));
        return cas_objstore_put(s->objs, key, z, zlen);
}

/* ---- blob indexes ---- */

static int index_put(struct blob_objstore *s, const struct cas_digest *d, const struct chunk_ref *v, size_t n) {
        Tvix__Castore__V1__StatBlobResponse msg = TVIX__CASTORE__V1__STAT_BLOB_RESPONSE__INIT;
        _cleanup_free_ Tvix__Castore__V1__StatBlobResponse__ChunkMeta *metas = calloc(n, sizeof(*metas));
        _cleanup_free_ Tvix__Castore__V1__StatBlobResponse__ChunkMeta **ptrs = calloc(n, sizeof(*ptrs));
        _cleanup_free_ uint8_t *buf = NULL;
        char key[KEY_MAX];
        size_t len;

        if (!metas || !ptrs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                tvix__castore__v1__stat_blob_response__chunk_meta__init(&metas[i]);
                metas[i].digest.data = (uint8_t *) v[i].digest.b;
                metas[i].digest.len = CAS_DIGEST_LEN;
                metas[i].size = v[i].size;
                ptrs[i] = &metas[i];
        }
        msg.n_chunks = n;
        msg.chunks = ptrs;
        len = tvix__castore__v1__stat_blob_response__get_packed_size(&msg);
        buf = malloc(len);
        if (!buf)
                return -ENOMEM;
        tvix__castore__v1__stat_blob_response__pack(&msg, buf);
        key_of(key, "blobs", d);
        return cas_objstore_put(s->objs, key, buf, len);
}

/* Blob d's index: its chunks with their offsets (malloc'ed, NULL for an
 * empty list: snix writes one for a single-chunk blob) and the blob's
 * size.  -ENOENT, -EBADMSG (undecodable, an empty chunk, a bad digest,
 * sizes that overflow), or the store's error. */
static int index_get(struct blob_objstore *s, const struct cas_digest *d, struct chunk_ref **ret, size_t *ret_n,
                     uint64_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ struct chunk_ref *v = NULL;
        Tvix__Castore__V1__StatBlobResponse *msg;
        char key[KEY_MAX];
        uint64_t off = 0;
        size_t len;
        int r;

        key_of(key, "blobs", d);
        r = cas_objstore_get(s->objs, key, INDEX_MAX, &buf, &len);
        if (r == -EFBIG)
                r = -EBADMSG;
        if (r < 0)
                return r;
        msg = tvix__castore__v1__stat_blob_response__unpack(NULL, len, buf);
        if (!msg)
                return log_error_errno(-EBADMSG, "blob index %s: not a StatBlobResponse", key);
        r = 0;
        if (msg->n_chunks > 0 && !(v = calloc(msg->n_chunks, sizeof(*v))))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < msg->n_chunks; i++) {
                const Tvix__Castore__V1__StatBlobResponse__ChunkMeta *m = msg->chunks[i];

                r = cas_digest_from_bytes(m->digest.data, m->digest.len, &v[i].digest);
                if (r < 0 || m->size == 0 || m->size > CHUNK_MAX || off + m->size < off)
                        r = -EBADMSG;
                v[i].off = off;
                v[i].size = m->size;
                off += m->size;
        }
        size_t n = msg->n_chunks;
        tvix__castore__v1__stat_blob_response__free_unpacked(msg, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : log_error_errno(-EBADMSG, "blob index %s: a bad chunk list", key);
        *ret = TAKE_PTR(v);
        *ret_n = n;
        *ret_size = off;
        return 0;
}

/* ---- readers ---- */

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
        r = chunk_get(rd->s, &c->digest, &data, &len);
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

static int objstore_open(struct cas_blob_service *bs, const struct cas_digest *d, struct cas_blob_reader **ret) {
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
        r = chunk_get(s, d, &data, &len); /* a single-chunk blob is its chunk */
        if (r >= 0)
                r = reader_whole(rd, data, len);
        else if (r == -ENOENT) {
                r = index_get(s, d, &rd->chunks, &rd->n, &rd->base.size);
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

static int objstore_stat(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
        int r = objstore_open(s, d, &rd);

        if (r < 0)
                return r;
        *ret_size = rd->size;
        return 0;
}

/* Whether blob d is stored: its chunk or its index exists. */
static int exists(struct blob_objstore *s, const struct cas_digest *d) {
        char key[KEY_MAX];
        int r;

        key_of(key, "chunks", d);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r != -ENOENT)
                return r < 0 ? r : 1;
        key_of(key, "blobs", d);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r != -ENOENT)
                return r < 0 ? r : 1;
        return 0;
}

/* ---- writers ---- */

struct objstore_writer {
        struct cas_blob_writer base;
        struct blob_objstore *s;
        struct cas_fastcdc cdc;
        struct cas_outboard_builder hasher; /* the blob's digest and outboard */
        struct chunk_ref *chunks;
        size_t n, cap;
        uint64_t size;
        int error; /* the first failure: a chunk may be missing, nothing can be committed */
};

static int writer_chunk(void *userdata, const uint8_t *data, size_t len) {
        struct objstore_writer *w = userdata;
        int r;

        if (w->n == w->cap) {
                size_t cap = w->cap ? 2 * w->cap : 16;
                struct chunk_ref *v = reallocarray(w->chunks, cap, sizeof(*v));

                if (!v)
                        return -ENOMEM;
                w->chunks = v;
                w->cap = cap;
        }
        r = chunk_put(w->s, data, len, &w->chunks[w->n].digest);
        if (r < 0)
                return r;
        w->chunks[w->n].off = w->size;
        w->chunks[w->n].size = len;
        w->size += len;
        w->n++;
        return 0;
}

static int objstore_write(struct cas_blob_writer *bw, const void *buf, size_t len) {
        struct objstore_writer *w = (struct objstore_writer *) bw;

        if (w->error < 0)
                return w->error;
        cas_outboard_builder_update(&w->hasher, buf, len);
        w->error = MIN(cas_fastcdc_push(&w->cdc, buf, len, writer_chunk, w), 0);
        return w->error;
}

static void objstore_abort(struct cas_blob_writer *bw) {
        struct objstore_writer *w = (struct objstore_writer *) bw;

        cas_fastcdc_done(&w->cdc);
        cas_outboard_builder_done(&w->hasher);
        free(w->chunks);
        free(w);
}

/* Stores what makes blob d of w's chunks readable: for two chunks or
 * more, the outboard (if any) and then the index. */
static int writer_finish(struct objstore_writer *w, const struct cas_digest *d, const uint8_t *ob, size_t oblen) {
        char key[KEY_MAX];
        struct cas_digest empty;
        int r;

        if (w->n == 0) /* the empty blob: its (empty) chunk is the blob */
                return chunk_put(w->s, (const uint8_t *) "", 0, &empty);
        if (w->n == 1) {
                assert(cas_digest_equal(&w->chunks[0].digest, d));
                return 0;
        }
        if (oblen > 0) {
                key_of(key, "outboards", d);
                r = cas_objstore_put(w->s->objs, key, ob, oblen);
                if (r < 0)
                        return r;
        }
        return index_put(w->s, d, w->chunks, w->n);
}

static int objstore_commit(struct cas_blob_writer *bw, struct cas_digest *ret_digest, uint64_t *ret_size) {
        struct objstore_writer *w = (struct objstore_writer *) bw;
        _cleanup_free_ uint8_t *ob = NULL;
        struct cas_digest d;
        size_t oblen = 0;
        int r;

        r = w->error;
        if (r >= 0)
                r = cas_fastcdc_finish(&w->cdc, writer_chunk, w);
        if (r >= 0)
                r = cas_outboard_builder_final(&w->hasher, &d, &ob, &oblen);
        if (r >= 0)
                r = writer_finish(w, &d, ob, oblen);
        if (r >= 0) {
                *ret_digest = d;
                if (ret_size)
                        *ret_size = w->size;
        }
        objstore_abort(bw);
        return r;
}

static const struct cas_blob_writer_ops objstore_writer_ops = {
        .write = objstore_write,
        .commit = objstore_commit,
        .abort = objstore_abort,
};

static int objstore_writer_new(struct cas_blob_service *bs, unsigned flags, struct cas_blob_writer **ret) {
        struct objstore_writer *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->base.ops = &objstore_writer_ops;
        w->s = to_objstore(bs);
        cas_outboard_builder_init(&w->hasher);
        r = cas_fastcdc_init(&w->cdc, w->s->avg);
        if (r < 0) {
                objstore_abort(&w->base);
                return r;
        }
        *ret = &w->base;
        return 0;
}

/* Cheap when the blob is stored: two HEADs at most. */
static int objstore_put(struct cas_blob_service *bs, const void *data, size_t len, unsigned flags,
                        struct cas_digest *ret_digest) {
        _cleanup_(cas_blob_abortp) struct cas_blob_writer *w = NULL;
        struct cas_digest d;
        int r;

        cas_digest_of(data, len, &d);
        r = exists(to_objstore(bs), &d);
        if (r > 0) {
                *ret_digest = d;
                return 0;
        }
        if (r >= 0)
                r = objstore_writer_new(bs, flags, &w);
        if (r >= 0)
                r = cas_blob_write(w, data, len);
        if (r < 0)
                return r;
        return cas_blob_commit(TAKE_PTR(w), ret_digest, NULL);
}

/* ---- listing and removal ---- */

/* The digest a key of kind/b3/<4 hex>/<64 hex> names, or -EINVAL (a
 * foreign object, skipped). */
static int key_digest(const char *key, struct cas_digest *ret) {
        const char *name = strrchr(key, '/');
        char want[KEY_MAX];

        if (!name || strlen(name + 1) != CAS_DIGEST_HEX_LEN || cas_digest_parse(name + 1, ret) < 0)
                return -EINVAL;
        key_of(want, "x", ret);
        return strcmp(strchr(want, '/'), strchr(strchr(key, '/'), '/')) == 0 ? 0 : -EINVAL;
}

struct digest_set {
        struct cas_digest *v;
        size_t n, cap;
};

static int set_add(struct digest_set *set, const struct cas_digest *d) {
        if (set->n == set->cap) {
                size_t cap = set->cap ? 2 * set->cap : 256;
                struct cas_digest *v = reallocarray(set->v, cap, sizeof(*v));

                if (!v)
                        return -ENOMEM;
                set->v = v;
                set->cap = cap;
        }
        set->v[set->n++] = *d;
        return 0;
}

static int digest_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN);
}

static bool set_has(const struct digest_set *set, const struct cas_digest *d) {
        return set->n > 0 && bsearch(d, set->v, set->n, sizeof(*d), digest_cmp);
}

struct scan {
        struct blob_objstore *s;
        struct digest_set blobs, used; /* indexed blobs, chunks their indexes name */
};

static int scan_index(void *userdata, const char *key) {
        struct scan *sc = userdata;
        _cleanup_free_ struct chunk_ref *v = NULL;
        struct cas_digest d;
        uint64_t size;
        size_t n;
        int r;

        if (key_digest(key, &d) < 0)
                return 0;
        r = index_get(sc->s, &d, &v, &n, &size);
        if (r == -ENOENT || r == -EBADMSG)
                return 0; /* removed meanwhile, or damaged: names nothing */
        if (r < 0)
                return r;
        r = set_add(&sc->blobs, &d);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = set_add(&sc->used, &v[i].digest);
        return r;
}

/* Reads every index: which blobs have one, which chunks they name. */
static int scan_indexes(struct blob_objstore *s, struct scan *ret) {
        *ret = (struct scan){ .s = s };
        int r = cas_objstore_list(s->objs, "blobs/b3/", scan_index, ret);

        if (r < 0) {
                free(ret->blobs.v);
                free(ret->used.v);
                return r;
        }
        if (ret->used.n > 0)
                qsort(ret->used.v, ret->used.n, sizeof(struct cas_digest), digest_cmp);
        if (ret->blobs.n > 0)
                qsort(ret->blobs.v, ret->blobs.n, sizeof(struct cas_digest), digest_cmp);
        return 0;
}

struct list_ctx {
        struct scan scan;
        struct digest_set single; /* chunks no index names: single-chunk blobs */
};

static int list_chunk(void *userdata, const char *key) {
        struct list_ctx *c = userdata;
        struct cas_digest d;

        if (key_digest(key, &d) < 0 || set_has(&c->scan.used, &d) || set_has(&c->scan.blobs, &d))
                return 0; /* a piece of a blob, or a blob listed by its index */
        return set_add(&c->single, &d);
}

/* The blobs are the indexes and the chunks no index names (a chunk that is
 * both a whole blob and a piece of another is listed as neither: nothing
 * lists it for removal).  A full scan: one GET per index. */
static int objstore_list(struct cas_blob_service *bs, cas_blob_list_cb cb, void *userdata) {
        struct blob_objstore *s = to_objstore(bs);
        struct list_ctx c = {};
        int r;

        r = scan_indexes(s, &c.scan);
        if (r < 0)
                return r;
        r = cas_objstore_list(s->objs, "chunks/b3/", list_chunk, &c);
        for (size_t i = 0; r >= 0 && i < c.scan.blobs.n; i++)
                r = cb(userdata, &c.scan.blobs.v[i]);
        for (size_t i = 0; r >= 0 && i < c.single.n; i++)
                r = cb(userdata, &c.single.v[i]);
        free(c.scan.blobs.v);
        free(c.scan.used.v);
        free(c.single.v);
        return r;
}

/* Removes chunk d unless an index names it (then it stays, as a piece of
 * that blob).  A full scan of the indexes. */
static int remove_chunk_unless_used(struct blob_objstore *s, const struct cas_digest *d, const char *key) {
        struct scan sc;
        int r = scan_indexes(s, &sc);

        if (r < 0)
                return r;
        bool used = set_has(&sc.used, d);
        free(sc.blobs.v);
        free(sc.used.v);
        if (used) {
                log_debug("blob %s: its chunk is kept, a piece of another blob", CAS_DIGEST_B3(d));
                return 0;
        }
        r = cas_objstore_remove(s->objs, key);
        return r == -ENOENT ? 0 : r;
}

/* A blob loses its index and outboard, and its chunk if it is a
 * single-chunk blob (see remove_chunk_unless_used).  The chunks of a
 * larger blob stay until they are listed (named by no index) and removed
 * in turn. */
static int objstore_remove(struct cas_blob_service *bs, const struct cas_digest *d) {
        struct blob_objstore *s = to_objstore(bs);
        char key[KEY_MAX];
        int r, found = 0;

        key_of(key, "blobs", d);
        r = cas_objstore_remove(s->objs, key);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r >= 0) {
                found = 1;
                key_of(key, "outboards", d);
                r = cas_objstore_remove(s->objs, key);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        key_of(key, "chunks", d);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r == -ENOENT)
                return found ? 0 : -ENOENT;
        if (r < 0)
                return r;
        return remove_chunk_unless_used(s, d, key);
}

/* ---- outboards ---- */

static int objstore_outboard_get(struct cas_blob_service *bs, const struct cas_digest *d, uint8_t **ret,
                                 size_t *ret_len) {
        char key[KEY_MAX];
        int r;

        key_of(key, "outboards", d);
        r = cas_objstore_get(to_objstore(bs)->objs, key, OUTBOARD_MAX, ret, ret_len);
        return r == -EFBIG ? -EBADMSG : r;
}

static int objstore_outboard_put(struct cas_blob_service *bs, const struct cas_digest *d, const uint8_t *ob,
                                 size_t len) {
        char key[KEY_MAX];

        key_of(key, "outboards", d);
        return cas_objstore_put(to_objstore(bs)->objs, key, ob, len);
}

static void objstore_free(struct cas_blob_service *bs) {
        struct blob_objstore *s = to_objstore(bs);

        cas_objstore_free(s->objs);
        free(s);
}

static const struct cas_blob_ops objstore_ops = {
        .name = "objectstore",
        .stat = objstore_stat,
        .open = objstore_open,
        .put = objstore_put,
        .writer_new = objstore_writer_new,
        .list = objstore_list,
        .remove = objstore_remove,
        .outboard_get = objstore_outboard_get,
        .outboard_put = objstore_outboard_put,
        .free = objstore_free,
};

int cas_blob_objstore_new(struct cas_objstore *objs, size_t avg, struct cas_blob_service **ret) {
        struct blob_objstore *s;

        if (!objs || !ret || avg < CAS_FASTCDC_AVG_MIN || avg > CAS_FASTCDC_AVG_MAX) {
                cas_objstore_free(objs);
                return -EINVAL;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                cas_objstore_free(objs);
                return -ENOMEM;
        }
        *s = (struct blob_objstore){ .base.ops = &objstore_ops, .objs = objs, .avg = avg };
        *ret = &s->base;
        return 0;
}

struct cas_objstore *cas_blob_objstore_objects(struct cas_blob_service *s) {
        return s && s->ops == &objstore_ops ? to_objstore(s)->objs : NULL;
}

bool cas_blob_url_is_objstore(const char *url) {
        return url && strncmp(url, PREFIX, strlen(PREFIX)) == 0;
}

/* Decodes %XX escapes in place: -EINVAL for a bad one. */
static int unescape(char *s) {
        char *out = s;

        for (; *s; s++) {
                if (*s != '%') {
                        *out++ = *s;
                        continue;
                }
                int hi = hex_digit_value(s[1]), lo = hi < 0 ? -1 : hex_digit_value(s[2]);
                if (lo < 0 || (hi == 0 && lo == 0))
                        return -EINVAL;
                *out++ = (char) (hi << 4 | lo);
                s += 2;
        }
        *out = 0;
        return 0;
}

static int parse_avg(const char *url, const char *v, size_t *ret) {
        char *end;
        unsigned long long n;

        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-' || n < CAS_FASTCDC_AVG_MIN || n > CAS_FASTCDC_AVG_MAX)
                return log_error_errno(-EINVAL, "%s: avg_chunk_size must be a number of bytes from %u to %u", url,
                                       CAS_FASTCDC_AVG_MIN, CAS_FASTCDC_AVG_MAX);
        *ret = (size_t) n;
        return 0;
}

int cas_blob_objstore_open(const char *url, struct cas_blob_service **ret) {
        _cleanup_free_ char *copy = NULL;
        _cleanup_free_ const char **opts = NULL;
        struct cas_objstore *objs = NULL;
        size_t avg = CAS_FASTCDC_AVG_DEFAULT, n = 0;
        char *query, *save = NULL;
        int r;

        if (!cas_blob_url_is_objstore(url) || !ret)
                return -EINVAL;
        copy = strdup(url + strlen(PREFIX));
        opts = calloc(strlen(url) + 2, sizeof(*opts));
        if (!copy || !opts)
                return -ENOMEM;
        query = strchr(copy, '?');
        if (query)
                *query++ = 0;
        for (char *kv = query ? strtok_r(query, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
                char *v = strchr(kv, '=');

                if (!v || unescape(v + 1) < 0)
                        return log_error_errno(-EINVAL, "%s: option \"%s\" is not key=value", url, kv);
                *v++ = 0;
                if (strcmp(kv, "avg_chunk_size") == 0) {
                        r = parse_avg(url, v, &avg);
                        if (r < 0)
                                return r;
                        continue;
                }
                opts[n++] = kv;
                opts[n++] = v;
        }
        r = cas_objstore_open(copy, opts, &objs);
        if (r < 0)
                return r;
        return cas_blob_objstore_new(objs, avg, ret);
}
