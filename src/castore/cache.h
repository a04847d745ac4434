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
/* A missing directory is fetched with its whole closure in one recursive
 * get and stored near in one batch. */
int cas_dir_cache_new(struct cas_dir_service *near, struct cas_dir_service *far, struct cas_dir_service **ret);
