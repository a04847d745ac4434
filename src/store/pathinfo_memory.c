/* memory:// PathInfo backend: encoded PathInfos in a hash map keyed by the
 * store path digest, under a rwlock.  Records are stored encoded so get
 * and list hand out independent validated copies. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "store/pathinfosvc.h"

struct mem_record {
        uint8_t digest[NIX_DIGEST_LEN];
        size_t len;
        uint8_t data[];
};

struct pathinfo_memory {
        struct nix_pathinfo_service base;
        pthread_rwlock_t lock;
        struct hashmap records; /* lock; struct mem_record *, immutable once inserted */
};

static bool record_eq(const void *entry, const void *key) {
        return memcmp(((const struct mem_record *) entry)->digest, key, NIX_DIGEST_LEN) == 0;
}

static int mem_get(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        struct pathinfo_memory *m = (struct pathinfo_memory *) s;
        struct mem_record *e;
        int r;

        pthread_rwlock_rdlock(&m->lock);
        e = hashmap_get(&m->records, hash_bytes(digest, NIX_DIGEST_LEN), digest);
        r = e ? nix_pathinfo_decode(e->data, e->len, ret, NULL) : -ENOENT;
        pthread_rwlock_unlock(&m->lock);
        return r;
}

static int mem_put(struct nix_pathinfo_service *s, const struct nix_pathinfo *pi) {
        struct pathinfo_memory *m = (struct pathinfo_memory *) s;
        _cleanup_free_ uint8_t *buf = NULL;
        struct mem_record *e, *old;
        uint64_t h = hash_bytes(pi->path.digest, NIX_DIGEST_LEN);
        size_t len;
        int r;

        r = nix_pathinfo_encode(pi, &buf, &len);
        if (r < 0)
                return r;
        e = malloc(sizeof(*e) + len);
        if (!e)
                return -ENOMEM;
        memcpy(e->digest, pi->path.digest, NIX_DIGEST_LEN);
        e->len = len;
        memcpy(e->data, buf, len);
        pthread_rwlock_wrlock(&m->lock);
        old = hashmap_remove(&m->records, h, e->digest);
        r = hashmap_put(&m->records, h, e);
        if (r < 0) {
                free(e);
                if (old && hashmap_put(&m->records, h, old) >= 0)
                        old = NULL; /* keep the old record rather than lose it */
        }
        pthread_rwlock_unlock(&m->lock);
        free(old);
        return r;
}

static int mem_remove(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN]) {
        struct pathinfo_memory *m = (struct pathinfo_memory *) s;
        struct mem_record *old;

        pthread_rwlock_wrlock(&m->lock);
        old = hashmap_remove(&m->records, hash_bytes(digest, NIX_DIGEST_LEN), digest);
        pthread_rwlock_unlock(&m->lock);
        if (!old)
                return -ENOENT;
        free(old);
        return 0;
}

struct snapshot {
        struct mem_record **v;
        size_t n;
};

static bool snapshot_add(void *entry, void *userdata) {
        struct snapshot *sn = userdata;
        const struct mem_record *e = entry;
        struct mem_record *copy = malloc(sizeof(*copy) + e->len);

        if (!copy)
                return false;
        memcpy(copy, e, sizeof(*copy) + e->len);
        sn->v[sn->n++] = copy;
        return true;
}

/* Copies the records under the lock, then decodes and calls cb without it
 * (cb may call back into the service). */
static int mem_list(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata) {
        struct pathinfo_memory *m = (struct pathinfo_memory *) s;
        struct snapshot sn = {};
        size_t want;
        int r = 0;

        pthread_rwlock_rdlock(&m->lock);
        want = m->records.count;
        sn.v = calloc(want ? want : 1, sizeof(*sn.v));
        if (sn.v)
                hashmap_foreach(&m->records, snapshot_add, &sn);
        pthread_rwlock_unlock(&m->lock);
        if (!sn.v || sn.n != want)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < sn.n; i++) {
                struct nix_pathinfo *pi;

                r = nix_pathinfo_decode(sn.v[i]->data, sn.v[i]->len, &pi, NULL);
                if (r < 0)
                        break;
                r = cb(userdata, pi);
                nix_pathinfo_free(pi);
        }
        for (size_t i = 0; i < sn.n; i++)
                free(sn.v[i]);
        free(sn.v);
        return r < 0 ? r : 0;
}

static bool record_free(void *entry, void *userdata) {
        free(entry);
        return true;
}

static void mem_free(struct nix_pathinfo_service *s) {
        struct pathinfo_memory *m = (struct pathinfo_memory *) s;

        hashmap_foreach(&m->records, record_free, NULL);
        hashmap_done(&m->records);
        pthread_rwlock_destroy(&m->lock);
        free(m);
}

static const struct nix_pathinfo_ops pathinfo_memory_ops = {
        .name = "memory",
        .get = mem_get,
        .put = mem_put,
        .remove = mem_remove,
        .list = mem_list,
        .free = mem_free,
};

int nix_pathinfo_memory_new(struct nix_pathinfo_service **ret) {
        struct pathinfo_memory *m;

        if (!ret)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->base.ops = &pathinfo_memory_ops;
        pthread_rwlock_init(&m->lock, NULL);
        hashmap_init(&m->records, record_eq);
        *ret = &m->base;
        return 0;
}
