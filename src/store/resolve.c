/* Naming trees: resolution of NAME[/sub/path] (root, store path, digest),
 * the store paths that hold a tree, and removal of store paths under
 * Nix's closure rule (see resolve.h). */
#include "store/resolve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "castore/pathwalk.h"
#include "util/macro.h"

static int fail(int r, char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(int r, char *err, size_t err_size, const char *fmt, ...) {
        va_list ap;

        if (err_size > 0) {
                va_start(ap, fmt);
                vsnprintf(err, err_size, fmt, ap);
                va_end(ap);
        }
        return r;
}

void nix_resolved_done(struct nix_resolved *r) {
        if (!r)
                return;
        free(r->mem);
        nix_pathinfo_free(r->pathinfo);
        r->mem = NULL;
        r->pathinfo = NULL;
}

/* The length of a digest spelling at the start of s followed by the end
 * or "/": CAS_DIGEST_B3_LEN or CAS_DIGEST_HEX_LEN, else 0. */
static size_t digest_prefix(const char *s, struct cas_digest *ret) {
        static const size_t lens[] = { CAS_DIGEST_B3_LEN, CAS_DIGEST_HEX_LEN };
        char buf[CAS_DIGEST_STR_MAX];

        for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
                size_t len = lens[i];

                if (strnlen(s, len + 1) < len || (s[len] != '\0' && s[len] != '/'))
                        continue;
                memcpy(buf, s, len);
                buf[len] = '\0';
                if (cas_digest_parse(buf, ret) >= 0)
                        return len;
        }
        return 0;
}

/* A named root: 1 found, 0 not, or an error. */
static int try_root(struct cas_store *store, const char *arg, struct nix_resolved *ret, struct cas_node *top,
                    char *err, size_t err_size) {
        const char *slash = strchr(arg, '/');
        size_t len = slash ? (size_t) (slash - arg) : strlen(arg);
        int r;

        if (len == 0 || !store->roots)
                return 0;
        r = cas_root_get(store->roots, arg, len, top, &ret->mem);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return fail(r, err, err_size, "Failed to look up root \"%.*s\": %s", (int) len, arg, strerror(-r));
        ret->kind = NIX_NAME_ROOT;
        ret->subpath = slash ? slash + 1 : "";
        return 1;
}

/* A registered store path: 1 found, 0 not a store path spelling or not
 * registered (*ret_unknown set for the latter), or an error. */
static int try_store_path(struct nix_pathinfo_service *pis, const char *arg, struct nix_resolved *ret,
                          struct cas_node *top, bool *ret_unknown, char *err, size_t err_size) {
        const char *sub = strchr(arg, '/');
        int r;

        if (!pis)
                return 0;
        if (arg[0] == '/')
                r = nix_store_path_from_absolute(arg, &ret->path, &sub);
        else
                r = nix_store_path_from_basename(arg, sub ? (size_t) (sub - arg) : strlen(arg), &ret->path);
        if (r < 0)
                return 0;
        if (!sub)
                sub = "";
        r = nix_pathinfo_get_path(pis, &ret->path, &ret->pathinfo);
        if (r == -ENOENT) {
                *ret_unknown = true;
                return 0;
        }
        if (r < 0)
                return fail(r, err, err_size, "%s: cannot look up the store path: %s", arg, strerror(-r));
        r = cas_node_copy(&ret->pathinfo->node, top, &ret->mem);
        if (r < 0)
                return fail(r, err, err_size, "%s", strerror(-r));
        ret->kind = NIX_NAME_STORE_PATH;
        ret->subpath = *sub ? sub + 1 : "";
        return 1;
}

/* A stored directory by digest: 1 found, 0 not a digest spelling, or an
 * error (-ENOENT: not a stored directory). */
static int try_digest(struct cas_store *store, const char *arg, struct nix_resolved *ret, struct cas_node *top,
                      char *err, size_t err_size) {
        struct cas_digest d;
        size_t len = digest_prefix(arg, &d);
        uint64_t size;
        char *name;
        int r;

        if (len == 0)
                return 0;
        r = cas_dir_stat(store->dirs, &d, &size);
        if (r == -ENOENT && cas_blob_stat(store->blobs, &d, &size) >= 0)
                return fail(r, err, err_size, "%.*s is the digest of a file's content, not of a directory",
                            (int) len, arg);
        if (r == -ENOENT)
                return fail(r, err, err_size, "No root, store path or directory named %.*s in the store", (int) len,
                            arg);
        if (r < 0)
                return fail(r, err, err_size, "%.*s: %s", (int) len, arg, strerror(-r));
        name = strndup(arg, len);
        if (!name)
                return -ENOMEM;
        ret->mem = name;
        *top = (struct cas_node){
                .kind = CAS_NODE_DIRECTORY, .name = name, .name_len = len, .digest = d, .size = size,
        };
        ret->kind = NIX_NAME_DIGEST;
        ret->subpath = arg[len] ? arg + len + 1 : "";
        return 1;
}

