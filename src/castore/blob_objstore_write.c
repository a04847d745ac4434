/* Writing to the object-store blob service: the stream is cut with
 * FastCDC as it arrives; each chunk is compressed and uploaded unless its
 * object exists, up to UPLOADS_MAX chunks at once on threads of their own
 * (a remote object store answers in milliseconds, not microseconds), so at
 * most that many chunk copies are held; at commit every upload is waited
 * for, then the outboard, then the index go up, so an index never names
 * what is not stored. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blob_objstore_int.h"
#include "castore/fastcdc.h"
#include "castore/outboard.h"

/* Whether blob d is stored: its chunk or its index exists. */
static int exists(struct blob_objstore *s, const struct cas_digest *d) {
        char key[KEY_MAX];
        int r;

        objstore_key(key, "chunks", d);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r != -ENOENT)
                return r < 0 ? r : 1;
        objstore_key(key, "blobs", d);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r != -ENOENT)
                return r < 0 ? r : 1;
        return 0;
}

#define UPLOADS_MAX 4

/* One chunk being uploaded by a thread of its own. */
struct upload {
        pthread_t thread;
        struct blob_objstore *s;
        uint8_t *data; /* owned by the thread until joined */
        size_t len;
        int result; /* set by the thread */
};

static void *upload_run(void *userdata) {
        struct upload *u = userdata;
        struct cas_digest d;

        u->result = objstore_chunk_put(u->s, u->data, u->len, &d);
        return NULL;
}

struct objstore_writer {
        struct cas_blob_writer base;
        struct upload uploads[UPLOADS_MAX]; /* a ring: the oldest at first */
        size_t first, n_uploads;
        struct blob_objstore *s;
        struct cas_fastcdc cdc;
        struct cas_outboard_builder hasher; /* the blob's digest and outboard */
        struct chunk_ref *chunks;
        size_t n, cap;
        uint64_t size;
        int error; /* the first failure: a chunk may be missing, nothing can be committed */
};

/* Waits for the oldest upload; its result. */
static int upload_join(struct objstore_writer *w) {
        struct upload *u = &w->uploads[w->first];

        pthread_join(u->thread, NULL);
        free(u->data);
        u->data = NULL;
        w->first = (w->first + 1) % UPLOADS_MAX;
        w->n_uploads--;
        return u->result;
}

static int uploads_wait(struct objstore_writer *w) {
        int r = 0, k;

        while (w->n_uploads > 0) {
                k = upload_join(w);
                r = MIN(r, k);
        }
        return r;
}

/* Uploads a copy of the chunk on a thread, once fewer than UPLOADS_MAX
 * are running; uploads it here if no thread can be made. */
static int upload_start(struct objstore_writer *w, const uint8_t *data, size_t len) {
        struct upload *u;
        struct cas_digest d;
        int r;

        if (w->n_uploads == UPLOADS_MAX) {
                r = upload_join(w);
                if (r < 0)
                        return r;
        }
        u = &w->uploads[(w->first + w->n_uploads) % UPLOADS_MAX];
        *u = (struct upload) { .s = w->s, .len = len, .data = malloc(len ? len : 1) };
        if (!u->data)
                return objstore_chunk_put(w->s, data, len, &d);
        memcpy(u->data, data, len);
        if (pthread_create(&u->thread, NULL, upload_run, u) != 0) {
                free(u->data);
                u->data = NULL;
                return objstore_chunk_put(w->s, data, len, &d);
        }
        w->n_uploads++;
        return 0;
}

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
        cas_digest_of(data, len, &w->chunks[w->n].digest);
        r = upload_start(w, data, len);
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
        int r;

        if (w->error < 0)
                return w->error;
        cas_outboard_builder_update(&w->hasher, buf, len);
        r = cas_fastcdc_push(&w->cdc, buf, len, writer_chunk, w);
        w->error = MIN(r, 0);
        return w->error;
}

static void objstore_abort(struct cas_blob_writer *bw) {
        struct objstore_writer *w = (struct objstore_writer *) bw;

        (void) uploads_wait(w);
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
                return objstore_chunk_put(w->s, (const uint8_t *) "", 0, &empty);
        if (w->n == 1) {
                assert(cas_digest_equal(&w->chunks[0].digest, d));
                return 0;
        }
        if (oblen > 0) {
                objstore_key(key, "outboards", d);
                r = cas_objstore_put(w->s->objs, key, ob, oblen);
                if (r < 0)
                        return r;
        }
        return objstore_index_put(w->s, d, w->chunks, w->n);
}

static int objstore_commit(struct cas_blob_writer *bw, struct cas_digest *ret_digest, uint64_t *ret_size) {
        struct objstore_writer *w = (struct objstore_writer *) bw;
        _cleanup_free_ uint8_t *ob = NULL;
        struct cas_digest d;
        size_t oblen = 0;
        int r, k;

        r = w->error;
        if (r >= 0)
                r = cas_fastcdc_finish(&w->cdc, writer_chunk, w);
        k = uploads_wait(w);
        r = MIN(r, k);
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

int objstore_writer_new(struct cas_blob_service *bs, unsigned flags, struct cas_blob_writer **ret) {
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

/* A blob shorter than the chunker's minimum is one chunk keyed by the
 * blob's digest (and needs no index): one HEAD, then one PUT if absent. */
static int put_one_chunk(struct blob_objstore *s, const void *data, size_t len, const struct cas_digest *d) {
        char key[KEY_MAX];
        int r;

        objstore_key(key, "chunks", d);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r == -ENOENT)
                r = objstore_chunk_upload(s, data, len, d);
        return r;
}

/* Cheap when the blob is stored: two HEADs at most. */
int objstore_put(struct cas_blob_service *bs, const void *data, size_t len, unsigned flags,
                        struct cas_digest *ret_digest) {
        _cleanup_(cas_blob_abortp) struct cas_blob_writer *w = NULL;
        struct cas_digest d;
        int r;

        cas_digest_of(data, len, &d);
        if (len > 0 && len < to_objstore(bs)->avg / 2) {
                r = put_one_chunk(to_objstore(bs), data, len, &d);
                if (r >= 0)
                        *ret_digest = d;
                return r;
        }
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
