/* The object-store blob service's objects (blob_objstore_int.h): chunk
 * objects (zstd frames named by the BLAKE3 of their uncompressed bytes)
 * and blob indexes (serialized StatBlobResponse), read as untrusted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "rpc_blobstore.pb-c.h"
#include "castore/blob_objstore_int.h"
#include "util/log.h"

void objstore_key(char *ret, const char *kind, const struct cas_digest *d) {
        const char *hex = CAS_DIGEST_HEX(d);

        snprintf(ret, KEY_MAX, "%s/b3/%.4s/%s", kind, hex, hex);
}

/* ---- chunks ---- */

/* Decompresses one or more zstd frames (with or without their content
 * size: a streaming encoder, as snix's, may leave it out) into at most max bytes:
 * -EBADMSG for anything else. */
static int unzstd(const uint8_t *in, size_t len, size_t max, uint8_t **ret, size_t *ret_len) {
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        unsigned long long hint = ZSTD_getFrameContentSize(in, len);
        size_t cap = hint < max ? (size_t) hint + 1 : 256u << 10;
        ZSTD_inBuffer ib = { in, len, 0 };
        ZSTD_outBuffer ob = { malloc(cap), cap, 0 };
        int r = dctx && ob.dst ? 0 : -ENOMEM;

        while (r >= 0) {
                if (ob.pos == ob.size) {
                        void *p = ob.size > max ? NULL : realloc(ob.dst, ob.size * 2);

                        if (!p) {
                                r = ob.size > max ? -EBADMSG : -ENOMEM;
                                break;
                        }
                        ob.dst = p;
                        ob.size *= 2;
                }
                size_t in_before = ib.pos, out_before = ob.pos;
                size_t z = ZSTD_decompressStream(dctx, &ob, &ib);
                if (ZSTD_isError(z))
                        r = -EBADMSG;
                else if (z == 0 && ib.pos == ib.size)
                        break; /* every frame complete */
                else if (ib.pos == in_before && ob.pos == out_before)
                        r = -EBADMSG; /* no progress with room to write: truncated */
        }
        if (r >= 0 && ob.pos > max)
                r = -EBADMSG;
        ZSTD_freeDCtx(dctx);
        if (r < 0) {
                free(ob.dst);
                return r;
        }
        *ret = ob.dst;
        *ret_len = ob.pos;
        return 0;
}

int objstore_chunk_get(struct blob_objstore *s, const struct cas_digest *d, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ uint8_t *z = NULL, *data = NULL;
        char key[KEY_MAX];
        struct cas_digest got;
        size_t zlen, len;
        int r;

        objstore_key(key, "chunks", d);
        r = cas_objstore_get(s->objs, key, OBJECT_MAX, &z, &zlen);
        if (r == -EFBIG)
                r = -EBADMSG;
        if (r < 0)
                return r;
        r = unzstd(z, zlen, CHUNK_MAX, &data, &len);
        if (r < 0)
                return log_error_errno(r, "chunk %s: not a zstd frame of at most %u bytes", key, CHUNK_MAX);
        cas_digest_of(data, len, &got);
        if (!cas_digest_equal(&got, d))
                return log_error_errno(-EBADMSG, "chunk %s: its content does not hash to its name", key);
        *ret = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}

int objstore_chunk_upload(struct blob_objstore *s, const uint8_t *data, size_t len, const struct cas_digest *d) {
        _cleanup_free_ uint8_t *z = NULL;
        char key[KEY_MAX];
        size_t zlen;

        objstore_key(key, "chunks", d);
        z = malloc(ZSTD_compressBound(len));
        if (!z)
                return -ENOMEM;
        zlen = ZSTD_compress(z, ZSTD_compressBound(len), data, len, ZSTD_CLEVEL_DEFAULT);
        if (ZSTD_isError(zlen))
                return log_error_errno(-EIO, "chunk %s: zstd: %s", key, ZSTD_getErrorName(zlen));
        return cas_objstore_put(s->objs, key, z, zlen);
}

int objstore_chunk_put(struct blob_objstore *s, const uint8_t *data, size_t len, struct cas_digest *ret) {
        char key[KEY_MAX];
        int r;

        cas_digest_of(data, len, ret);
        objstore_key(key, "chunks", ret);
        r = cas_objstore_head(s->objs, key, NULL);
        if (r != -ENOENT)
                return r;
        return objstore_chunk_upload(s, data, len, ret);
}

/* ---- blob indexes ---- */

int objstore_index_put(struct blob_objstore *s, const struct cas_digest *d, const struct chunk_ref *v, size_t n) {
        Tvix__Castore__V1__StatBlobResponse msg = TVIX__CASTORE__V1__STAT_BLOB_RESPONSE__INIT;
        _cleanup_free_ Tvix__Castore__V1__StatBlobResponse__ChunkMeta *metas = calloc(n, sizeof(*metas));
        _cleanup_free_ Tvix__Castore__V1__StatBlobResponse__ChunkMeta **ptrs = calloc(n, sizeof(*ptrs));
        _cleanup_free_ uint8_t *buf = NULL;
        char key[KEY_MAX];
        size_t len;

        if (!metas || !ptrs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                tvix__castore__v1__stat_blob_response__chunk_meta__init(&metas[i]);
                metas[i].digest.data = (uint8_t *) v[i].digest.b;
                metas[i].digest.len = CAS_DIGEST_LEN;
                metas[i].size = v[i].size;
                ptrs[i] = &metas[i];
        }
        msg.n_chunks = n;
        msg.chunks = ptrs;
        len = tvix__castore__v1__stat_blob_response__get_packed_size(&msg);
        buf = malloc(len);
        if (!buf)
                return -ENOMEM;
        tvix__castore__v1__stat_blob_response__pack(&msg, buf);
        objstore_key(key, "blobs", d);
        return cas_objstore_put(s->objs, key, buf, len);
}

int objstore_index_get(struct blob_objstore *s, const struct cas_digest *d, struct chunk_ref **ret, size_t *ret_n,
                     uint64_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ struct chunk_ref *v = NULL;
        Tvix__Castore__V1__StatBlobResponse *msg;
        char key[KEY_MAX];
        uint64_t off = 0;
        size_t len;
        int r;

        objstore_key(key, "blobs", d);
        r = cas_objstore_get(s->objs, key, INDEX_MAX, &buf, &len);
        if (r == -EFBIG)
                r = -EBADMSG;
        if (r < 0)
                return r;
        msg = tvix__castore__v1__stat_blob_response__unpack(NULL, len, buf);
        if (!msg)
                return log_error_errno(-EBADMSG, "blob index %s: not a StatBlobResponse", key);
        r = 0;
        if (msg->n_chunks > 0 && !(v = calloc(msg->n_chunks, sizeof(*v))))
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < msg->n_chunks; i++) {
                const Tvix__Castore__V1__StatBlobResponse__ChunkMeta *m = msg->chunks[i];

                r = cas_digest_from_bytes(m->digest.data, m->digest.len, &v[i].digest);
                if (r < 0 || m->size == 0 || m->size > CHUNK_MAX || off + m->size < off)
                        r = -EBADMSG;
                v[i].off = off;
                v[i].size = m->size;
                off += m->size;
        }
        size_t n = msg->n_chunks;
        tvix__castore__v1__stat_blob_response__free_unpacked(msg, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : log_error_errno(-EBADMSG, "blob index %s: a bad chunk list", key);
        *ret = TAKE_PTR(v);
        *ret_n = n;
        *ret_size = off;
        return 0;
}
