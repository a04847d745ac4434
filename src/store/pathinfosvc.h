/* PathInfo service: PathInfos keyed by the 20-byte digest of their store
 * path (tvix.store.v1.PathInfoService Get/Put/List).  One ops table per
 * backend: memory:// and LMDB (database "pathinfo" in the local store's
 * environment).  Callers use the nix_pathinfo_* wrappers, which validate
 * and turn a NULL op into -EOPNOTSUPP.  All operations are thread-safe.
 *
 * Also here: the root provider the filesystem needs (look up a store path
 * basename, list basenames in order) and the registration of a stored
 * tree as a content-addressed store path. */
#pragma once

#include "castore/rootsvc.h"
#include "castore/store.h"
#include "store/pathinfo.h"

struct nix_pathinfo_service;

/* Called by list() for each PathInfo (borrowed for the call; any order).
 * A negative return stops the walk and is returned by list(). */
typedef int (*nix_pathinfo_list_cb)(void *userdata, const struct nix_pathinfo *pi);

struct nix_pathinfo_ops {
        const char *name;
        /* A validated PathInfo owned by the caller; -ENOENT if absent;
         * -EBADMSG if the stored record does not decode. */
        int (*get)(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret);
        /* Adds or replaces the PathInfo of pi->path (already validated). */
        int (*put)(struct nix_pathinfo_service *s, const struct nix_pathinfo *pi);
        /* Removes the PathInfo stored under digest; -ENOENT if absent.
         * NULL (the grpc backend: the protocol has no delete): the wrapper
         * returns -EOPNOTSUPP. */
        int (*remove)(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN]);
        int (*list)(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata);
        void (*free)(struct nix_pathinfo_service *s);
};

/* Backends embed this as their first member. */
struct nix_pathinfo_service {
        const struct nix_pathinfo_ops *ops;
};

int nix_pathinfo_get(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret);
/* -EINVAL for a PathInfo that nix_pathinfo_check refuses (logged). */
int nix_pathinfo_put(struct nix_pathinfo_service *s, const struct nix_pathinfo *pi);
/* Removes the registration only: the tree stays in the store until the
 * garbage collector finds it unreachable. */
int nix_pathinfo_remove(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN]);
int nix_pathinfo_list(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata);
void nix_pathinfo_service_free(struct nix_pathinfo_service *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_pathinfo_service *, nix_pathinfo_service_free);

/* Gets the PathInfo of exactly this store path: -ENOENT also when the
 * digest is known under another name. */
int nix_pathinfo_get_path(struct nix_pathinfo_service *s, const struct nix_store_path *p, struct nix_pathinfo **ret);

int nix_pathinfo_memory_new(struct nix_pathinfo_service **ret);
/* A write-back cache (castore/cache.h): near in front of far, both owned
 * (also on failure). */
int nix_pathinfo_cache_new(struct nix_pathinfo_service *near, struct nix_pathinfo_service *far,
                           struct nix_pathinfo_service **ret);
struct cas_lmdb;
int nix_pathinfo_lmdb_new(struct cas_lmdb *db, struct nix_pathinfo_service **ret);
/* PostgreSQL (castore/pg.h), table pathinfos: takes a reference on pg. */
struct cas_pg;
int nix_pathinfo_pg_new(struct cas_pg *pg, struct nix_pathinfo_service **ret);

/* The PathInfo service that goes with a store: LMDB in the local store's
 * environment (shared with the castore services; the store must outlive
 * the service), a fresh memory one for memory://. */
int nix_pathinfo_open_store(struct cas_store *store, struct nix_pathinfo_service **ret);

/* ---- root provider (the filesystem's /nix/store) ---- */

/* The root node of the store path basename name[0..len): *ret is named by
 * the basename, its strings in *ret_mem (free()).  -ENOENT if name is not
 * a valid basename, is unknown, or its digest is registered under another
 * name. */
int nix_root_lookup(struct nix_pathinfo_service *s, const char *name, size_t len, struct cas_node *ret,
                    void **ret_mem);

/* All registered basenames, sorted bytewise: *ret is a malloc'ed array of
 * *ret_n malloc'ed strings (nix_basenames_free). */
int nix_root_list(struct nix_pathinfo_service *s, char ***ret, size_t *ret_n);
void nix_basenames_free(char **names, size_t n);

/* Calls cb with every PathInfo in basename order (the order the
 * filesystem lists them), each fetched in its own lookup: one that cannot
 * be fetched any more (removed or replaced since the listing, or a corrupt
 * record, which the backend logs) is skipped.  A negative return of cb
 * stops the walk and is returned. */
int nix_pathinfo_list_by_name(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata);

/* The same as a read-only cas_root_service (get, and list in ascending
 * name order; put and remove are -EOPNOTSUPP), for code that serves named
 * roots.  Borrows s, which must outlive it. */
int nix_root_service_new(struct nix_pathinfo_service *s, struct cas_root_service **ret);

/* ---- registration ---- */

/* Registers root (already in the store) as the content-addressed "source"
 * path called name, as nix-store --add would: PathInfo with the NAR size
 * and hash given, no references, CA = NAR_SHA256 of the NAR.  *ret_path
 * (optional) gets the store path.  -EINVAL for a bad name.  The NAR figures
 * come from nar_ingest (a NAR stream) or, for a local tree, from
 * nix_import_tree (nix_import.h), which calls this. */
int nix_register_nar(struct nix_pathinfo_service *s, const struct cas_node *root, const char *name,
                     uint64_t nar_size, const uint8_t nar_sha256[NIX_SHA256_LEN], struct nix_store_path *ret_path);

/* The same with references: the path is the one Nix computes for a
 * content-addressed path with these references (type "source:<ref>...",
 * ":self" appended with self_ref), and its PathInfo lists them sorted as
 * Nix does (by basename, each once, the path itself included with
 * self_ref).  Whether the references are registered is the caller's
 * business. */
int nix_register_nar_refs(struct nix_pathinfo_service *s, const struct cas_node *root, const char *name,
                          uint64_t nar_size, const uint8_t nar_sha256[NIX_SHA256_LEN],
                          const struct nix_store_path *refs, size_t n_refs, bool self_ref,
                          struct nix_store_path *ret_path);

/* Nix binary caches as a PathInfo service, read on demand (snix's
 * nix+http:// and nix+https://, and nix+file:///DIR), with
 * ?trusted-public-keys=NAME:KEY (space-separated, percent-encoded;
 * required).  A path asked for and not in near is fetched: narinfo,
 * signature, NAR streamed into store's blobs and directories with every
 * hash checked, then registered in near and returned.  -ENOENT when the
 * cache has no such path; -EIO when it could not be fetched or checked
 * (logged with the reason).  Puts are refused (-EROFS); removals and the
 * listing are near's (what has been fetched).  store is borrowed (it
 * must outlive the service); near is owned (also on failure). */
bool nix_pathinfo_url_is_cache(const char *url);
int nix_pathinfo_nixcache_new(const char *url, struct cas_store *store, struct nix_pathinfo_service *near,
                              struct nix_pathinfo_service **ret);
