/* Verified blob reads: the one read path that lets bytes leave the store.
 * Every range read is checked against the blob's digest (the trust anchor
 * from the Directory) by hashing only the 16 KiB groups it covers, using
 * the blob's outboard (src/castore/outboard.h); no byte that fails the
 * check is ever returned.  cat, export, NAR rendering, the filesystem and
 * verify all read through here. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "castore/blobsvc.h"
#include "castore/digest.h"
#include "util/macro.h"

struct cas_vblob;

/* Opens blob d, which the caller's Directory says has `size` bytes.
 * Loads the stored outboard (and checks it against d) or, when there is
 * none or it is damaged, builds it by reading the blob once and stores it
 * where the backend keeps outboards.  Errors: -ENOENT (no such blob),
 * -EBADMSG (the blob's size or content does not match), read errors. */
int cas_vblob_open(struct cas_blob_service *s, const struct cas_digest *d, uint64_t size, struct cas_vblob **ret);

/* Reads up to len bytes at off, every one verified: the count (0 at or
 * past the end), or -EBADMSG if a covered group fails its check or the
 * stored blob is shorter than its size; other read errors as -errno.
 * Thread-safe: one cas_vblob may serve many threads. */
ssize_t cas_vblob_pread(struct cas_vblob *v, void *buf, size_t len, uint64_t off);

/* Receives verified bytes in order; a negative return stops the copy and
 * is returned by it. */
typedef int (*cas_vblob_sink)(void *userdata, const void *buf, size_t len);

/* Streams [off, off + len) (clamped at the end) to sink in pieces, each
 * verified before it is handed over.  0 or -errno. */
int cas_vblob_copy(struct cas_vblob *v, uint64_t off, uint64_t len, cas_vblob_sink sink, void *userdata);

/* Re-reads and re-hashes the whole blob, and checks that the stored blob
 * holds no byte past its size: 0 or -EBADMSG.  For checkers. */
int cas_vblob_check(struct cas_vblob *v);

uint64_t cas_vblob_size(const struct cas_vblob *v);
/* The underlying reader, for callers that hand the blob file itself to
 * the kernel (FUSE passthrough): what the kernel then reads is NOT
 * verified by castore. */
struct cas_blob_reader *cas_vblob_reader(struct cas_vblob *v);

void cas_vblob_close(struct cas_vblob *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_vblob *, cas_vblob_close);

/* The outboard of the blob as the open verified it (trusted), and its
 * length (0 for a blob of one group or less). */
const uint8_t *cas_vblob_outboard(const struct cas_vblob *v, size_t *ret_len);
