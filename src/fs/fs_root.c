/* The virtual root: names asked of the root providers in order (the first
 * that knows a name wins), and root listings (--list-root) as one snapshot
 * per opendir, merged from every provider and sorted by name. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs_internal.h"
#include "util/log.h"

/* --- the root service as a provider --- */

static int root_service_lookup(void *ctx, const char *name, size_t len, struct cas_node *ret, void **ret_mem) {
        return cas_root_get(ctx, name, len, ret, ret_mem);
}

static int root_service_list(void *ctx, fs_root_list_cb cb, void *userdata) {
        return cas_root_list(ctx, cb, userdata);
}

const struct fs_root_ops fs_root_service_ops = {
        .name = "named roots",
        .lookup = root_service_lookup,
        .list = root_service_list,
};

/* --- snapshots --- */

struct snapshot_builder {
        struct cas_node *nodes;
        void **mems;
        uint32_t *origin;
        size_t n, cap;
        uint32_t provider;
};

static int snapshot_add(void *userdata, const struct cas_node *n) {
        struct snapshot_builder *b = userdata;
        int r;

        if (cas_node_check(n, 0) != CAS_VERR_NONE)
                return 0; /* a provider's bad node: not shown */
        if (b->n == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 64;
                struct cas_node *nodes = realloc(b->nodes, cap * sizeof(*nodes));
                if (!nodes)
                        return -ENOMEM;
                b->nodes = nodes;
                void **mems = realloc(b->mems, cap * sizeof(*mems));
                if (!mems)
                        return -ENOMEM;
                b->mems = mems;
                uint32_t *origin = realloc(b->origin, cap * sizeof(*origin));
                if (!origin)
                        return -ENOMEM;
                b->origin = origin;
                b->cap = cap;
        }
        r = cas_node_copy(n, &b->nodes[b->n], &b->mems[b->n]);
        if (r < 0)
                return r;
        b->origin[b->n++] = b->provider;
        return 0;
}

struct sort_item {
        struct cas_node node;
        void *mem;
        uint32_t origin;
};

static int sort_item_cmp(const void *a, const void *b) {
        const struct sort_item *x = a, *y = b;
        int c = cas_name_compare(x->node.name, x->node.name_len, y->node.name, y->node.name_len);
        if (c != 0)
                return c;
        return x->origin < y->origin ? -1 : x->origin > y->origin;
}

void fs_root_snapshot_free(struct root_snapshot *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                free(s->mems[i]);
        free(s->nodes);
        free(s->mems);
        free(s);
}

/* Lists all providers into one sorted, duplicate-free snapshot. */
static int snapshot_take(struct fs *fs, struct root_snapshot **ret) {
        struct snapshot_builder b = {};
        _cleanup_free_ struct sort_item *items = NULL;
        struct root_snapshot *s;
        int r = 0;

        for (size_t p = 0; p < fs->cfg.n_roots && r >= 0; p++) {
                const struct fs_root_provider *rp = &fs->cfg.roots[p];
                b.provider = p;
                if (rp->ops->list)
                        r = rp->ops->list(rp->ctx, snapshot_add, &b);
        }
        if (r >= 0 && b.n > 0 && !(items = malloc(b.n * sizeof(*items))))
                r = -ENOMEM;
        if (r < 0) {
                for (size_t i = 0; i < b.n; i++)
                        free(b.mems[i]);
                free(b.nodes);
                free(b.mems);
                free(b.origin);
                return r;
        }
        for (size_t i = 0; i < b.n; i++)
                items[i] = (struct sort_item){ b.nodes[i], b.mems[i], b.origin[i] };
        if (b.n > 1)
                qsort(items, b.n, sizeof(*items), sort_item_cmp);
        size_t m = 0;
        for (size_t i = 0; i < b.n; i++) {
                if (m > 0 && cas_name_compare(items[i].node.name, items[i].node.name_len, b.nodes[m - 1].name,
                                              b.nodes[m - 1].name_len) == 0) {
                        free(items[i].mem); /* a later provider's duplicate */
                        continue;
                }
                b.nodes[m] = items[i].node;
                b.mems[m] = items[i].mem;
                m++;
        }
        free(b.origin);
        s = calloc(1, sizeof(*s));
        if (!s) {
                for (size_t i = 0; i < m; i++)
                        free(b.mems[i]);
                free(b.nodes);
                free(b.mems);
                return -ENOMEM;
        }
        s->n = m;
        s->nodes = b.nodes;
        s->mems = b.mems;
        *ret = s;
        return 0;
}

