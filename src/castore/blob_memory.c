/* memory:// blob backend: blobs in a hash map under a rwlock.  Blobs are
 * never freed while the service lives (removed ones wait in a list until
 * it is freed: memory:// is for tests), so a reader points straight at the
 * stored bytes with no copy and no reference count. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "castore/blobsvc.h"

struct mem_blob {
        struct cas_digest digest;
        uint64_t size;
        uint8_t data[];
};

struct blob_memory {
        struct cas_blob_service base;
        pthread_rwlock_t lock;
        struct hashmap blobs; /* lock; struct mem_blob *, immutable once inserted */
        struct mem_blob **removed;     /* lock; freed with the service */
        size_t n_removed, cap_removed; /* lock */
};

struct mem_reader {
        struct cas_blob_reader base;
};

struct mem_writer {
        struct cas_blob_writer base;
        struct blob_memory *m;
        struct cas_hasher hasher;
        uint8_t *buf;
        size_t len, cap;
};

static bool blob_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct mem_blob *) entry)->digest, key);
}

static struct mem_blob *lookup(struct blob_memory *m, const struct cas_digest *d) {
        struct mem_blob *b;

        pthread_rwlock_rdlock(&m->lock);
        b = hashmap_get(&m->blobs, cas_digest_hash(d), d);
        pthread_rwlock_unlock(&m->lock);
        return b;
}

static int mem_stat(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size) {
        struct mem_blob *b = lookup((struct blob_memory *) s, d);

        if (!b)
                return -ENOENT;
        *ret_size = b->size;
        return 0;
}

static ssize_t mem_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        if (off >= r->size)
                return 0;
        len = MIN((uint64_t) len, r->size - off);
        memcpy(buf, r->data + off, len);
        return (ssize_t) len;
}

static void mem_reader_close(struct cas_blob_reader *r) {
        free(r);
}

static const struct cas_blob_reader_ops mem_reader_ops = {
        .pread = mem_pread,
        .close = mem_reader_close,
};

static int mem_open(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct mem_blob *b = lookup((struct blob_memory *) s, d);
        struct mem_reader *r;

        if (!b)
                return -ENOENT;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->base = (struct cas_blob_reader){
                .ops = &mem_reader_ops, .digest = b->digest, .size = b->size, .fd = -1, .data = b->data,
        };
        *ret = &r->base;
        return 0;
}

/* Inserts a copy of data under d unless present.  Takes the write lock only
 * for the insertion; the copy is made before. */
static int insert(struct blob_memory *m, const struct cas_digest *d, const void *data, size_t len) {
        struct mem_blob *b;
        int r = 0;

        if (lookup(m, d))
                return 0;
        b = malloc(sizeof(*b) + len);
        if (!b)
                return -ENOMEM;
        b->digest = *d;
        b->size = len;
        memcpy(b->data, data, len);
        pthread_rwlock_wrlock(&m->lock);
        if (hashmap_get(&m->blobs, cas_digest_hash(d), d))
                free(b); /* another thread stored it meanwhile */
        else {
                r = hashmap_put(&m->blobs, cas_digest_hash(d), b);
                if (r < 0)
                        free(b);
        }
        pthread_rwlock_unlock(&m->lock);
        return r;
}

static int mem_put(struct cas_blob_service *s, const void *data, size_t len, unsigned flags,
                   struct cas_digest *ret_digest) {
        struct cas_digest d;
        int r;

        cas_digest_of(data, len, &d);
        r = insert((struct blob_memory *) s, &d, data, len);
        if (r < 0)
                return r;
        *ret_digest = d;
        return 0;
}

