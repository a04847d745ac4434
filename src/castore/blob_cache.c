/* A write-back blob cache: a near service (the local store) in front of a
 * far one (a remote daemon).  Reads come from near; a blob near lacks is
 * fetched from far, stored near (hashed again on the way in: a blob that
 * does not hash to its digest is removed and never served; not synced,
 * since it can be fetched again) and read from there.  Writes go to far first, then near, so that what near holds was
 * accepted by far. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "castore/blobsvc.h"
#include "castore/cache.h"
#include "util/log.h"
#include "util/workqueue.h"

#define COPY_BUF (1u << 20)
/* Prefetching: fetches at once, and how many may wait. */
#define PREFETCH_THREADS 8
#define PREFETCH_QUEUE 65536

struct cache_blobs {
        struct cas_blob_service base;
        struct cas_blob_service *near; /* borrowed */
        struct cas_blob_service *far;  /* owned */
        pthread_mutex_t lock;
        struct workqueue *prefetch; /* started at the first prefetch (lock) */
};

static const struct cas_blob_ops cache_ops;

struct prefetch_job {
        struct cache_blobs *s;
        struct cas_digest digest;
};

struct tee_writer {
        struct cas_blob_writer base;
        struct cas_blob_writer *near, *far;
};

static struct cache_blobs *to_cache(struct cas_blob_service *s) {
        return (struct cache_blobs *) s;
}

static int cache_stat(struct cas_blob_service *bs, const struct cas_digest *d, uint64_t *ret_size) {
        struct cache_blobs *s = to_cache(bs);
        int r = cas_blob_stat(s->near, d, ret_size);
        return r == -ENOENT ? cas_blob_stat(s->far, d, ret_size) : r;
}

/* Copies blob d from far into near. */
static int fill(struct cache_blobs *s, const struct cas_digest *d) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
        _cleanup_(cas_blob_abortp) struct cas_blob_writer *w = NULL;
        _cleanup_free_ uint8_t *buf = malloc(COPY_BUF);
        struct cas_digest got;
        int r;

        if (!buf)
                return -ENOMEM;
        r = cas_blob_writer_new(s->near, CAS_BLOB_NO_SYNC, &w);
        if (r < 0)
                return r;
        if (s->far->ops->fetch_into)
                r = s->far->ops->fetch_into(s->far, d, w); /* streamed: hashed once, by w */
        else
                r = cas_blob_open(s->far, d, &rd);
        for (uint64_t off = 0; r >= 0 && rd;) {
                ssize_t n = cas_blob_pread(rd, buf, COPY_BUF, off);
                if (n <= 0) {
                        r = (int) n;
                        break;
                }
                r = cas_blob_write(w, buf, (size_t) n);
                off += (uint64_t) n;
        }
        if (r < 0)
                return r;
        r = cas_blob_commit(TAKE_PTR(w), &got, NULL);
        if (r < 0)
                return r;
        if (!cas_digest_equal(&got, d)) {
                (void) cas_blob_remove(s->near, &got);
                return log_error_errno(-EBADMSG, "Fetched blob %s hashes to %s: not cached", CAS_DIGEST_B3(d),
                                       CAS_DIGEST_B3(&got));
        }
        return 0;
}

static int cache_open(struct cas_blob_service *bs, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct cache_blobs *s = to_cache(bs);
        int r = cas_blob_open(s->near, d, ret);
        if (r != -ENOENT)
                return r;
        r = fill(s, d);
        if (r < 0)
                return r;
        return cas_blob_open(s->near, d, ret);
}

static int cache_put(struct cas_blob_service *bs, const void *data, size_t len, unsigned flags,
                     struct cas_digest *ret_digest) {
        struct cache_blobs *s = to_cache(bs);
        int r = cas_blob_put(s->far, data, len, 0, ret_digest);
        if (r < 0)
                return r;
        return cas_blob_put(s->near, data, len, flags, ret_digest);
}

static int tee_write(struct cas_blob_writer *bw, const void *buf, size_t len) {
        struct tee_writer *w = (struct tee_writer *) bw;
        int r = cas_blob_write(w->far, buf, len);
        return r < 0 ? r : cas_blob_write(w->near, buf, len);
}

static void tee_abort(struct cas_blob_writer *bw) {
        struct tee_writer *w = (struct tee_writer *) bw;
        cas_blob_abort(w->far);
        cas_blob_abort(w->near);
        free(w);
}

