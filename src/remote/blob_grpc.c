/* The grpc blob backend: a BlobService of a castore, tvix or snix daemon.
 * Reads fetch the whole blob into an anonymous memory file, hashing it
 * (and building its outboard) on the way: a server that sends bytes other
 * than the digest's gets -EBADMSG and nothing is returned; what is
 * returned was verified whole (the reader says so).  Writes stream 1 MiB BlobChunks and check the
 * digest the server answers against the one computed here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "castore/digest.h"
#include "castore/outboard.h"
#include "remote/backends.h"
#include "remote/pb.h"
#include "rpc_blobstore.pb-c.h"
#include "util/io.h"
#include "util/log.h"

#define PUT_CHUNK (1u << 20)

typedef Tvix__Castore__V1__StatBlobRequest StatReq;
typedef Tvix__Castore__V1__StatBlobResponse StatResp;
typedef Tvix__Castore__V1__ReadBlobRequest ReadReq;
typedef Tvix__Castore__V1__PutBlobResponse PutResp;

struct grpc_blobs {
        struct cas_blob_service base;
        struct pb_service svc;
};

struct grpc_reader {
        struct cas_blob_reader base;
        uint8_t *outboard; /* computed on the way in */
};

struct grpc_writer {
        struct cas_blob_writer base;
        struct grpc_blobs *s;
        struct rpc_upload *upload; /* opened at the first full chunk */
        struct cas_hasher hasher;
        uint8_t *buf; /* a packed BlobChunk being filled: 6 header bytes, then data */
        size_t len;   /* data bytes in buf */
        uint64_t total; /* bytes written */
};

static struct grpc_blobs *to_grpc(struct cas_blob_service *s) {
        return (struct grpc_blobs *) s;
}

static int stat_call(struct grpc_blobs *s, const struct cas_digest *d, bool chunks, StatResp **ret) {
        StatReq req = TVIX__CASTORE__V1__STAT_BLOB_REQUEST__INIT;
        char method[96];
        int pkg, r;

        req.digest = (ProtobufCBinaryData){ .data = (uint8_t *) d->b, .len = CAS_DIGEST_LEN };
        req.send_chunks = chunks;
        do {
                pkg = pb_method(&s->svc, "Stat", method, sizeof(method));
                r = pb_unary(s->svc.channel, method, &req.base, &tvix__castore__v1__stat_blob_response__descriptor,
                             (ProtobufCMessage **) ret);
        } while (r == -EOPNOTSUPP && pb_switch(&s->svc, pkg));
        return r;
}

/* ---- reads ---- */

static ssize_t reader_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        ssize_t n = pread(r->fd, buf, len, (off_t) off);
        return n < 0 ? -errno : n;
}

static void reader_close(struct cas_blob_reader *r) {
        if (r->fd >= 0)
                close(r->fd);
        free(((struct grpc_reader *) r)->outboard);
        free(r);
}

static const struct cas_blob_reader_ops reader_ops = { .pread = reader_pread, .close = reader_close };

/* Streams blob d's bytes into a writer (fetch_into): the writer hashes. */
static int grpc_fetch_into(struct cas_blob_service *bs, const struct cas_digest *d, struct cas_blob_writer *w) {
        struct grpc_blobs *s = to_grpc(bs);
        ReadReq req = TVIX__CASTORE__V1__READ_BLOB_REQUEST__INIT;
        _cleanup_(rpc_stream_closep) struct rpc_stream *st = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        char method[96];
        size_t out_len;
        int r;

        req.digest = (ProtobufCBinaryData){ .data = (uint8_t *) d->b, .len = CAS_DIGEST_LEN };
        r = pb_pack(&req.base, &out, &out_len);
        if (r < 0)
                return r;
        /* the package must be settled first: a write cannot be taken back */
        StatReq probe = TVIX__CASTORE__V1__STAT_BLOB_REQUEST__INIT;
        r = pb_probe(&s->svc, "Stat", &probe.base);
        if (r < 0)
                return r;
        (void) pb_method(&s->svc, "Read", method, sizeof(method));
        r = rpc_stream_open(s->svc.channel, method, out, out_len, &st);
        while (r >= 0) {
                _cleanup_free_ uint8_t *msg = NULL;
                const uint8_t *data;
                size_t len, n;
                r = rpc_stream_next(st, &msg, &len);
                if (r <= 0)
                        break;
                r = pb_blob_chunk_data(msg, len, &data, &n);
                if (r >= 0)
                        r = cas_blob_write(w, data, n);
        }
        return r;
}

