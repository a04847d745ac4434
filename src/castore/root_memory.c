/* memory:// root backend: name -> node in a hash map under a rwlock.
 * Nodes are copied in and out, so replacing a root never invalidates what
 * a caller holds. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"
#include "castore/rootsvc.h"

struct mem_root {
        struct cas_node node;
        void *mem; /* node's strings */
};

struct root_memory {
        struct cas_root_service base;
        pthread_rwlock_t lock;
        struct hashmap roots; /* lock; struct mem_root *, keyed by name */
};

struct name_key {
        const char *name;
        size_t len;
};

static bool root_eq(const void *entry, const void *key) {
        const struct mem_root *e = entry;
        const struct name_key *k = key;

        return e->node.name_len == k->len && memcmp(e->node.name, k->name, k->len) == 0;
}

static void mem_root_free(struct mem_root *e) {
        if (e) {
                free(e->mem);
                free(e);
        }
}

static int mem_get(struct cas_root_service *s, const char *name, size_t len, struct cas_node *ret, void **ret_mem) {
        struct root_memory *m = (struct root_memory *) s;
        struct name_key k = { name, len };
        struct mem_root *e;
        int r;

        pthread_rwlock_rdlock(&m->lock);
        e = hashmap_get(&m->roots, hash_bytes(name, len), &k);
        r = e ? cas_node_copy(&e->node, ret, ret_mem) : -ENOENT;
        pthread_rwlock_unlock(&m->lock);
        return r;
}

static int mem_put(struct cas_root_service *s, const struct cas_node *n) {
        struct root_memory *m = (struct root_memory *) s;
        struct name_key k = { n->name, n->name_len };
        uint64_t h = hash_bytes(n->name, n->name_len);
        struct mem_root *e, *old;
        int r;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        r = cas_node_copy(n, &e->node, &e->mem);
        if (r < 0) {
                free(e);
                return r;
        }
        pthread_rwlock_wrlock(&m->lock);
        old = hashmap_remove(&m->roots, h, &k);
        r = hashmap_put(&m->roots, h, e);
        if (r < 0 && old) /* cannot fail: the slot just freed is reused */
                (void) hashmap_put(&m->roots, h, TAKE_PTR(old));
        pthread_rwlock_unlock(&m->lock);
        if (r < 0)
                mem_root_free(e);
        mem_root_free(old);
        return r < 0 ? r : 0;
}

static int mem_remove(struct cas_root_service *s, const char *name, size_t len) {
        struct root_memory *m = (struct root_memory *) s;
        struct name_key k = { name, len };
        struct mem_root *e;

        pthread_rwlock_wrlock(&m->lock);
        e = hashmap_remove(&m->roots, hash_bytes(name, len), &k);
        pthread_rwlock_unlock(&m->lock);
        if (!e)
                return -ENOENT;
        mem_root_free(e);
        return 0;
}

struct collect {
        struct mem_root *v;
        size_t n;
        int r;
};

static bool collect_one(void *entry, void *userdata) {
        struct collect *c = userdata;
        struct mem_root *e = entry;

        c->r = cas_node_copy(&e->node, &c->v[c->n].node, &c->v[c->n].mem);
        if (c->r < 0)
                return false;
        c->n++;
        return true;
}

static int root_cmp(const void *x, const void *y) {
        const struct mem_root *a = x, *b = y;

        return cas_name_compare(a->node.name, a->node.name_len, b->node.name, b->node.name_len);
}

/* Copies under the lock, sorts and calls cb without it (cb may call back
 * into the service). */
static int mem_list(struct cas_root_service *s, cas_root_list_cb cb, void *userdata) {
        struct root_memory *m = (struct root_memory *) s;
        struct collect c = {};
        int r = 0;

        pthread_rwlock_rdlock(&m->lock);
        c.v = calloc(MAX(m->roots.count, (size_t) 1), sizeof(*c.v));
        if (c.v)
                hashmap_foreach(&m->roots, collect_one, &c);
        pthread_rwlock_unlock(&m->lock);
        if (!c.v)
                return -ENOMEM;
        r = c.r;
        if (r >= 0) {
                qsort(c.v, c.n, sizeof(*c.v), root_cmp);
                for (size_t i = 0; i < c.n && r >= 0; i++)
                        r = cb(userdata, &c.v[i].node);
        }
        for (size_t i = 0; i < c.n; i++)
                free(c.v[i].mem);
        free(c.v);
        return r < 0 ? r : 0;
}

static bool free_one(void *entry, void *userdata) {
        mem_root_free(entry);
        return true;
}

static void mem_free(struct cas_root_service *s) {
        struct root_memory *m = (struct root_memory *) s;

        hashmap_foreach(&m->roots, free_one, NULL);
        hashmap_done(&m->roots);
        pthread_rwlock_destroy(&m->lock);
        free(m);
}

static const struct cas_root_ops root_memory_ops = {
        .name = "memory",
        .get = mem_get,
        .put = mem_put,
        .remove = mem_remove,
        .list = mem_list,
        .free = mem_free,
};

int cas_root_memory_new(struct cas_root_service **ret) {
        struct root_memory *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->base.ops = &root_memory_ops;
        pthread_rwlock_init(&m->lock, NULL);
        hashmap_init(&m->roots, root_eq);
        *ret = &m->base;
        return 0;
}
