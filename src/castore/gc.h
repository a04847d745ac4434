/* The garbage collector: marks every directory and blob reachable from the
 * named roots (and from the roots upper layers add, such as the Nix
 * PathInfos, src/store/gc.h), then removes the unreachable ones, the
 * temporaries of dead writers and outboards without a blob. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "castore/store.h"

struct cas_gc;

/* An upper layer's roots: mark calls cas_gc_mark_node for each; a negative
 * return stops the collection before anything is removed. */
struct cas_gc_layer {
        int (*mark)(struct cas_gc *g, void *userdata);
        void *userdata;
};

struct cas_gc_opts {
        bool dry_run;                      /* count what would be removed, remove nothing */
        bool progress;                     /* a progress line on stderr (util/progress.h) */
        const struct cas_gc_layer *layers; /* marked after the named roots */
        size_t n_layers;
};

struct cas_gc_stats {
        uint64_t roots;                 /* root nodes marked from (named roots and layers') */
        uint64_t live_directories;      /* reachable */
        uint64_t live_blobs;
        uint64_t directories;           /* removed (dry run: would be) */
        uint64_t directory_bytes;       /* their encoded size */
        uint64_t blobs;                 /* removed (dry run: would be) */
        uint64_t blob_bytes;
        uint64_t temporaries;           /* dead writers' temporaries and lock files, orphan outboards */
        uint64_t temporary_bytes;
        uint64_t packs;                 /* pack files rewritten (dry run: would be) */
};

/* Collects store's garbage, holding the store's lock (cas_store_lock)
 * exclusive from the mark to the end of the sweep: waits (saying so in the
 * log) for the importers that hold it.  Directories go first, all in one
 * removal, then blobs, so at no point does a stored directory refer to a
 * removed one or to a removed blob.
 *
 * Refuses (before removing anything) when the marks cannot be trusted: a
 * root, PathInfo or directory record that cannot be read or is corrupt
 * (-EBADMSG, run `castore verify`), a directory a root refers to that is
 * missing (-ENOENT), a service that cannot list or remove
 * (-EOPNOTSUPP: a remote store).  Errors are logged.  *ret_stats is
 * filled as far as the collection went. */
int cas_gc_store(struct cas_store *store, const struct cas_gc_opts *opts, struct cas_gc_stats *ret_stats);

/* ---- for layers ---- */

struct cas_store *cas_gc_store_of(struct cas_gc *g);
/* Marks n and everything below it; referrer names the record for
 * messages.  0 or -errno (logged): -ENOENT or -EBADMSG for a directory
 * below it that is missing or corrupt. */
int cas_gc_mark_node(struct cas_gc *g, const struct cas_node *n, const char *referrer);