/* Drops one reference to a snapshot; frees it with the last. */
static void snapshot_put(struct fs *fs, struct root_snapshot *s) {
        bool last;

        pthread_mutex_lock(&fs->lock);
        assert(s->refs > 0);
        last = --s->refs == 0;
        pthread_mutex_unlock(&fs->lock);
        if (last)
                fs_root_snapshot_free(s);
}

static int count_one(void *userdata, const struct cas_node *n) {
        (*(uint64_t *) userdata)++;
        return 0;
}

/* The root's size: the number of roots when listing is allowed (with one
 * provider; duplicates across providers are not subtracted), else 0. */
static uint64_t root_count(struct fs *fs) {
        uint64_t n = 0;

        if (!fs->cfg.list_root)
                return 0;
        for (size_t p = 0; p < fs->cfg.n_roots; p++)
                if (fs->cfg.roots[p].ops->list)
                        (void) fs->cfg.roots[p].ops->list(fs->cfg.roots[p].ctx, count_one, &n);
        return n;
}

/* --- operations on the root --- */

int fs_root_lookup(struct fs *fs, const char *name, size_t len, struct fs_entry *ret) {
        struct cas_node n;
        _cleanup_free_ void *mem = NULL;
        struct node_key k;
        int r = -ENOENT;

        if (cas_name_check(name, len) != CAS_VERR_NONE)
                return -ENOENT;
        for (size_t p = 0; p < fs->cfg.n_roots; p++) {
                const struct fs_root_provider *rp = &fs->cfg.roots[p];
                r = rp->ops->lookup(rp->ctx, name, len, &n, &mem);
                if (r != -ENOENT)
                        break;
        }
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return log_warning_errno(-EIO, "Root lookup failed: %s", strerror(-r));
        /* the provider must answer for exactly this name */
        if (n.name_len != len || memcmp(n.name, name, len) != 0 || cas_node_check(&n, 0) != CAS_VERR_NONE)
                return -ENOENT;
        fs_node_key_of(&n, &k);
        pthread_mutex_lock(&fs->lock);
        r = fs_inode_lookup_locked(fs, &n, &k, true, ret);
        pthread_mutex_unlock(&fs->lock);
        return r;
}

void fs_root_getattr(struct fs *fs, struct fs_attr *ret, struct fs_timeout *ret_valid) {
        *ret = (struct fs_attr){
                .ino = FS_ROOT_INO,
                .size = root_count(fs),
                .mode = S_IFDIR | 0555,
                .nlink = 1,
                .uid = fs->cfg.uid,
                .gid = fs->cfg.gid,
                .blksize = BLKSIZE,
                .time = fs->start_time,
        };
        if (ret_valid)
                *ret_valid = (struct fs_timeout){ TIMEOUT_ROOT_ATTR, 0 };
}

int fs_root_opendir(struct fs *fs, struct fs_open *ret) {
        struct root_snapshot *s;
        int r;

        if (!fs->cfg.list_root)
                return -EPERM;
        r = snapshot_take(fs, &s);
        if (r < 0)
                return log_warning_errno(-EIO, "Listing roots failed: %s", strerror(-r));
        pthread_mutex_lock(&fs->lock);
        s->fh = fs->next_fh++;
        s->refs = 1;
        r = hashmap_put(&fs->snapshots, hash_u64(s->fh), s);
        pthread_mutex_unlock(&fs->lock);
        if (r < 0) {
                fs_root_snapshot_free(s);
                return r;
        }
        ret->fh = s->fh;
        return 0;
}

int fs_root_readdir(struct fs *fs, uint64_t fh, uint64_t off, bool plus, fs_dirent_cb cb, void *userdata) {
        struct root_snapshot *s;
        int r;

        if (!fs->cfg.list_root)
                return -EPERM;
        pthread_mutex_lock(&fs->lock);
        s = hashmap_get(&fs->snapshots, hash_u64(fh), &fh);
        if (s)
                s->refs++;
        pthread_mutex_unlock(&fs->lock);
        if (!s)
                return -EBADF;
        r = off < s->n ? fs_readdir_nodes(fs, s->nodes, s->n, off, plus, true, cb, userdata) : 0;
        snapshot_put(fs, s);
        return r < 0 ? r : 0;
}

int fs_root_releasedir(struct fs *fs, uint64_t fh) {
        struct root_snapshot *s;
        bool last = false;

        pthread_mutex_lock(&fs->lock);
        s = hashmap_remove(&fs->snapshots, hash_u64(fh), &fh);
        if (s) {
                assert(s->refs > 0);
                last = --s->refs == 0;
        }
        pthread_mutex_unlock(&fs->lock);
        if (!s)
                return -EBADF;
        if (last)
                fs_root_snapshot_free(s);
        return 0;
}
