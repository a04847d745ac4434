/* Store usage figures and file bytes of trees (see usage.h). */
#include "castore/usage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashmap.h"

struct usage_ctx {
        struct cas_store *store;
        struct cas_usage *u;
};

static int count_blob(void *userdata, const struct cas_digest *d) {
        struct usage_ctx *c = userdata;
        uint64_t size, disk;
        int r;

        r = cas_blob_stat(c->store->blobs, d, &size);
        if (r == -ENOENT)
                return 0; /* removed since it was listed */
        if (r < 0)
                return r;
        c->u->blobs++;
        c->u->blob_bytes += size;
        if (!c->u->blob_disk_known)
                return 0;
        r = cas_blob_disk_usage(c->store->blobs, d, &disk);
        if (r == -EOPNOTSUPP)
                c->u->blob_disk_known = false;
        else if (r >= 0)
                c->u->blob_disk_bytes += disk;
        else if (r != -ENOENT)
                return r;
        return 0;
}

static int count_dir(void *userdata, const struct cas_digest *d, const void *data, size_t len) {
        struct cas_usage *u = userdata;

        u->dirs++;
        u->dir_bytes += len;
        return 0;
}

static int count_root(void *userdata, const struct cas_node *n) {
        ((struct cas_usage *) userdata)->roots++;
        return 0;
}

/* Keeps the first error, but lets a later one replace -EBADMSG (a walk
 * that went on past corrupt records). */
static int merge(int r, int next) {
        if (r < 0 && r != -EBADMSG)
                return r;
        return next < 0 ? next : r;
}

int cas_store_usage(struct cas_store *store, struct cas_usage *ret) {
        struct cas_usage u = {};
        struct usage_ctx c = { store, &u };
        int r = 0;

        if (!store || !ret)
                return -EINVAL;
        u.blob_disk_known = store->blobs->ops->disk_usage != NULL;
        r = merge(r, cas_blob_list(store->blobs, count_blob, &c));
        if (r >= 0 || r == -EBADMSG)
                r = merge(r, cas_dir_list(store->dirs, count_dir, &u));
        if (r >= 0 || r == -EBADMSG)
                r = merge(r, cas_root_list(store->roots, count_root, &u));
        *ret = u;
        return r;
}

/* ---- file bytes of trees ---- */

struct dir_total {
        struct cas_digest digest;
        uint64_t bytes;
};

struct cas_tree_bytes {
        struct cas_dir_service *dirs; /* borrowed */
        struct hashmap totals;        /* struct dir_total *, by digest */
};

/* A directory on the walk's stack: fetched, its children pushed once. */
struct frame {
        struct cas_digest digest;
        struct cas_directory *dir;
};

static bool total_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct dir_total *) entry)->digest, key);
}

int cas_tree_bytes_new(struct cas_dir_service *dirs, struct cas_tree_bytes **ret) {
        struct cas_tree_bytes *t;

        if (!dirs || !ret)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->dirs = dirs;
        hashmap_init(&t->totals, total_eq);
        *ret = t;
        return 0;
}

void cas_tree_bytes_free(struct cas_tree_bytes *t) {
        if (!t)
                return;
        hashmap_done_free(&t->totals);
        free(t);
}

static struct dir_total *total_get(struct cas_tree_bytes *t, const struct cas_digest *d) {
        return hashmap_get(&t->totals, cas_digest_hash(d), d);
}

/* All children known: the directory's total, remembered.  0 or -ENOMEM. */
static int total_add(struct cas_tree_bytes *t, const struct cas_directory *d) {
        struct dir_total *e = malloc(sizeof(*e));
        uint64_t bytes = 0;
        int r;

        if (!e)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *n = &d->entries[i];

                if (n->kind == CAS_NODE_FILE)
                        bytes += n->size;
                else if (n->kind == CAS_NODE_DIRECTORY)
                        bytes += total_get(t, &n->digest)->bytes;
        }
        *e = (struct dir_total){ .digest = d->digest, .bytes = bytes };
        r = hashmap_put(&t->totals, cas_digest_hash(&e->digest), e);
        if (r < 0)
                free(e);
        return r;
}

/* Pushes the children of f->dir whose totals are unknown; returns how
 * many, or -ENOMEM. */
static int push_children(struct frame **stack, size_t *n, size_t *cap, const struct cas_directory *d,
                         struct cas_tree_bytes *t) {
        int pushed = 0;

        for (size_t i = 0; i < d->n_entries; i++) {
                const struct cas_node *e = &d->entries[i];

                if (e->kind != CAS_NODE_DIRECTORY || total_get(t, &e->digest))
                        continue;
                if (*n == *cap) {
                        size_t c = *cap ? 2 * *cap : 64;
                        struct frame *s = reallocarray(*stack, c, sizeof(*s));

                        if (!s)
                                return -ENOMEM;
                        *stack = s;
                        *cap = c;
                }
                (*stack)[(*n)++] = (struct frame){ .digest = e->digest };
                pushed++;
        }
        return pushed;
}

/* Depth first without recursion (trees may be deep): a frame is fetched
 * and its unknown children pushed; when it is on top again they are all
 * known and its total is computed. */
static int walk(struct cas_tree_bytes *t, const struct cas_digest *root) {
        struct frame *stack = malloc(sizeof(*stack));
        size_t n = 0, cap = 1;
        int r = 0;

        if (!stack)
                return -ENOMEM;
        stack[n++] = (struct frame){ .digest = *root };
        while (n > 0 && r >= 0) {
                struct frame *f = &stack[n - 1];

                if (f->dir || total_get(t, &f->digest)) {
                        if (f->dir && !total_get(t, &f->digest))
                                r = total_add(t, f->dir);
                        cas_directory_free(stack[n - 1].dir);
                        n--;
                        continue;
                }
                r = cas_dir_get(t->dirs, &f->digest, &f->dir);
                if (r >= 0)
                        r = push_children(&stack, &n, &cap, f->dir, t); /* may move f */
        }
        for (size_t i = 0; i < n; i++)
                cas_directory_free(stack[i].dir);
        free(stack);
        return r < 0 ? r : 0;
}

int cas_tree_bytes_of(struct cas_tree_bytes *t, const struct cas_node *n, uint64_t *ret) {
        struct dir_total *e;
        int r;

        if (!t || !n || !ret)
                return -EINVAL;
        if (n->kind != CAS_NODE_DIRECTORY) {
                *ret = n->kind == CAS_NODE_FILE ? n->size : 0;
                return 0;
        }
        e = total_get(t, &n->digest);
        if (!e) {
                r = walk(t, &n->digest);
                if (r < 0)
                        return r;
                e = total_get(t, &n->digest);
        }
        *ret = e->bytes;
        return 0;
}
