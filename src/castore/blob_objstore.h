/* The object-store blob service, in snix's `objectstore` layout (see
 * docs/OBJECTSTORE.md): blobs cut into FastCDC chunks, each stored
 * zstd-compressed under its BLAKE3 at chunks/b3/<4 hex>/<64 hex>; a blob of
 * two or more chunks has an index (a StatBlobResponse listing them) at
 * blobs/b3/<4 hex>/<64 hex>, and, above one 16 KiB group, its outboard at
 * outboards/b3/<4 hex>/<64 hex> (castore's addition, which snix ignores). */
#pragma once

#include "castore/blobsvc.h"
#include "castore/objstore.h"

/* url: objectstore+<object store URL>[?avg_chunk_size=N&...] (see
 * objstore.h for the stores; other query options go to the object store).
 * -EINVAL with a log line for a bad URL or option. */
int cas_blob_objstore_open(const char *url, struct cas_blob_service **ret);
/* Takes ownership of objs, also on failure.  avg: the average chunk size,
 * -EINVAL outside [CAS_FASTCDC_AVG_MIN, CAS_FASTCDC_AVG_MAX]. */
int cas_blob_objstore_new(struct cas_objstore *objs, size_t avg, struct cas_blob_service **ret);
/* The directory of the file object store url names
 * (objectstore+file://DIR[?...]), malloc'ed as written there; NULL for
 * another URL (or no memory). */
char *cas_blob_objstore_file_dir(const char *url);
/* Whether url names an object-store blob service. */
bool cas_blob_url_is_objstore(const char *url);
/* The object store under s (its counters, for tests), or NULL if s is
 * another kind of service. */
struct cas_objstore *cas_blob_objstore_objects(struct cas_blob_service *s);
