/* What a store holds: counts and bytes of blobs (logical and on disk),
 * directories and named roots, and the bytes of the files in trees, for
 * `castore info` and its dedup ratio. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "castore/store.h"

struct cas_usage {
        uint64_t blobs;           /* stored blobs */
        uint64_t blob_bytes;      /* their sizes added up (each blob once) */
        uint64_t blob_disk_bytes; /* allocated on disk: blob files and outboards */
        bool blob_disk_known;     /* false: the blob backend cannot say (memory) */
        uint64_t dirs;            /* stored directories */
        uint64_t dir_bytes;       /* their stored encodings added up */
        uint64_t roots;           /* named roots */
};

/* Walks the blob, directory and root listings.  A corrupt record skipped
 * by a listing is not counted and the walk goes on; the result is then
 * -EBADMSG with *ret filled all the same.  A backend that cannot list
 * (grpc) gives -EOPNOTSUPP.  Logs nothing of its own. */
int cas_store_usage(struct cas_store *store, struct cas_usage *ret);

/* Adds up the sizes of the files in trees, each occurrence counted: a
 * file that appears twice counts twice, as it would on disk after an
 * export.  Remembers the total of every directory it walked, so trees
 * that share directories are walked once.  Not thread-safe. */
struct cas_tree_bytes;
int cas_tree_bytes_new(struct cas_dir_service *dirs, struct cas_tree_bytes **ret);
/* The file bytes of the tree of n (a file: its size; a symlink: 0).
 * -ENOENT a directory of the tree is missing, or the service's error. */
int cas_tree_bytes_of(struct cas_tree_bytes *t, const struct cas_node *n, uint64_t *ret);
void cas_tree_bytes_free(struct cas_tree_bytes *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_tree_bytes *, cas_tree_bytes_free);