static int tee_commit(struct cas_blob_writer *bw, struct cas_digest *ret_digest, uint64_t *ret_size) {
        struct tee_writer *w = (struct tee_writer *) bw;
        int r = cas_blob_commit(TAKE_PTR(w->far), ret_digest, ret_size);
        if (r >= 0)
                r = cas_blob_commit(TAKE_PTR(w->near), ret_digest, ret_size);
        tee_abort(bw);
        return r;
}

static const struct cas_blob_writer_ops tee_ops = { .write = tee_write, .commit = tee_commit, .abort = tee_abort };

static int cache_writer_new(struct cas_blob_service *bs, unsigned flags, struct cas_blob_writer **ret) {
        struct cache_blobs *s = to_cache(bs);
        struct tee_writer *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        w->base.ops = &tee_ops;
        r = cas_blob_writer_new(s->far, 0, &w->far);
        if (r >= 0)
                r = cas_blob_writer_new(s->near, flags, &w->near);
        if (r < 0) {
                tee_abort(&w->base);
                return r;
        }
        *ret = &w->base;
        return 0;
}

static int cache_sync(struct cas_blob_service *bs) {
        return cas_blob_sync(to_cache(bs)->near);
}

static int cache_list(struct cas_blob_service *bs, cas_blob_list_cb cb, void *userdata) {
        return cas_blob_list(to_cache(bs)->near, cb, userdata);
}

static int cache_remove(struct cas_blob_service *bs, const struct cas_digest *d) {
        return cas_blob_remove(to_cache(bs)->near, d);
}

/* Like the listing: the cache's own blobs. */
static int cache_disk_usage(struct cas_blob_service *bs, const struct cas_digest *d, uint64_t *ret_bytes) {
        return cas_blob_disk_usage(to_cache(bs)->near, d, ret_bytes);
}

static int cache_outboard_get(struct cas_blob_service *bs, const struct cas_digest *d, uint8_t **ret,
                              size_t *ret_len) {
        return cas_blob_outboard_get(to_cache(bs)->near, d, ret, ret_len);
}

static int cache_outboard_put(struct cas_blob_service *bs, const struct cas_digest *d, const uint8_t *ob,
                              size_t len) {
        return cas_blob_outboard_put(to_cache(bs)->near, d, ob, len);
}

static void prefetch_run(void *arg) {
        struct prefetch_job *j = arg;
        uint64_t size;

        if (cas_blob_stat(j->s->near, &j->digest, &size) == -ENOENT) {
                int r = fill(j->s, &j->digest);
                if (r < 0)
                        log_debug_errno(r, "Prefetch of blob %s: %m", CAS_DIGEST_B3(&j->digest));
        }
        free(j);
}

int cas_blob_cache_prefetch(struct cas_blob_service *bs, const struct cas_digest *d) {
        struct cache_blobs *s = to_cache(bs);
        struct prefetch_job *j;
        int r = 0;

        if (bs->ops != &cache_ops)
                return -EINVAL;
        pthread_mutex_lock(&s->lock);
        if (!s->prefetch)
                r = workqueue_new(PREFETCH_THREADS, PREFETCH_QUEUE, &s->prefetch);
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
                return r;
        j = malloc(sizeof(*j));
        if (!j)
                return -ENOMEM;
        *j = (struct prefetch_job){ .s = s, .digest = *d };
        r = workqueue_try_push(s->prefetch, prefetch_run, j);
        if (r < 0)
                free(j); /* a full queue: reads will fetch it */
        return r;
}

static void cache_free(struct cas_blob_service *bs) {
        struct cache_blobs *s = to_cache(bs);
        if (s->prefetch) {
                workqueue_discard(s->prefetch, free);
                workqueue_free(s->prefetch); /* waits for the fetches under way */
        }
        cas_blob_service_free(s->far);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

static const struct cas_blob_ops cache_ops = {
        .name = "cache",
        .remote = true,
        .stat = cache_stat,
        .open = cache_open,
        .put = cache_put,
        .writer_new = cache_writer_new,
        .sync = cache_sync,
        .list = cache_list,
        .remove = cache_remove,
        .disk_usage = cache_disk_usage,
        .outboard_get = cache_outboard_get,
        .outboard_put = cache_outboard_put,
        .free = cache_free,
};

int cas_blob_cache_new(struct cas_blob_service *near, struct cas_blob_service *far, struct cas_blob_service **ret) {
        struct cache_blobs *s = calloc(1, sizeof(*s));
        if (!s) {
                cas_blob_service_free(far);
                return -ENOMEM;
        }
        s->base.ops = &cache_ops;
        s->near = near;
        s->far = far;
        pthread_mutex_init(&s->lock, NULL);
        *ret = &s->base;
        return 0;
}
