/* PathInfo service wrappers, the store-matched backend choice, the root
 * provider by store path basename, and registration of imported trees as
 * "source" store paths (see pathinfosvc.h). */
#include "store/pathinfosvc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

int nix_pathinfo_get(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        if (!s || !digest || !ret)
                return -EINVAL;
        if (!s->ops->get)
                return -EOPNOTSUPP;
        return s->ops->get(s, digest, ret);
}

int nix_pathinfo_put(struct nix_pathinfo_service *s, const struct nix_pathinfo *pi) {
        const char *why;

        if (!s || !pi)
                return -EINVAL;
        why = nix_pathinfo_check(pi);
        if (why)
                return log_error_errno(-EINVAL, "Refusing invalid PathInfo: %s", why);
        if (!s->ops->put)
                return -EOPNOTSUPP;
        return s->ops->put(s, pi);
}

int nix_pathinfo_remove(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN]) {
        if (!s || !digest)
                return -EINVAL;
        if (!s->ops->remove)
                return -EOPNOTSUPP;
        return s->ops->remove(s, digest);
}

int nix_pathinfo_list(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata) {
        if (!s || !cb)
                return -EINVAL;
        if (!s->ops->list)
                return -EOPNOTSUPP;
        return s->ops->list(s, cb, userdata);
}

void nix_pathinfo_service_free(struct nix_pathinfo_service *s) {
        if (s && s->ops->free)
                s->ops->free(s);
}

int nix_pathinfo_get_path(struct nix_pathinfo_service *s, const struct nix_store_path *p, struct nix_pathinfo **ret) {
        struct nix_pathinfo *pi;
        int r;

        if (!p)
                return -EINVAL;
        r = nix_pathinfo_get(s, p->digest, &pi);
        if (r < 0)
                return r;
        if (!nix_store_path_equal(&pi->path, p)) {
                nix_pathinfo_free(pi);
                return -ENOENT;
        }
        *ret = pi;
        return 0;
}

int nix_pathinfo_open_store(struct cas_store *store, struct nix_pathinfo_service **ret) {
        if (!store || !ret)
                return -EINVAL;
        if (store->lmdb)
                return nix_pathinfo_lmdb_new(store->lmdb, ret);
        return nix_pathinfo_memory_new(ret);
}

/* ---- root provider ---- */

int nix_root_lookup(struct nix_pathinfo_service *s, const char *name, size_t len, struct cas_node *ret,
                    void **ret_mem) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        struct nix_store_path p;
        int r;

        if (!s || !name || !ret || !ret_mem)
                return -EINVAL;
        if (nix_store_path_from_basename(name, len, &p) < 0)
                return -ENOENT;
        r = nix_pathinfo_get_path(s, &p, &pi);
        if (r < 0)
                return r;
        return cas_node_copy(&pi->node, ret, ret_mem);
}

struct names {
        char **v;
        size_t n, cap;
};

static int names_add(void *userdata, const struct nix_pathinfo *pi) {
        struct names *ns = userdata;
        char *s;

        if (ns->n == ns->cap) {
                size_t cap = ns->cap ? 2 * ns->cap : 64;
                char **v = reallocarray(ns->v, cap, sizeof(*v));

                if (!v)
                        return -ENOMEM;
                ns->v = v;
                ns->cap = cap;
        }
        s = strndup(pi->node.name, pi->node.name_len);
        if (!s)
                return -ENOMEM;
        ns->v[ns->n++] = s;
        return 0;
}

static int str_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

