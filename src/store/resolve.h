/* One way to name a tree in the store, for every command and daemon call
 * that takes one: a named root, a Nix store path (absolute or its
 * basename) or the digest of a stored directory, each with an optional
 * /sub/path; and the registrations that hold a given tree. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "castore/store.h"
#include "store/pathinfosvc.h"

enum nix_name_kind {
        NIX_NAME_ROOT = 1,   /* a named root */
        NIX_NAME_STORE_PATH, /* /nix/store/HASH-NAME or HASH-NAME */
        NIX_NAME_DIGEST,     /* b3:BASE64 or 64 hex digits of a stored directory */
};

enum {
        /* Stop at the node the name names: the sub path is not walked
         * (ret->subpath still points at it). */
        NIX_RESOLVE_NO_WALK = 1 << 0,
};

struct nix_resolved {
        enum nix_name_kind kind;
        /* The node reached: the named node itself without a sub path (a
         * root's node is named by the root, a store path's by its
         * basename, a digest's by the digest as spelled), else the entry
         * the sub path leads to.  Its strings live in mem. */
        struct cas_node node;
        void *mem;
        /* NIX_NAME_STORE_PATH: the store path and its PathInfo (owned). */
        struct nix_store_path path;
        struct nix_pathinfo *pathinfo;
        /* Inside arg: the sub path after the name ("" if none). */
        const char *subpath;
};

/* Frees what a successful nix_resolve put in *r. */
void nix_resolved_done(struct nix_resolved *r);

/* Resolves arg, "NAME[/sub/path]", to a node.  NAME is, first match wins:
 *   - the name of a named root (the part before the first "/"); so a root
 *     may shadow the other spellings, which a registration never does;
 *   - a store path, /nix/store/HASH-NAME or HASH-NAME, registered in pis
 *     (pis may be NULL: no store paths);
 *   - the digest of a stored directory: "b3:" + 44 base64 characters
 *     (which may contain "/": the length delimits it) or 64 hex digits.
 * The sub path is walked through directory entries without following
 * symlinks (".", empty components skipped, ".." refused).
 * Returns 0 and *ret (nix_resolved_done), or a negative errno with a
 * one-line message in err (err_size bytes; may be 0): -ENOENT no such
 * name, or a digest that is not a stored directory, or a missing entry;
 * -ENOTDIR a sub path through a non-directory; -EINVAL an empty name or
 * ".."; a service's error.  Logs nothing. */
int nix_resolve(struct cas_store *store, struct nix_pathinfo_service *pis, const char *arg, unsigned flags,
                struct nix_resolved *ret, char *err, size_t err_size);

/* Calls cb with the PathInfo of every store path whose root node has the
 * content of node (cas_node_same_content), in basename order.  Returns
 * the number of matches, or a negative errno (cb's, or the service's). */
int nix_pathinfo_find_node(struct nix_pathinfo_service *s, const struct cas_node *node, nix_pathinfo_list_cb cb,
                           void *userdata);

/* Removes the PathInfos of paths[0..n).  Unless force, first applies
 * Nix's closure rule: a path that a registered store path outside the set
 * refers to (a reference to itself does not count) is not removed, and
 * then nothing is: -EBUSY, err saying which path refers to which.  Every
 * path must be registered (-ENOENT otherwise, nothing removed).  The check
 * and the removals are not one transaction: a path registered meanwhile
 * that refers to one of them is not seen.  A backend without removal
 * (grpc) gives -EOPNOTSUPP.  Trees stay in the store.  Logs nothing. */
int nix_pathinfo_remove_paths(struct nix_pathinfo_service *s, const struct nix_store_path *paths, size_t n,
                              bool force, char *err, size_t err_size);
