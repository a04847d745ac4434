/* Read-ahead for NAR rendering: a walker thread visits the tree in NAR
 * order and queues each file's blob; a pool of workers opens them for
 * verified reads and reads the small ones, verified, into memory, so that
 * opening, reading and hashing use every core while the renderer mostly
 * copies and writes. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"
#include "castore/vblob.h"

/* Files up to this size are read ahead into memory; larger ones are
 * opened ahead (outboard checked) and streamed, verified, by the renderer.
 * At most NAR_PREFETCH_BUDGET bytes are held at once. */
#define NAR_PREFETCH_FILE_MAX (8 * 1024 * 1024)
#define NAR_PREFETCH_BUDGET (64 * 1024 * 1024)

struct nar_prefetch;

/* What the read-ahead has for one file. */
struct nar_fetched {
        /* size <= NAR_PREFETCH_FILE_MAX: its verified bytes (malloc'd; NULL
         * for an empty file) */
        uint8_t *data;
        /* larger: the blob open for verified reads */
        struct cas_vblob *blob;
};

/* Starts reading ahead below root with workers threads (0: one per CPU);
 * output: the render writes the bytes out (else it only hashes them).  0
 * or -errno (then the caller renders without it). */
int nar_prefetch_start(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                       bool output, unsigned workers, struct nar_prefetch **ret);

/* Takes the next file in NAR order, which must be file node n.  1: *ret
 * holds it (the caller frees data and closes blob).  0: not read ahead
 * (the walk stopped early), the caller reads it itself.  -errno: reading
 * or verifying it failed (logged): -ENOENT missing, -EBADMSG wrong size or
 * content. */
int nar_prefetch_take(struct nar_prefetch *p, const struct cas_node *n, struct nar_fetched *ret);

/* Stops the walker and the workers, frees what was read ahead.  NULL is
 * fine. */
void nar_prefetch_stop(struct nar_prefetch *p);