void nix_basenames_free(char **names, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

int nix_root_list(struct nix_pathinfo_service *s, char ***ret, size_t *ret_n) {
        struct names ns = {};
        int r;

        if (!ret || !ret_n)
                return -EINVAL;
        r = nix_pathinfo_list(s, names_add, &ns);
        if (r < 0) {
                nix_basenames_free(ns.v, ns.n);
                return r;
        }
        /* basenames are ASCII without NUL: strcmp is the bytewise order */
        if (ns.n > 0)
                qsort(ns.v, ns.n, sizeof(*ns.v), str_cmp);
        *ret = ns.v;
        *ret_n = ns.n;
        return 0;
}

int nix_pathinfo_list_by_name(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata) {
        char **names = NULL;
        size_t n = 0;
        int r;

        if (!cb)
                return -EINVAL;
        r = nix_root_list(s, &names, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
                struct nix_store_path p;

                if (nix_store_path_from_basename(names[i], strlen(names[i]), &p) < 0 ||
                    nix_pathinfo_get_path(s, &p, &pi) < 0)
                        continue; /* replaced meanwhile */
                r = cb(userdata, pi);
        }
        nix_basenames_free(names, n);
        return r < 0 ? r : 0;
}

/* The root provider as a cas_root_service. */
struct nix_root_service {
        struct cas_root_service base;
        struct nix_pathinfo_service *pathinfos; /* borrowed; immutable */
};

static int root_get(struct cas_root_service *s, const char *name, size_t len, struct cas_node *ret, void **ret_mem) {
        return nix_root_lookup(((struct nix_root_service *) s)->pathinfos, name, len, ret, ret_mem);
}

static int root_list(struct cas_root_service *s, cas_root_list_cb cb, void *userdata) {
        struct nix_root_service *rs = (struct nix_root_service *) s;
        char **names = NULL;
        size_t n = 0;
        int r;

        r = nix_root_list(rs->pathinfos, &names, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ void *mem = NULL;
                struct cas_node node;

                r = nix_root_lookup(rs->pathinfos, names[i], strlen(names[i]), &node, &mem);
                if (r == -ENOENT) { /* replaced meanwhile */
                        r = 0;
                        continue;
                }
                if (r >= 0)
                        r = cb(userdata, &node);
        }
        nix_basenames_free(names, n);
        return r < 0 ? r : 0;
}

static void root_free(struct cas_root_service *s) {
        free(s);
}

static const struct cas_root_ops nix_root_ops = {
        .name = "nix",
        .get = root_get,
        .list = root_list,
        .free = root_free,
};

int nix_root_service_new(struct nix_pathinfo_service *s, struct cas_root_service **ret) {
        struct nix_root_service *rs;

        if (!s || !ret)
                return -EINVAL;
        rs = calloc(1, sizeof(*rs));
        if (!rs)
                return -ENOMEM;
        *rs = (struct nix_root_service){ .base.ops = &nix_root_ops, .pathinfos = s };
        *ret = &rs->base;
        return 0;
}

/* ---- registration ---- */

static int refs_cmp(const void *a, const void *b) {
        return nix_store_path_compare(a, b);
}

/* Adds refs (and p itself with self_ref) to pi sorted by basename, each once. */
static int add_sorted_refs(struct nix_pathinfo *pi, const struct nix_store_path *refs, size_t n_refs, bool self_ref) {
        _cleanup_free_ struct nix_store_path *all = calloc(n_refs + 1, sizeof(*all));
        size_t n = n_refs;
        int r;

        if (!all)
                return -ENOMEM;
        if (n_refs > 0)
                memcpy(all, refs, n_refs * sizeof(*all));
        if (self_ref)
                all[n++] = pi->path;
        qsort(all, n, sizeof(*all), refs_cmp);
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && nix_store_path_equal(&all[i - 1], &all[i]))
                        continue;
                r = nix_pathinfo_add_reference(pi, &all[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int nix_register_nar(struct nix_pathinfo_service *s, const struct cas_node *root, const char *name,
                     uint64_t nar_size, const uint8_t nar_sha256[NIX_SHA256_LEN], struct nix_store_path *ret_path) {
        return nix_register_nar_refs(s, root, name, nar_size, nar_sha256, NULL, 0, false, ret_path);
}

int nix_register_nar_refs(struct nix_pathinfo_service *s, const struct cas_node *root, const char *name,
                          uint64_t nar_size, const uint8_t nar_sha256[NIX_SHA256_LEN],
                          const struct nix_store_path *refs, size_t n_refs, bool self_ref,
                          struct nix_store_path *ret_path) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        struct nix_store_path p;
        int r;

        if (!s || !root || !name || !nar_sha256 || (!refs && n_refs))
                return -EINVAL;
        r = nix_store_path_make_source(name, strlen(name), nar_sha256, refs, n_refs, self_ref, &p);
        if (r == -EINVAL)
                return log_error_errno(r, "Invalid store path name \"%s\" (1-211 characters of A-Za-z0-9+-._?=, "
                                          "not . or ..)", name);
        if (r < 0)
                return r;
        r = nix_pathinfo_new(&p, root, nar_size, nar_sha256, &pi);
        if (r < 0)
                return r;
        r = add_sorted_refs(pi, refs, n_refs, self_ref);
        if (r < 0)
                return r;
        pi->has_ca = true;
        pi->ca_type = NIX_CA_NAR_SHA256;
        memcpy(pi->ca_digest, nar_sha256, NIX_SHA256_LEN);
        r = nix_pathinfo_put(s, pi);
        if (r < 0)
                return log_error_errno(r, "Failed to register %s: %m", name);
        if (ret_path)
                *ret_path = p;
        return 0;
}
