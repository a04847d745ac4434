/* Opening a store: the blob, directory and root services that make up
 * one castore store, chosen by URL:
 *   memory://            everything in memory (tests)
 *   /path or local:///path   the embedded local store:
 *       <dir>/blobs/<2 hex>/<64 hex>   one file per blob
 *       <dir>/tmp/                      temporary files (same filesystem)
 *       <dir>/meta/                     LMDB: directories, roots, ...
 * Upper layers (the Nix PathInfo service) share the local store's LMDB
 * environment through cas_store_lmdb(). */
#pragma once

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"
#include "castore/rootsvc.h"

enum {
        CAS_STORE_CREATE = 1 << 0,   /* create the local store if missing */
        CAS_STORE_READONLY = 1 << 1, /* open LMDB read-only */
};

struct cas_store {
        struct cas_blob_service *blobs;
        struct cas_dir_service *dirs;
        struct cas_root_service *roots;
        struct cas_lmdb *lmdb; /* NULL unless the local store */
        /* A local store the services write what they fetch back into
         * (--cache): owned, freed after the services that borrow it. */
        struct cas_store *cache;
        char *url;
};

/* Errors (each with a log line naming the path):
 *   -ENOENT      the local store is missing (or an empty directory) and
 *                CAS_STORE_CREATE is not given (READONLY ignores CREATE);
 *   -EMEDIUMTYPE the directory holds other files but no castore-store
 *                marker: never turned into a store, even with CREATE;
 *   -EPROTONOSUPPORT  a store of another format version;
 *   -ENOTDIR     the path is not a directory;
 *   -EINVAL      an unknown URL scheme.
 * The local store's LMDB env must not be used across fork(): open the
 * store in the process that uses it. */
int cas_store_open(const char *url, unsigned flags, struct cas_store **ret);
void cas_store_free(struct cas_store *s);

/* A store made of services built elsewhere (remote backends, caches):
 * takes ownership of all of them, also on failure.  cache may be NULL. */
int cas_store_new(const char *url, struct cas_blob_service *blobs, struct cas_dir_service *dirs,
                  struct cas_root_service *roots, struct cas_store *cache, struct cas_store **ret);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_store *, cas_store_free);
