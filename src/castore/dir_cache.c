/* A write-back directory cache: near (the local store) in front of far (a
 * remote daemon).  A directory near lacks is fetched from far with its
 * whole closure in one recursive get, stored near in one batch (leaves
 * first, so near checks every child and size as for any put) and read
 * from there.  Puts go to far first, then near. */
#include <errno.h>
#include <stdlib.h>

#include "castore/cache.h"
#include "castore/dirsvc.h"
#include "util/hashmap.h"
#include "util/log.h"

/* Files up to this size are prefetched with their closure. */
#define PREFETCH_MAX_FILE (1u << 20)

struct cache_dirs {
        struct cas_dir_service base;
        struct cas_dir_service *near; /* borrowed */
        struct cas_dir_service *far;  /* owned */
        struct cas_blob_service *prefetch; /* a blob cache, borrowed, or NULL; set before use */
};

static struct cache_dirs *to_cache(struct cas_dir_service *s) {
        return (struct cache_dirs *) s;
}

/* A fetched closure, in the order it arrived (parents first). */
struct closure {
        struct cas_directory **dirs;
        size_t n, cap;
        struct hashmap index; /* digest -> struct slot */
};

struct slot {
        struct cas_digest digest;
        size_t i;
        bool done;
};

static bool slot_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct slot *) entry)->digest, key);
}

static struct slot *slot_of(struct closure *c, const struct cas_digest *d) {
        return hashmap_get(&c->index, hash_bytes(d->b, CAS_DIGEST_LEN), d);
}

static int collect(void *userdata, const struct cas_directory *d) {
        struct closure *c = userdata;
        struct cas_directory *copy = NULL;
        uint8_t *buf = NULL;
        size_t len;
        int r;

        /* the walk lends d: keep a copy */
        r = cas_directory_encode(d, &buf, &len);
        if (r >= 0)
                r = cas_directory_decode(buf, len, 0, &copy, NULL);
        free(buf);
        if (r < 0)
                return r;
        if (c->n == c->cap) {
                struct cas_directory **v = reallocarray(c->dirs, c->cap * 2 + 16, sizeof(*v));
                if (!v) {
                        cas_directory_free(copy);
                        return -ENOMEM;
                }
                c->dirs = v;
                c->cap = c->cap * 2 + 16;
        }
        struct slot *s = calloc(1, sizeof(*s));
        if (!s || (r = hashmap_put(&c->index, hash_bytes(copy->digest.b, CAS_DIGEST_LEN), s)) < 0) {
                free(s);
                cas_directory_free(copy);
                return r < 0 ? r : -ENOMEM;
        }
        *s = (struct slot){ .digest = copy->digest, .i = c->n };
        c->dirs[c->n++] = copy;
        return 0;
}

/* Appends dirs[i]'s children, then dirs[i], to out (post-order): every
 * directory after all of its children. */
static void leaves_first(struct closure *c, size_t i, struct cas_directory **out, size_t *n_out, unsigned depth) {
        const struct cas_directory *d = c->dirs[i];
        for (size_t k = 0; depth < 4096 && k < d->n_entries; k++) {
                if (d->entries[k].kind != CAS_NODE_DIRECTORY)
                        continue;
                struct slot *s = slot_of(c, &d->entries[k].digest);
                if (s && !s->done) {
                        s->done = true;
                        leaves_first(c, s->i, out, n_out, depth + 1);
                }
        }
        out[(*n_out)++] = c->dirs[i];
}

