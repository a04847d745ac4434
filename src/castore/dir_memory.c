/* memory:// directory backend: canonical encodings in a hash map under a
 * rwlock.  get decodes and re-checks like the persistent backend does, so
 * both behave the same; put of a batch is atomic (all or nothing).
 * Removed entries are kept until the service is freed (a reader may be
 * decoding one outside the lock): memory:// is for tests. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "castore/dirsvc.h"

struct mem_dir {
        struct cas_digest digest;
        uint64_t size; /* recursive entry count */
        size_t len;
        uint8_t data[]; /* canonical encoding */
};

struct dir_memory {
        struct cas_dir_service base;
        pthread_rwlock_t lock;
        struct hashmap dirs; /* lock; struct mem_dir *, immutable once inserted */
        struct mem_dir **removed; /* lock; freed with the service */
        size_t n_removed, cap_removed; /* lock */
};

static bool dir_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct mem_dir *) entry)->digest, key);
}

static int mem_get(struct cas_dir_service *s, const struct cas_digest *d, struct cas_directory **ret) {
        struct dir_memory *m = (struct dir_memory *) s;
        _cleanup_(cas_directory_freep) struct cas_directory *dir = NULL;
        struct mem_dir *e;
        int r;

        /* Entries are never freed while the service lives (removed ones
         * wait in removed[]): decoding outside the lock is safe. */
        pthread_rwlock_rdlock(&m->lock);
        e = hashmap_get(&m->dirs, cas_digest_hash(d), d);
        pthread_rwlock_unlock(&m->lock);
        if (!e)
                return -ENOENT;
        r = cas_directory_decode(e->data, e->len, 0, &dir, NULL);
        if (r < 0)
                return r;
        if (!cas_digest_equal(&dir->digest, d))
                return -EBADMSG;
        *ret = TAKE_PTR(dir);
        return 0;
}

static int mem_stat(struct cas_dir_service *s, const struct cas_digest *d, uint64_t *ret_size) {
        struct dir_memory *m = (struct dir_memory *) s;
        struct mem_dir *e;

        pthread_rwlock_rdlock(&m->lock);
        e = hashmap_get(&m->dirs, cas_digest_hash(d), d);
        if (e)
                *ret_size = e->size;
        pthread_rwlock_unlock(&m->lock);
        return e ? 0 : -ENOENT;
}

/* Called with the write lock held: sees what this batch inserted so far. */
static int locked_child_size(void *userdata, const struct cas_digest *d, uint64_t *ret_size) {
        struct dir_memory *m = userdata;
        struct mem_dir *e = hashmap_get(&m->dirs, cas_digest_hash(d), d);

        if (!e)
                return -ENOENT;
        *ret_size = e->size;
        return 0;
}

static int mem_put(struct cas_dir_service *s, struct cas_directory *const *dirs, size_t n, unsigned flags,
                   enum cas_verr *ret_why) {
        struct dir_memory *m = (struct dir_memory *) s;
        struct mem_dir **enc;
        bool *inserted;
        int r = 0;

        /* Encode everything before taking the lock. */
        enc = calloc(n, sizeof(*enc) + sizeof(*inserted));
        if (!enc)
                return -ENOMEM;
        inserted = (bool *) (enc + n);
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len;

                r = cas_directory_encode(dirs[i], &buf, &len);
                if (r < 0)
                        break;
                enc[i] = malloc(sizeof(struct mem_dir) + len);
                if (!enc[i]) {
                        r = -ENOMEM;
                        break;
                }
                enc[i]->digest = dirs[i]->digest;
                enc[i]->size = dirs[i]->size;
                enc[i]->len = len;
                memcpy(enc[i]->data, buf, len);
        }

        if (r >= 0) {
                pthread_rwlock_wrlock(&m->lock);
                for (size_t i = 0; i < n && r >= 0; i++) {
                        uint64_t h = cas_digest_hash(&enc[i]->digest);

                        r = cas_dir_check_children(dirs[i], flags, locked_child_size, m, ret_why);
                        if (r < 0 || hashmap_get(&m->dirs, h, &enc[i]->digest))
                                continue; /* refused, or already stored (dedup) */
                        r = hashmap_put(&m->dirs, h, enc[i]);
                        inserted[i] = r >= 0;
                }
                if (r < 0) /* all or nothing: take back this batch's inserts */
                        for (size_t i = 0; i < n; i++)
                                if (inserted[i]) {
                                        hashmap_remove(&m->dirs, cas_digest_hash(&enc[i]->digest), &enc[i]->digest);
                                        inserted[i] = false;
                                }
                pthread_rwlock_unlock(&m->lock);
        }
        for (size_t i = 0; i < n; i++)
                if (!inserted[i])
                        free(enc[i]);
        free(enc);
        return r < 0 ? r : 0;
}

