/* The BlobService of castore's gRPC daemon: Stat (with the blob as its
 * one chunk, and its outboard as `bao` on request), Read (verified, in
 * 1 MiB messages) and Put (streamed into a blob writer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/vblob.h"
#include "remote/pb.h"
#include "remote/server.h"
#include "rpc_blobstore.pb-c.h"
#include "util/log.h"

#define READ_CHUNK (1u << 20)

typedef Tvix__Castore__V1__StatBlobRequest StatReq;
typedef Tvix__Castore__V1__StatBlobResponse StatResp;
typedef Tvix__Castore__V1__StatBlobResponse__ChunkMeta ChunkMeta;
typedef Tvix__Castore__V1__ReadBlobRequest ReadReq;
typedef Tvix__Castore__V1__PutBlobResponse PutResp;

static int digest_arg(struct rpc_call *c, ProtobufCBinaryData b, struct cas_digest *ret) {
        if (cas_digest_from_bytes(b.data, b.len, ret) < 0)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "digest must be %d bytes, not %zu", CAS_DIGEST_LEN,
                                     b.len);
        return 0;
}

/* The size of blob d, or the call's NOT_FOUND. */
static int blob_size(struct rpc_call *c, struct remote_services *svc, const struct cas_digest *d, uint64_t *ret) {
        int r = cas_blob_stat(svc->blobs, d, ret);
        if (r == -ENOENT)
                return rpc_call_fail(c, RPC_NOT_FOUND, "blob %s not found", CAS_DIGEST_B3(d));
        return r;
}

static int do_stat(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        StatReq *req = NULL;
        StatResp resp = TVIX__CASTORE__V1__STAT_BLOB_RESPONSE__INIT;
        ChunkMeta chunk = TVIX__CASTORE__V1__STAT_BLOB_RESPONSE__CHUNK_META__INIT, *chunks[1] = { &chunk };
        struct cas_digest d;
        uint64_t size;
        int r;

        r = pb_recv(c, &tvix__castore__v1__stat_blob_request__descriptor, (ProtobufCMessage **) &req);
        if (r <= 0)
                return r < 0 ? r : rpc_call_fail(c, RPC_INVALID_ARGUMENT, "no request");
        r = digest_arg(c, req->digest, &d);
        if (r >= 0)
                r = blob_size(c, svc, &d, &size);
        if (r >= 0 && req->send_chunks) {
                /* no finer chunking: the blob is its one chunk */
                chunk.digest = (ProtobufCBinaryData){ .data = d.b, .len = CAS_DIGEST_LEN };
                chunk.size = size;
                resp.chunks = chunks;
                resp.n_chunks = 1;
        }
        if (r >= 0 && req->send_bao) {
                r = cas_vblob_open(svc->blobs, &d, size, &v);
                if (r >= 0)
                        resp.bao.data = (uint8_t *) cas_vblob_outboard(v, &resp.bao.len);
        }
        pb_free(&req->base);
        if (r < 0)
                return r;
        return pb_send(c, &resp.base);
}

/* BlobChunk { bytes data = 1; } written by hand around the data read in
 * place: tag, length varint, bytes. */
static size_t chunk_header(uint8_t *hdr, size_t len) {
        size_t n = 0;
        hdr[n++] = 0x0a;
        do {
                hdr[n++] = (uint8_t) ((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
                len >>= 7;
        } while (len);
        return n;
}

static int do_read(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_(cas_vblob_closep) struct cas_vblob *v = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        ReadReq *req = NULL;
        struct cas_digest d;
        uint64_t size;
        int r;

        r = pb_recv(c, &tvix__castore__v1__read_blob_request__descriptor, (ProtobufCMessage **) &req);
        if (r <= 0)
                return r < 0 ? r : rpc_call_fail(c, RPC_INVALID_ARGUMENT, "no request");
        r = digest_arg(c, req->digest, &d);
        pb_free(&req->base);
        if (r >= 0)
                r = blob_size(c, svc, &d, &size);
        if (r >= 0)
                r = cas_vblob_open(svc->blobs, &d, size, &v);
        if (r == -EBADMSG)
                return rpc_call_fail(c, RPC_DATA_LOSS, "blob %s is damaged in this store", CAS_DIGEST_B3(&d));
        if (r < 0)
                return r;
        buf = malloc(16 + READ_CHUNK);
        if (!buf)
                return -ENOMEM;
        for (uint64_t off = 0; off < size;) {
                ssize_t n = cas_vblob_pread(v, buf + 16, READ_CHUNK, off);
                if (n == -EBADMSG)
                        return rpc_call_fail(c, RPC_DATA_LOSS, "blob %s is damaged in this store", CAS_DIGEST_B3(&d));
                if (n <= 0)
                        return n < 0 ? (int) n : rpc_call_fail(c, RPC_DATA_LOSS, "blob %s is short", CAS_DIGEST_B3(&d));
                uint8_t hdr[16];
                size_t h = chunk_header(hdr, (size_t) n);
                memcpy(buf + 16 - h, hdr, h);
                r = rpc_call_send(c, buf + 16 - h, h + (size_t) n);
                if (r < 0)
                        return r;
                off += (uint64_t) n;
        }
        return 0;
}

static int do_put(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        _cleanup_(cas_blob_abortp) struct cas_blob_writer *w = NULL;
        PutResp resp = TVIX__CASTORE__V1__PUT_BLOB_RESPONSE__INIT;
        struct cas_digest d;
        int r;

        r = remote_put_lock(svc, &lock);
        if (r >= 0)
                r = cas_blob_writer_new(svc->blobs, 0, &w);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_free_ uint8_t *msg = NULL;
                const uint8_t *data;
                size_t len, n;
                r = rpc_call_recv(c, &msg, &len);
                if (r <= 0)
                        break;
                if (pb_blob_chunk_data(msg, len, &data, &n) < 0)
                        return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "malformed BlobChunk");
                r = cas_blob_write(w, data, n);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = cas_blob_commit(TAKE_PTR(w), &d, NULL);
        if (r < 0)
                return r;
        resp.digest = (ProtobufCBinaryData){ .data = d.b, .len = CAS_DIGEST_LEN };
        return pb_send(c, &resp.base);
}

int remote_add_blob_service(struct rpc_server *s, struct remote_services *svc) {
        int r = remote_add_method(s, pb_castore_packages, "BlobService", "Stat", do_stat, svc);
        if (r >= 0)
                r = remote_add_method(s, pb_castore_packages, "BlobService", "Read", do_read, svc);
        if (r >= 0)
                r = remote_add_method(s, pb_castore_packages, "BlobService", "Put", do_put, svc);
        return r;
}
