/* Read-ahead for NAR rendering: a walker thread visits the tree in NAR
 * order and queues each file's blob; a pool of workers opens them for
 * verified reads and reads the small ones, verified, into memory, so that
 * opening, reading and hashing use every core while the renderer mostly
 * copies and writes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"

/* Files are read ahead into memory in pieces of at most this size (a
 * large file is opened once, its outboard checked, and read as segments
 * by several workers at once).  At most NAR_PREFETCH_BUDGET bytes are held
 * at once. */
#define NAR_PREFETCH_FILE_MAX (8 * 1024 * 1024)
#define NAR_PREFETCH_BUDGET (64 * 1024 * 1024)

struct nar_prefetch;

/* A piece of a file the read-ahead has: all of a file up to
 * NAR_PREFETCH_FILE_MAX, or the next segment of that size of a larger one,
 * every byte verified. */
struct nar_fetched {
        uint8_t *data; /* malloc'd; NULL when len is 0 */
        size_t len;
        bool more;     /* more pieces of the same file follow */
};

/* Starts reading ahead below root with workers threads (0: one per CPU).
 * 0 or -errno (then the caller renders without it). */
int nar_prefetch_start(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                       unsigned workers, struct nar_prefetch **ret);

/* Takes the next piece in NAR order, which must be of file node n.  1:
 * *ret holds it (the caller frees data; while ret->more, the next pieces
 * are of the same file).  0: not read ahead
 * (the walk stopped early), the caller reads it itself.  -errno: reading
 * or verifying it failed (logged): -ENOENT missing, -EBADMSG wrong size or
 * content. */
int nar_prefetch_take(struct nar_prefetch *p, const struct cas_node *n, struct nar_fetched *ret);

/* Stops the walker and the workers, frees what was read ahead.  NULL is
 * fine. */
void nar_prefetch_stop(struct nar_prefetch *p);