/* Looks the name up: 0 and top (strings in ret->mem), or an error. */
static int resolve_name(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg,
                        struct nix_resolved *ret, struct cas_node *top, char *err, size_t err_size) {
        bool unknown_path = false;
        int r;

        r = try_root(store, arg, ret, top, err, err_size);
        if (r == 0)
                r = try_store_path(pis, arg, ret, top, &unknown_path, err, err_size);
        if (r == 0)
                r = try_digest(store, arg, ret, top, err, err_size);
        if (r > 0)
                return 0;
        if (r < 0)
                return r;
        if (unknown_path)
                return fail(-ENOENT, err, err_size, "%s: no such store path in the store", arg);
        if (arg[0] == '\0' || arg[0] == '/')
                return fail(-EINVAL, err, err_size, "\"%s\": expected a root name, a store path "
                                                    "(/nix/store/HASH-NAME) or a directory digest", arg);
        return fail(-ENOENT, err, err_size, "No root, store path or directory named \"%.*s\" in the store",
                    (int) strcspn(arg, "/"), arg);
}

int nix_resolve(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, unsigned flags,
                struct nix_resolved *ret, char *err, size_t err_size) {
        struct nix_resolved res = {};
        struct cas_node top;
        void *walk_mem = NULL;
        int r;

        if (!store || !arg || !ret)
                return -EINVAL;
        r = resolve_name(store, pis, arg, &res, &top, err, err_size);
        if (r >= 0 && (flags & NIX_RESOLVE_NO_WALK))
                res.node = top;
        else if (r >= 0) {
                r = cas_walk_path(store->dirs, &top, res.subpath, &res.node, &walk_mem);
                if (r == -ENOENT)
                        r = fail(r, err, err_size, "%s: No such file or directory", arg);
                else if (r == -ENOTDIR)
                        r = fail(r, err, err_size, "%s: Not a directory", arg);
                else if (r == -EINVAL)
                        r = fail(r, err, err_size, "%s: \"..\" is not allowed", arg);
                else if (r < 0)
                        r = fail(r, err, err_size, "%s: %s", arg, strerror(-r));
                free(res.mem);
                res.mem = walk_mem;
        }
        if (r < 0) {
                nix_resolved_done(&res);
                return r;
        }
        *ret = res;
        return 0;
}

struct find_ctx {
        const struct cas_node *node;
        nix_pathinfo_list_cb cb;
        void *userdata;
        int found;
};

static int find_one(void *userdata, const struct nix_pathinfo *pi) {
        struct find_ctx *c = userdata;

        if (!cas_node_same_content(&pi->node, c->node))
                return 0;
        c->found++;
        return c->cb(c->userdata, pi);
}

int nix_pathinfo_find_node(struct nix_pathinfo_service *s, const struct cas_node *node, nix_pathinfo_list_cb cb,
                           void *userdata) {
        struct find_ctx c = { node, cb, userdata, 0 };
        int r;

        if (!s || !node || !cb)
                return -EINVAL;
        r = nix_pathinfo_list_by_name(s, find_one, &c);
        return r < 0 ? r : c.found;
}

struct referrer_ctx {
        const struct nix_store_path *paths;
        size_t n;
        char *err;
        size_t err_size;
};

static bool in_set(const struct referrer_ctx *c, const struct nix_store_path *p) {
        for (size_t i = 0; i < c->n; i++)
                if (nix_store_path_equal(&c->paths[i], p))
                        return true;
        return false;
}

/* A registered path outside the set that refers into it stops the walk
 * with -EBUSY. */
static int check_referrer(void *userdata, const struct nix_pathinfo *pi) {
        struct referrer_ctx *c = userdata;
        char a[NIX_PATH_MAX + 1], b[NIX_PATH_MAX + 1];

        if (in_set(c, &pi->path))
                return 0;
        for (size_t i = 0; i < pi->n_references; i++) {
                if (!in_set(c, &pi->references[i]))
                        continue;
                nix_store_path_absolute(&pi->references[i], a);
                nix_store_path_absolute(&pi->path, b);
                return fail(-EBUSY, c->err, c->err_size, "%s is referenced by %s", a, b);
        }
        return 0;
}

int nix_pathinfo_remove_paths(struct nix_pathinfo_service *s, const struct nix_store_path *paths, size_t n,
                              bool force, char *err, size_t err_size) {
        struct referrer_ctx c = { paths, n, err, err_size };
        char path[NIX_PATH_MAX + 1];
        int r;

        if (!s || (!paths && n > 0))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;

                nix_store_path_absolute(&paths[i], path);
                r = nix_pathinfo_get_path(s, &paths[i], &pi);
                if (r == -ENOENT)
                        return fail(r, err, err_size, "%s: no such store path in the store", path);
                if (r < 0)
                        return fail(r, err, err_size, "%s: %s", path, strerror(-r));
        }
        if (!force) {
                r = nix_pathinfo_list(s, check_referrer, &c);
                if (r == -EBUSY)
                        return r;
                if (r < 0)
                        return fail(r, err, err_size, "Cannot list the store paths: %s", strerror(-r));
        }
        for (size_t i = 0; i < n; i++) {
                r = nix_pathinfo_remove(s, paths[i].digest);
                if (r == -ENOENT)
                        continue; /* named twice, or removed meanwhile */
                nix_store_path_absolute(&paths[i], path);
                if (r == -EOPNOTSUPP)
                        return fail(r, err, err_size, "%s: this PathInfo service (%s) cannot remove store paths",
                                    path, s->ops->name);
                if (r < 0)
                        return fail(r, err, err_size, "%s: %s", path, strerror(-r));
        }
        return 0;
}
