/* Write-back caches: a near service (a local store) in front of a far one
 * (a remote daemon).  Reads are served from near; what near lacks is
 * fetched from far, verified, written into near and served from there
 * (snix's combined/cache layers read through without writing back).
 * Writes go to far, then near.  Listings show near.  Each constructor
 * borrows near (it must outlive the cache) and takes ownership of far,
 * also on failure. */
#pragma once

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"

int cas_blob_cache_new(struct cas_blob_service *near, struct cas_blob_service *far, struct cas_blob_service **ret);
/* Fetches blob d into near in the background (8 fetches at once), unless
 * near has it: for the files of a directory closure just fetched, so that
 * a walk of the tree finds them near.  Never blocks: -EAGAIN when the
 * queue is full.  Queued fetches are dropped when the cache is freed. */
int cas_blob_cache_prefetch(struct cas_blob_service *s, const struct cas_digest *d);
/* A missing directory is fetched with its whole closure in one recursive
 * get and stored near in one batch. */
int cas_dir_cache_new(struct cas_dir_service *near, struct cas_dir_service *far, struct cas_dir_service **ret);
/* After each closure it fetches, the directory cache prefetches the files
 * up to 1 MiB of it into blobs (a blob cache, borrowed): for serving
 * daemons, whose users walk trees. */
void cas_dir_cache_set_prefetch(struct cas_dir_service *s, struct cas_blob_service *blobs);
