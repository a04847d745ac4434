/* The tree importer: walks a local file, symlink or directory tree,
 * hashes and stores file contents on all cores, builds the Merkle
 * Directory messages bottom-up and stores them.  Memory stays bounded
 * whatever the tree size (a bounded job queue, directories flushed to the
 * store in batches).  Crash-safe: directories are only stored after the
 * blobs they reference are durable, so a killed import leaves a consistent
 * store and a re-import completes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "castore/directory.h"
#include "castore/store.h"

struct cas_import_opts {
        unsigned threads;   /* hashing workers; 0 = one per CPU */
        bool skip_special;  /* skip devices/fifos/sockets instead of failing */
        bool progress;      /* progress line on stderr */
        bool no_pack;       /* store small files as loose blobs, not in packs (CAS_BLOB_PACK) */
};

struct cas_import_stats {
        uint64_t files, directories, symlinks, skipped;
        uint64_t bytes;     /* file content bytes read */
};

/* Imports path.  On success *ret is the root node (name empty; strings in
 * *ret_mem, free() it) and its blobs and directories are in the store and
 * durable.  Special files give -EINVAL naming the path unless
 * skip_special; unreadable files their -errno.  Nothing is registered as a
 * root here: that is the caller's choice.  Holds the store's lock
 * (cas_store_lock) shared while it runs, so the garbage collector cannot
 * take what it stored; a caller that registers the result holds the lock
 * itself from before this call until the registration (shared holds
 * nest), or the tree may be collected in between. */
int cas_import_path(struct cas_store *store, const char *path, const struct cas_import_opts *opts,
                    struct cas_node *ret, void **ret_mem, struct cas_import_stats *ret_stats);