/* Appends one BlobChunk's data to fd, hashing it. */
static int take_chunk(int fd, struct cas_outboard_builder *h, const uint8_t *msg, size_t len, uint64_t *size) {
        const uint8_t *data;
        size_t n;
        int r = pb_blob_chunk_data(msg, len, &data, &n);
        if (r < 0)
                return r;
        cas_outboard_builder_update(h, data, n);
        *size += n;
        return loop_write(fd, data, n);
}

/* Streams blob d into fd; 0 once it hashed to d, with its outboard. */
static int fetch(struct grpc_blobs *s, const struct cas_digest *d, int fd, uint64_t *ret_size, uint8_t **ret_ob,
                 size_t *ret_ob_len) {
        ReadReq req = TVIX__CASTORE__V1__READ_BLOB_REQUEST__INIT;
        _cleanup_free_ uint8_t *out = NULL;
        struct cas_outboard_builder h;
        struct cas_digest got;
        char method[96];
        size_t out_len;
        int pkg, r;

        req.digest = (ProtobufCBinaryData){ .data = (uint8_t *) d->b, .len = CAS_DIGEST_LEN };
        r = pb_pack(&req.base, &out, &out_len);
        if (r < 0)
                return r;
        do {
                _cleanup_(rpc_stream_closep) struct rpc_stream *st = NULL;
                pkg = pb_method(&s->svc, "Read", method, sizeof(method));
                cas_outboard_builder_init(&h);
                *ret_size = 0;
                if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
                        return -errno;
                r = rpc_stream_open(s->svc.channel, method, out, out_len, &st);
                while (r >= 0) {
                        _cleanup_free_ uint8_t *msg = NULL;
                        size_t len;
                        r = rpc_stream_next(st, &msg, &len);
                        if (r <= 0)
                                break;
                        r = take_chunk(fd, &h, msg, len, ret_size);
                }
                if (r < 0)
                        cas_outboard_builder_done(&h);
        } while (r == -EOPNOTSUPP && pb_switch(&s->svc, pkg));
        if (r < 0)
                return r;
        r = cas_outboard_builder_final(&h, &got, ret_ob, ret_ob_len);
        if (r < 0)
                return r;
        if (!cas_digest_equal(&got, d)) {
                free(*ret_ob);
                *ret_ob = NULL;
                return log_error_errno(-EBADMSG, "%s sent bytes for blob %s that hash to %s",
                                       rpc_channel_target(s->svc.channel), CAS_DIGEST_B3(d), CAS_DIGEST_B3(&got));
        }
        return 0;
}

static int grpc_open(struct cas_blob_service *bs, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct grpc_blobs *s = to_grpc(bs);
        _cleanup_close_ int fd = memfd_create("castore-blob", MFD_CLOEXEC);
        uint8_t *ob = NULL;
        size_t ob_len = 0;
        uint64_t size;
        int r;

        if (fd < 0)
                return -errno;
        r = fetch(s, d, fd, &size, &ob, &ob_len);
        if (r < 0)
                return r;
        struct grpc_reader *rd = calloc(1, sizeof(*rd));
        if (!rd) {
                free(ob);
                return -ENOMEM;
        }
        rd->outboard = ob;
        rd->base = (struct cas_blob_reader){ .ops = &reader_ops, .digest = *d, .size = size, .fd = TAKE_FD(fd),
                                             .outboard = ob, .outboard_len = ob_len, .verified = true };
        *ret = &rd->base;
        return 0;
}

static int grpc_stat(struct cas_blob_service *bs, const struct cas_digest *d, uint64_t *ret_size) {
        struct grpc_blobs *s = to_grpc(bs);
        StatResp *resp = NULL;
        uint64_t size = 0;
        int r = stat_call(s, d, true, &resp);
        if (r < 0)
                return r;
        for (size_t i = 0; i < resp->n_chunks; i++)
                size += resp->chunks[i]->size;
        size_t n = resp->n_chunks;
        pb_free(&resp->base);
        if (n == 0 && ret_size) {
                /* a server that does not list chunks: the size is in the bytes */
                _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *rd = NULL;
                r = grpc_open(bs, d, &rd);
                if (r < 0)
                        return r;
                size = rd->size;
        }
        if (ret_size)
                *ret_size = size;
        return 0;
}

/* ---- writes ---- */

