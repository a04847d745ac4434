/* Verified file contents for the NAR renderer: the one seam between the
 * castore walk (nar_render.c) and blob reading.  Behind it: the parallel
 * read-ahead (nar_prefetch.c) and the serial fallback, both of which only
 * ever hand the writer bytes that hash to the file's digest. */
#pragma once

#include <stdbool.h>

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"
#include "store/nar_writer.h"

struct nar_contents;

/* Sets up the contents of the files below root for one render.  serial:
 * read and verify on the calling thread only; otherwise a read-ahead starts
 * (and if it cannot, the render goes on serially).  0 or -ENOMEM.  Hashing
 * only and writing out read the same way: nothing is trusted unchecked. */
int nar_contents_new(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                     bool serial, struct nar_contents **ret);

/* Writes the contents of file node n to w, which has just begun it
 * (nar_write_file_begin with n->size): exactly n->size bytes.  Must be
 * called for the files in NAR order (the read-ahead walks that order).
 *
 * No byte of a blob that does not hash to n->digest reaches w: every
 * byte comes from the verified blob reader (src/castore/vblob.h), which
 * checks each 16 KiB group before handing it over.  Blobs up to
 * NAR_PREFETCH_FILE_MAX are read ahead into memory; larger ones are read
 * into the writer's buffer group by group.  A damaged group fails the
 * render with -EBADMSG after the groups before it were written, which is
 * why the output of a failed render must be discarded (it never holds a
 * wrong byte, only too few).
 *
 * Errors (logged): -ENOENT missing blob, -EBADMSG wrong size or content,
 * the blob service's or the sink's -errno. */
int nar_contents_write(struct nar_contents *c, const struct cas_node *n, struct nar_writer *w);

/* Stops the read-ahead and frees c.  NULL is fine. */
void nar_contents_free(struct nar_contents *c);
