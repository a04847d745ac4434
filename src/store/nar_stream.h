/* A pull-style NAR: the bytes [offset, offset + length) of a path's NAR,
 * read as a stream.  nar_render pushes; servers that pull (an HTTP
 * library asking for the next block) read this instead. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"

struct nar_stream;

/* Starts rendering the NAR of root (copied) on a thread of its own,
 * keeping the bytes from offset on, at most length of them.  The bytes
 * before offset are rendered and dropped: a range late in a NAR costs the
 * reading and verifying of everything before it.  The services must
 * outlive the stream.  0, -ENOMEM or -errno (thread, socket). */
int nar_stream_open(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                    uint64_t offset, uint64_t length, struct nar_stream **ret);

/* Reads up to len bytes: the count, 0 once all length bytes came, or the
 * render's -errno (-EBADMSG for a damaged blob, -ENOENT for a missing
 * one; logged by the renderer) once the bytes it rendered before failing
 * were read.  Every byte is one nar_render emitted: verified.  The end
 * before length bytes came is -EIO. */
ssize_t nar_stream_read(struct nar_stream *st, void *buf, size_t len);

/* Stops the render (if still going: its writes fail) and frees st.  NULL
 * is fine. */
void nar_stream_free(struct nar_stream *st);