static int writer_flush(struct grpc_writer *w) {
        char method[96];
        int r;

        if (!w->upload) {
                StatReq probe = TVIX__CASTORE__V1__STAT_BLOB_REQUEST__INIT;
                r = pb_probe(&w->s->svc, "Stat", &probe.base);
                if (r < 0)
                        return r;
                (void) pb_method(&w->s->svc, "Put", method, sizeof(method));
                r = rpc_upload_open(w->s->svc.channel, method, &w->upload);
                if (r < 0)
                        return r;
        }
        /* BlobChunk { bytes data = 1; }: tag, 5-byte varint length, data */
        uint8_t *p = w->buf;
        size_t len = w->len;
        p[0] = 0x0a;
        for (int i = 1; i <= 5; i++, len >>= 7)
                p[i] = (uint8_t) ((len & 0x7f) | (i < 5 ? 0x80 : 0));
        r = rpc_upload_send(w->upload, p, 6 + w->len);
        w->len = 0;
        return r;
}

static int writer_write(struct cas_blob_writer *bw, const void *buf, size_t len) {
        struct grpc_writer *w = (struct grpc_writer *) bw;
        const uint8_t *p = buf;

        cas_hasher_update(&w->hasher, buf, len);
        w->total += len;
        while (len > 0) {
                size_t n = PUT_CHUNK - w->len < len ? PUT_CHUNK - w->len : len;
                memcpy(w->buf + 6 + w->len, p, n);
                w->len += n;
                p += n;
                len -= n;
                if (w->len == PUT_CHUNK) {
                        int r = writer_flush(w);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static void writer_abort(struct cas_blob_writer *bw) {
        struct grpc_writer *w = (struct grpc_writer *) bw;
        rpc_upload_cancel(w->upload);
        free(w->buf);
        free(w);
}

static int writer_commit(struct cas_blob_writer *bw, struct cas_digest *ret_digest, uint64_t *ret_size) {
        struct grpc_writer *w = (struct grpc_writer *) bw;
        _cleanup_free_ uint8_t *in = NULL;
        struct cas_digest want, got;
        PutResp *resp = NULL;
        uint64_t size = 0;
        size_t in_len;
        int r = 0;

        cas_hasher_final(&w->hasher, &want);
        size = w->total;
        if (w->len > 0 || !w->upload)
                r = writer_flush(w);
        if (r >= 0)
                r = rpc_upload_finish(TAKE_PTR(w->upload), &in, &in_len);
        if (r >= 0)
                r = pb_unpack(&tvix__castore__v1__put_blob_response__descriptor, in, in_len, (ProtobufCMessage **) &resp);
        if (r >= 0) {
                if (cas_digest_from_bytes(resp->digest.data, resp->digest.len, &got) < 0 || !cas_digest_equal(&got, &want))
                        r = log_error_errno(-EBADMSG, "%s stored blob %s under another digest",
                                            rpc_channel_target(w->s->svc.channel), CAS_DIGEST_B3(&want));
                pb_free(&resp->base);
        }
        writer_abort(bw);
        if (r < 0)
                return r;
        if (ret_digest)
                *ret_digest = want;
        if (ret_size)
                *ret_size = size;
        return 0;
}

static const struct cas_blob_writer_ops writer_ops = {
        .write = writer_write,
        .commit = writer_commit,
        .abort = writer_abort,
};

static int grpc_writer_new(struct cas_blob_service *bs, unsigned flags, struct cas_blob_writer **ret) {
        struct grpc_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->buf = malloc(6 + PUT_CHUNK);
        if (!w->buf) {
                free(w);
                return -ENOMEM;
        }
        w->base.ops = &writer_ops;
        w->s = to_grpc(bs);
        cas_hasher_init(&w->hasher);
        *ret = &w->base;
        return 0;
}

static int grpc_put(struct cas_blob_service *bs, const void *data, size_t len, unsigned flags,
                    struct cas_digest *ret_digest) {
        struct cas_blob_writer *w = NULL;
        int r = grpc_writer_new(bs, flags, &w);
        if (r < 0)
                return r;
        r = writer_write(w, data, len);
        if (r < 0) {
                writer_abort(w);
                return r;
        }
        return writer_commit(w, ret_digest, NULL);
}

static void grpc_free(struct cas_blob_service *bs) {
        struct grpc_blobs *s = to_grpc(bs);
        rpc_channel_free(s->svc.channel);
        free(s);
}

static const struct cas_blob_ops grpc_blob_ops = {
        .name = "grpc",
        .remote = true,
        .stat = grpc_stat,
        .open = grpc_open,
        .put = grpc_put,
        .writer_new = grpc_writer_new,
        .fetch_into = grpc_fetch_into,
        .free = grpc_free,
};

int remote_blob_grpc_new(const char *url, unsigned timeout_ms, struct cas_blob_service **ret) {
        struct grpc_blobs *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->base.ops = &grpc_blob_ops;
        r = pb_service_init(&s->svc, url, timeout_ms, pb_castore_packages, "BlobService");
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = &s->base;
        return 0;
}