static int fill(struct cache_dirs *s, const struct cas_digest *root) {
        struct closure c = {};
        enum cas_verr why = CAS_VERR_NONE;
        int r;

        hashmap_init(&c.index, slot_eq);
        r = cas_dir_get_recursive(s->far, root, collect, &c);
        if (r >= 0 && c.n == 0)
                r = -ENOENT;
        struct cas_directory **order = r >= 0 ? calloc(c.n, sizeof(*order)) : NULL;
        if (r >= 0 && !order)
                r = -ENOMEM;
        if (r >= 0) {
                size_t n = 0;
                slot_of(&c, root)->done = true;
                leaves_first(&c, 0, order, &n, 0);
                r = cas_dir_put(s->near, order, n, 0, &why);
                if (r == -EBADMSG)
                        log_error("Fetched directory %s not cached: %s", CAS_DIGEST_B3(root), cas_verr_str(why));
        }
        /* in walk order (parents first): what a tree walk reads first */
        for (size_t i = 0; r >= 0 && s->prefetch && i < c.n; i++)
                for (size_t k = 0; k < c.dirs[i]->n_entries; k++) {
                        const struct cas_node *e = &c.dirs[i]->entries[k];
                        if (e->kind == CAS_NODE_FILE && e->size <= PREFETCH_MAX_FILE &&
                            cas_blob_cache_prefetch(s->prefetch, &e->digest) == -EAGAIN)
                                goto full;
                }
full:
        free(order);
        for (size_t i = 0; i < c.n; i++)
                cas_directory_free(c.dirs[i]);
        free(c.dirs);
        hashmap_done_free(&c.index);
        return r;
}

static int cache_get(struct cas_dir_service *ds, const struct cas_digest *d, struct cas_directory **ret) {
        struct cache_dirs *s = to_cache(ds);
        int r = cas_dir_get(s->near, d, ret);
        if (r != -ENOENT)
                return r;
        r = fill(s, d);
        if (r < 0)
                return r;
        return cas_dir_get(s->near, d, ret);
}

static int cache_stat(struct cas_dir_service *ds, const struct cas_digest *d, uint64_t *ret_size) {
        struct cache_dirs *s = to_cache(ds);
        int r = cas_dir_stat(s->near, d, ret_size);
        return r == -ENOENT ? cas_dir_stat(s->far, d, ret_size) : r;
}

static int cache_put(struct cas_dir_service *ds, struct cas_directory *const *dirs, size_t n, unsigned flags,
                     enum cas_verr *ret_why) {
        struct cache_dirs *s = to_cache(ds);
        int r = cas_dir_put(s->far, dirs, n, flags, ret_why);
        if (r < 0)
                return r;
        return cas_dir_put(s->near, dirs, n, flags, ret_why);
}

static int cache_get_recursive(struct cas_dir_service *ds, const struct cas_digest *root,
                               int (*cb)(void *userdata, const struct cas_directory *d), void *userdata) {
        struct cache_dirs *s = to_cache(ds);
        uint64_t size;
        /* near is closed under children: with the root, it has all */
        int r = cas_dir_stat(s->near, root, &size);
        if (r == -ENOENT)
                r = fill(s, root);
        if (r < 0)
                return r;
        return cas_dir_get_recursive(s->near, root, cb, userdata);
}

static int cache_list(struct cas_dir_service *ds, cas_dir_list_cb cb, void *userdata) {
        return cas_dir_list(to_cache(ds)->near, cb, userdata);
}

static void cache_release_memory(struct cas_dir_service *ds) {
        cas_dir_release_memory(to_cache(ds)->near);
        cas_dir_release_memory(to_cache(ds)->far);
}

static void cache_free(struct cas_dir_service *ds) {
        struct cache_dirs *s = to_cache(ds);
        cas_dir_service_free(s->far);
        free(s);
}

static const struct cas_dir_ops cache_ops = {
        .name = "cache",
        .get = cache_get,
        .stat = cache_stat,
        .put = cache_put,
        .list = cache_list,
        .get_recursive = cache_get_recursive,
        .release_memory = cache_release_memory,
        .free = cache_free,
};

int cas_dir_cache_new(struct cas_dir_service *near, struct cas_dir_service *far, struct cas_dir_service **ret) {
        struct cache_dirs *s = calloc(1, sizeof(*s));
        if (!s) {
                cas_dir_service_free(far);
                return -ENOMEM;
        }
        s->base.ops = &cache_ops;
        s->near = near;
        s->far = far;
        *ret = &s->base;
        return 0;
}

void cas_dir_cache_set_prefetch(struct cas_dir_service *ds, struct cas_blob_service *blobs) {
        if (ds && ds->ops == &cache_ops)
                to_cache(ds)->prefetch = blobs;
}
