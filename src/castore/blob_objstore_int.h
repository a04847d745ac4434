/* The object-store blob service's pieces (blob_objstore.h), shared by its
 * files: the service, its objects (chunks and indexes: this file's
 * functions), reads, writes, listing and removal. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "castore/blob_objstore.h"

/* Limits on what the store may hand us (its objects are untrusted). */
#define CHUNK_MAX (16u << 20)               /* the Rust crate's largest maximum */
#define OBJECT_MAX (CHUNK_MAX + (1u << 20)) /* a compressed chunk */
#define INDEX_MAX (64u << 20)
#define OUTBOARD_MAX (256u << 20)           /* a blob of 128 TiB */
#define KEY_MAX 96

struct blob_objstore {
        struct cas_blob_service base;
        struct cas_objstore *objs; /* owned; thread-safe */
        size_t avg;                /* immutable */
};

struct chunk_ref {
        struct cas_digest digest;
        uint64_t off, size;
};

static inline struct blob_objstore *to_objstore(struct cas_blob_service *s) {
        return (struct blob_objstore *) s;
}

/* kind/b3/<first 2 bytes in hex>/<hex digest> into ret (KEY_MAX bytes). */
void objstore_key(char *ret, const char *kind, const struct cas_digest *d);
/* Chunk d, decompressed and checked to hash to d (malloc'ed): -ENOENT,
 * -EBADMSG (not zstd, too large, other bytes), or the store's error. */
int objstore_chunk_get(struct blob_objstore *s, const struct cas_digest *d, uint8_t **ret, size_t *ret_len);
/* Compresses and uploads chunk data, whose digest is d, unasked. */
int objstore_chunk_upload(struct blob_objstore *s, const uint8_t *data, size_t len, const struct cas_digest *d);
/* Stores a chunk unless its object exists; its digest to ret. */
int objstore_chunk_put(struct blob_objstore *s, const uint8_t *data, size_t len, struct cas_digest *ret);
int objstore_index_put(struct blob_objstore *s, const struct cas_digest *d, const struct chunk_ref *v, size_t n);
/* Blob d's index: its chunks with their offsets (malloc'ed, NULL for an
 * empty list: snix writes one for a single-chunk blob) and the blob's
 * size.  -ENOENT, -EBADMSG (undecodable, an empty chunk, a bad digest,
 * sizes that overflow), or the store's error. */
int objstore_index_get(struct blob_objstore *s, const struct cas_digest *d, struct chunk_ref **ret, size_t *ret_n,
                       uint64_t *ret_size);

/* The service's ops (blob_objstore_read.c, _write.c, _list.c). */
int objstore_open(struct cas_blob_service *bs, const struct cas_digest *d, struct cas_blob_reader **ret);
int objstore_stat(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size);
int objstore_writer_new(struct cas_blob_service *bs, unsigned flags, struct cas_blob_writer **ret);
int objstore_put(struct cas_blob_service *bs, const void *data, size_t len, unsigned flags,
                 struct cas_digest *ret_digest);
int objstore_list(struct cas_blob_service *bs, cas_blob_list_cb cb, void *userdata);
int objstore_remove(struct cas_blob_service *bs, const struct cas_digest *d);