struct collect {
        struct mem_dir **v;
        size_t n;
};

static bool collect_one(void *entry, void *userdata) {
        struct collect *c = userdata;

        c->v[c->n++] = entry;
        return true;
}

/* Entries are immutable and never freed before the service (removed ones
 * wait in removed[]): collect the
 * pointers under the lock, call cb without it. */
static int mem_list(struct cas_dir_service *s, cas_dir_list_cb cb, void *userdata) {
        struct dir_memory *m = (struct dir_memory *) s;
        _cleanup_free_ struct mem_dir **v = NULL;
        struct collect c = {};
        int r;

        pthread_rwlock_rdlock(&m->lock);
        v = malloc(MAX(m->dirs.count, (size_t) 1) * sizeof(*v));
        if (v) {
                c.v = v;
                hashmap_foreach(&m->dirs, collect_one, &c);
        }
        pthread_rwlock_unlock(&m->lock);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < c.n; i++) {
                r = cb(userdata, &v[i]->digest, v[i]->data, v[i]->len);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Called with the write lock held. */
static int graveyard_reserve(struct dir_memory *m, size_t n) {
        size_t cap;
        struct mem_dir **v;

        if (m->cap_removed - m->n_removed >= n)
                return 0;
        cap = MAX(m->n_removed + n, 2 * m->cap_removed);
        v = reallocarray(m->removed, cap, sizeof(*v));
        if (!v)
                return -ENOMEM;
        m->removed = v;
        m->cap_removed = cap;
        return 0;
}

static int mem_remove(struct cas_dir_service *s, const struct cas_digest *digests, size_t n) {
        struct dir_memory *m = (struct dir_memory *) s;
        int r;

        pthread_rwlock_wrlock(&m->lock);
        r = graveyard_reserve(m, n); /* first, so the removal cannot fail half way */
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct mem_dir *e = hashmap_remove(&m->dirs, cas_digest_hash(&digests[i]), &digests[i]);

                if (e)
                        m->removed[m->n_removed++] = e;
        }
        pthread_rwlock_unlock(&m->lock);
        return r;
}

static void mem_free(struct cas_dir_service *s) {
        struct dir_memory *m = (struct dir_memory *) s;

        for (size_t i = 0; i < m->n_removed; i++)
                free(m->removed[i]);
        free(m->removed);
        hashmap_done_free(&m->dirs);
        pthread_rwlock_destroy(&m->lock);
        free(m);
}

static const struct cas_dir_ops dir_memory_ops = {
        .name = "memory",
        .get = mem_get,
        .stat = mem_stat,
        .put = mem_put,
        .list = mem_list,
        .remove = mem_remove,
        .free = mem_free,
};

int cas_dir_memory_new(struct cas_dir_service **ret) {
        struct dir_memory *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->base.ops = &dir_memory_ops;
        pthread_rwlock_init(&m->lock, NULL);
        hashmap_init(&m->dirs, dir_eq);
        *ret = &m->base;
        return 0;
}
