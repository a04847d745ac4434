/* Read-ahead for NAR rendering: a walker thread visits the tree in NAR
 * order and queues each file's blob; a pool of workers BLAKE3-verifies
 * them (small ones into memory, large ones in place), so that the renderer
 * finds each file checked, and reading and hashing use every core while
 * the renderer only copies and writes. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"

/* Files up to this size are read ahead into memory; larger ones are
 * verified ahead and streamed by the renderer.  At most
 * NAR_PREFETCH_BUDGET bytes are held at once. */
#define NAR_PREFETCH_FILE_MAX (8 * 1024 * 1024)
#define NAR_PREFETCH_BUDGET (64 * 1024 * 1024)

struct nar_prefetch;

/* What the read-ahead has for one file. */
struct nar_fetched {
        /* size <= NAR_PREFETCH_FILE_MAX: its verified bytes (malloc'd; NULL
         * for an empty file) */
        uint8_t *data;
        /* larger: the blob as an open reader, verified in full unless it
         * has no fd and nothing is output (then the renderer's own hashing
         * pass is the only one) */
        struct cas_blob_reader *reader;
        bool verified;
        /* reader->fd's ctime (ns) before it was verified, -1 without fd: a
         * file whose ctime is still this after streaming did not change */
        int64_t ctime_ns;
};

/* Starts reading ahead below root with workers threads (0: one per CPU);
 * output: the render writes the bytes out (else it only hashes them).  0
 * or -errno (then the caller renders without it). */
int nar_prefetch_start(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                       bool output, unsigned workers, struct nar_prefetch **ret);

/* Takes the next file in NAR order, which must be file node n.  1: *ret
 * holds it (the caller frees data and closes reader).  0: not read ahead
 * (the walk stopped early), the caller reads it itself.  -errno: reading
 * or verifying it failed (logged): -ENOENT missing, -EBADMSG wrong size or
 * content. */
int nar_prefetch_take(struct nar_prefetch *p, const struct cas_node *n, struct nar_fetched *ret);

/* Stops the walker and the workers, frees what was read ahead.  NULL is
 * fine. */
void nar_prefetch_stop(struct nar_prefetch *p);
