/* protobuf-c glue for the remote services (see pb.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "remote/pb.h"
#include "util/log.h"
#include "util/macro.h"

const char *const pb_castore_packages[2] = { "tvix.castore.v1", "snix.castore.v1" };
const char *const pb_store_packages[2] = { "tvix.store.v1", "snix.store.v1" };

int pb_pack(const ProtobufCMessage *m, uint8_t **ret, size_t *ret_len) {
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf)
                return -ENOMEM;
        *ret_len = protobuf_c_message_pack(m, buf);
        *ret = buf;
        return 0;
}

int pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, ProtobufCMessage **ret) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);
        if (!m)
                return -EBADMSG;
        *ret = m;
        return 0;
}

void pb_free(ProtobufCMessage *m) {
        if (m)
                protobuf_c_message_free_unpacked(m, NULL);
}

int pb_send(struct rpc_call *c, const ProtobufCMessage *m) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r = pb_pack(m, &buf, &len);
        if (r < 0)
                return r;
        return rpc_call_send(c, buf, len);
}

int pb_recv(struct rpc_call *c, const ProtobufCMessageDescriptor *d, ProtobufCMessage **ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r = rpc_call_recv(c, &buf, &len);
        if (r <= 0)
                return r;
        if (pb_unpack(d, buf, len, ret) < 0)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "malformed %s", d->name);
        return 1;
}

int pb_unary(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **ret) {
        _cleanup_free_ uint8_t *out = NULL, *in = NULL;
        size_t out_len, in_len;
        int r;

        r = pb_pack(req, &out, &out_len);
        if (r < 0)
                return r;
        r = rpc_unary(ch, method, out, out_len, &in, &in_len);
        if (r < 0)
                return r;
        return pb_unpack(reply_desc, in, in_len, ret);
}

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *ret) {
        uint64_t v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
                if (*p == end)
                        return -EBADMSG;
                uint8_t b = *(*p)++;
                v |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

int pb_blob_chunk_data(const uint8_t *msg, size_t len, const uint8_t **ret, size_t *ret_len) {
        const uint8_t *p = msg, *end = msg + len;
        uint64_t key, n;

        *ret = msg;
        *ret_len = 0;
        while (p < end) {
                if (varint(&p, end, &key) < 0)
                        return -EBADMSG;
                switch (key & 7) {
                case 0: /* varint */
                        if (varint(&p, end, &n) < 0)
                                return -EBADMSG;
                        break;
                case 1: /* 64-bit */
                case 5: /* 32-bit */
                        n = (key & 7) == 1 ? 8 : 4;
                        if ((uint64_t) (end - p) < n)
                                return -EBADMSG;
                        p += n;
                        break;
                case 2: /* length-delimited */
                        if (varint(&p, end, &n) < 0 || (uint64_t) (end - p) < n)
                                return -EBADMSG;
                        if (key >> 3 == 1) {
                                *ret = p;
                                *ret_len = (size_t) n;
                        }
                        p += n;
                        break;
                default:
                        return -EBADMSG;
                }
        }
        return 0;
}

int pb_service_init(struct pb_service *s, const char *url, unsigned timeout_ms, const char *const *packages,
                    const char *service) {
        _cleanup_free_ char *target = NULL;
        const char *why = NULL;
        int r;

        r = rpc_target_from_url(url, &target, &why);
        if (r < 0)
                return log_error_errno(r, "%s: %s", url, why);
        *s = (struct pb_service){ .packages = packages, .service = service };
        r = rpc_channel_new(target, timeout_ms, &s->channel);
        if (r < 0)
                return log_error_errno(r, "Cannot reach %s: %m", url);
        return 0;
}

int pb_method(struct pb_service *s, const char *method, char *buf, size_t size) {
        int pkg = __atomic_load_n(&s->pkg, __ATOMIC_RELAXED);
        snprintf(buf, size, "/%s.%s/%s", s->packages[pkg], s->service, method);
        return pkg;
}

int pb_probe(struct pb_service *s, const char *method, const ProtobufCMessage *req) {
        _cleanup_free_ uint8_t *out = NULL, *in = NULL;
        size_t out_len, in_len;
        char path[128];
        int pkg, r;

        if (__atomic_load_n(&s->known, __ATOMIC_RELAXED))
                return 0;
        r = pb_pack(req, &out, &out_len);
        if (r < 0)
                return r;
        do {
                pkg = pb_method(s, method, path, sizeof(path));
                free(in);
                in = NULL;
                r = rpc_unary(s->channel, path, out, out_len, &in, &in_len);
        } while (r == -EOPNOTSUPP && pb_switch(s, pkg));
        if (r == -ECONNREFUSED || r == -ETIMEDOUT)
                return r;
        __atomic_store_n(&s->known, 1, __ATOMIC_RELAXED);
        return 0;
}

bool pb_switch(struct pb_service *s, int used) {
        if (used != 0)
                return false;
        __atomic_store_n(&s->pkg, 1, __ATOMIC_RELAXED);
        return true;
}
