/* The figures of `castore info` (see info.h). */
#include "store/info.h"

#include <errno.h>
#include <stdlib.h>

#include "util/hashmap.h"

/* A distinct tree: its root node's content (kind and digest; a symlink's
 * target adds no bytes and is keyed by kind alone). */
struct tree_key {
        enum cas_node_kind kind;
        bool executable;
        struct cas_digest digest;
};

struct info_ctx {
        struct nix_store_info *info;
        struct cas_tree_bytes *sizer;
        struct hashmap seen; /* struct tree_key * */
};

static bool key_eq(const void *entry, const void *key) {
        const struct tree_key *a = entry, *b = key;

        return a->kind == b->kind && a->executable == b->executable && cas_digest_equal(&a->digest, &b->digest);
}

/* Counts the tree of n once. */
static int add_tree(struct info_ctx *c, const struct cas_node *n) {
        struct tree_key k = { .kind = n->kind, .executable = n->kind == CAS_NODE_FILE && n->executable };
        struct tree_key *e;
        uint64_t bytes;
        int r;

        if (n->kind != CAS_NODE_SYMLINK)
                k.digest = n->digest;
        if (hashmap_get(&c->seen, cas_digest_hash(&k.digest), &k))
                return 0;
        r = cas_tree_bytes_of(c->sizer, n, &bytes);
        if (r < 0)
                return r;
        e = malloc(sizeof(*e));
        if (!e)
                return -ENOMEM;
        *e = k;
        r = hashmap_put(&c->seen, cas_digest_hash(&k.digest), e);
        if (r < 0) {
                free(e);
                return r;
        }
        c->info->trees++;
        c->info->tree_bytes += bytes;
        return 0;
}

static int add_root(void *userdata, const struct cas_node *n) {
        return add_tree(userdata, n);
}

static int add_pathinfo(void *userdata, const struct nix_pathinfo *pi) {
        struct info_ctx *c = userdata;

        c->info->store_paths++;
        c->info->nar_bytes += pi->nar_size;
        return add_tree(c, &pi->node);
}

/* As in usage.c: the first error, unless it was -EBADMSG. */
static int merge(int r, int next) {
        if (r < 0 && r != -EBADMSG)
                return r;
        return next < 0 ? next : r;
}

int nix_store_info(struct cas_store *store, struct nix_pathinfo_service *pis, struct nix_store_info *ret) {
        struct nix_store_info info = {};
        struct info_ctx c = { .info = &info };
        int r;

        if (!store || !ret)
                return -EINVAL;
        r = cas_store_usage(store, &info.cas);
        if (r < 0 && r != -EBADMSG)
                return r;
        r = merge(r, cas_tree_bytes_new(store->dirs, &c.sizer));
        if (r < 0 && r != -EBADMSG)
                return r;
        hashmap_init(&c.seen, key_eq);
        r = merge(r, cas_root_list(store->roots, add_root, &c));
        if (pis && (r >= 0 || r == -EBADMSG))
                r = merge(r, nix_pathinfo_list(pis, add_pathinfo, &c));
        hashmap_done_free(&c.seen);
        cas_tree_bytes_free(c.sizer);
        if (r < 0 && r != -EBADMSG)
                return r;
        *ret = info;
        return r;
}
