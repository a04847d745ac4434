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

#include <pthread.h>
#include <stdbool.h>

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
        /* The garbage collector's lock (cas_store_lock): the local store's
         * <dir>/gc.lock, or NULL and gc_rwlock for any other store. */
        char *lock_path;            /* immutable */
        pthread_rwlock_t gc_rwlock; /* reader-preferring, so shared holds nest */
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

/* ---- the garbage collector's lock ----
 * Whoever adds a reference to stored content (an importer storing blobs,
 * then directories, then a root or PathInfo naming them) holds the lock
 * shared from its first write to its last registration; the garbage
 * collector (castore/gc.h) holds it exclusive from its mark to the end of
 * its sweep.  So nothing an import stored can be swept before the import
 * registered it, and nothing registered during a collection was marked
 * against an older state.  The local store's lock is flock() on
 * <dir>/gc.lock through a descriptor of its own per holder: it works
 * between processes and between threads of one process alike.  Other
 * stores use an in-process rwlock.  Shared holds nest (flock grants a
 * shared lock while only shared ones are held, even with an exclusive one
 * waiting; the rwlock prefers readers).  Readers (mounts, exports) never
 * take it. */
struct cas_store_lock;
/* Takes s's lock shared or exclusive.  wait: block until granted; else
 * -EBUSY when it is held in a conflicting way.  -errno if the lock file
 * cannot be opened (a store the caller cannot write). */
int cas_store_lock(struct cas_store *s, bool exclusive, bool wait, struct cas_store_lock **ret);
void cas_store_unlock(struct cas_store_lock *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_store_lock *, cas_store_unlock);