static int mem_write(struct cas_blob_writer *w, const void *buf, size_t len) {
        struct mem_writer *mw = (struct mem_writer *) w;

        if (len > mw->cap - mw->len) {
                size_t cap = MAX(mw->cap * 2, (size_t) 4096);
                uint8_t *p;

                if (len > SIZE_MAX / 2 - mw->len)
                        return -ENOMEM;
                while (cap < mw->len + len)
                        cap *= 2;
                p = realloc(mw->buf, cap);
                if (!p)
                        return -ENOMEM;
                mw->buf = p;
                mw->cap = cap;
        }
        memcpy(mw->buf + mw->len, buf, len);
        mw->len += len;
        cas_hasher_update(&mw->hasher, buf, len);
        return 0;
}

static void mem_abort(struct cas_blob_writer *w) {
        struct mem_writer *mw = (struct mem_writer *) w;

        free(mw->buf);
        free(mw);
}

static int mem_commit(struct cas_blob_writer *w, struct cas_digest *ret_digest, uint64_t *ret_size) {
        struct mem_writer *mw = (struct mem_writer *) w;
        struct cas_digest d;
        int r;

        cas_hasher_final(&mw->hasher, &d);
        r = insert(mw->m, &d, mw->buf ? mw->buf : (const uint8_t *) "", mw->len);
        if (r >= 0) {
                *ret_digest = d;
                *ret_size = mw->len;
        }
        mem_abort(w);
        return r;
}

static const struct cas_blob_writer_ops mem_writer_ops = {
        .write = mem_write,
        .commit = mem_commit,
        .abort = mem_abort,
};

static int mem_writer_new(struct cas_blob_service *s, unsigned flags, struct cas_blob_writer **ret) {
        struct mem_writer *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->base.ops = &mem_writer_ops;
        w->m = (struct blob_memory *) s;
        cas_hasher_init(&w->hasher);
        *ret = &w->base;
        return 0;
}

/* The digests are copied out first so that cb runs with no lock held (it
 * may call back into the service). */
static int mem_list(struct cas_blob_service *s, cas_blob_list_cb cb, void *userdata) {
        struct blob_memory *m = (struct blob_memory *) s;

        return cas_blob_list_digest_map(&m->blobs, &m->lock, cb, userdata);
}

/* Open readers keep reading: the bytes stay until the service is freed. */
static int mem_remove(struct cas_blob_service *s, const struct cas_digest *d) {
        struct blob_memory *m = (struct blob_memory *) s;
        struct mem_blob *b;
        int r = 0;

        pthread_rwlock_wrlock(&m->lock);
        if (m->n_removed == m->cap_removed) {
                size_t cap = m->cap_removed ? 2 * m->cap_removed : 64;
                struct mem_blob **v = reallocarray(m->removed, cap, sizeof(*v));

                if (v) {
                        m->removed = v;
                        m->cap_removed = cap;
                } else
                        r = -ENOMEM;
        }
        if (r >= 0) {
                b = hashmap_remove(&m->blobs, cas_digest_hash(d), d);
                if (b)
                        m->removed[m->n_removed++] = b;
                else
                        r = -ENOENT;
        }
        pthread_rwlock_unlock(&m->lock);
        return r;
}

/* Every reader must be closed before: they point into the blobs. */
static void mem_free(struct cas_blob_service *s) {
        struct blob_memory *m = (struct blob_memory *) s;

        for (size_t i = 0; i < m->n_removed; i++)
                free(m->removed[i]);
        free(m->removed);
        hashmap_done_free(&m->blobs);
        pthread_rwlock_destroy(&m->lock);
        free(m);
}

static const struct cas_blob_ops blob_memory_ops = {
        .name = "memory",
        .stat = mem_stat,
        .open = mem_open,
        .put = mem_put,
        .writer_new = mem_writer_new,
        .list = mem_list,
        .remove = mem_remove,
        .free = mem_free,
};

int cas_blob_memory_new(struct cas_blob_service **ret) {
        struct blob_memory *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->base.ops = &blob_memory_ops;
        pthread_rwlock_init(&m->lock, NULL);
        hashmap_init(&m->blobs, blob_eq);
        *ret = &m->base;
        return 0;
}
