/* The grpc PathInfo backend: a PathInfoService of a castore, tvix or snix
 * daemon (Get, Put, List).  Every PathInfo received is decoded with full
 * validation, and a Get answer must be for the store path asked for. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remote/backends.h"
#include "remote/pb.h"
#include "rpc_pathinfo.pb-c.h"
#include "util/log.h"

typedef Tvix__Store__V1__GetPathInfoRequest GetReq;

struct grpc_pathinfos {
        struct nix_pathinfo_service base;
        struct pb_service svc;
};

static struct grpc_pathinfos *to_grpc(struct nix_pathinfo_service *s) {
        return (struct grpc_pathinfos *) s;
}

static int decode(struct grpc_pathinfos *s, const uint8_t *buf, size_t len, struct nix_pathinfo **ret) {
        const char *why = NULL;
        int r = nix_pathinfo_decode(buf, len, ret, &why);
        if (r == -EBADMSG)
                log_error("%s sent an invalid PathInfo: %s", rpc_channel_target(s->svc.channel), why ? why : "?");
        return r;
}

static int grpc_get(struct nix_pathinfo_service *ps, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        struct grpc_pathinfos *s = to_grpc(ps);
        GetReq req;
        _cleanup_free_ uint8_t *out = NULL, *in = NULL;
        size_t out_len, in_len;
        char method[96];
        int pkg, r;

        tvix__store__v1__get_path_info_request__init(&req);
        req.by_what_case = TVIX__STORE__V1__GET_PATH_INFO_REQUEST__BY_WHAT_BY_OUTPUT_HASH;
        req.by_output_hash = (ProtobufCBinaryData){ .data = (uint8_t *) digest, .len = NIX_DIGEST_LEN };
        r = pb_pack(&req.base, &out, &out_len);
        if (r < 0)
                return r;
        do {
                pkg = pb_method(&s->svc, "Get", method, sizeof(method));
                r = rpc_unary(s->svc.channel, method, out, out_len, &in, &in_len);
        } while (r == -EOPNOTSUPP && pb_switch(&s->svc, pkg));
        if (r < 0)
                return r;
        r = decode(s, in, in_len, ret);
        if (r < 0)
                return r;
        if (memcmp((*ret)->path.digest, digest, NIX_DIGEST_LEN) != 0) {
                nix_pathinfo_free(*ret);
                *ret = NULL;
                return log_error_errno(-EBADMSG, "%s answered with the PathInfo of another store path",
                                       rpc_channel_target(s->svc.channel));
        }
        return 0;
}

static int grpc_put(struct nix_pathinfo_service *ps, const struct nix_pathinfo *pi) {
        struct grpc_pathinfos *s = to_grpc(ps);
        _cleanup_free_ uint8_t *out = NULL, *in = NULL;
        size_t out_len, in_len;
        char method[96];
        int pkg, r;

        r = nix_pathinfo_encode(pi, &out, &out_len);
        if (r < 0)
                return r;
        do {
                pkg = pb_method(&s->svc, "Put", method, sizeof(method));
                r = rpc_unary(s->svc.channel, method, out, out_len, &in, &in_len);
        } while (r == -EOPNOTSUPP && pb_switch(&s->svc, pkg));
        if (r == -EINVAL)
                return log_error_errno(r, "%s refused the PathInfo (see its log)", rpc_channel_target(s->svc.channel));
        return r;
}

static int grpc_list(struct nix_pathinfo_service *ps, nix_pathinfo_list_cb cb, void *userdata) {
        struct grpc_pathinfos *s = to_grpc(ps);
        char method[96];
        unsigned got = 0;
        int pkg, r;

        do {
                _cleanup_(rpc_stream_closep) struct rpc_stream *st = NULL;
                pkg = pb_method(&s->svc, "List", method, sizeof(method));
                r = rpc_stream_open(s->svc.channel, method, "", 0, &st);
                while (r >= 0) {
                        _cleanup_free_ uint8_t *msg = NULL;
                        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
                        size_t len;
                        r = rpc_stream_next(st, &msg, &len);
                        if (r <= 0)
                                break;
                        got++;
                        r = decode(s, msg, len, &pi);
                        if (r >= 0)
                                r = cb(userdata, pi);
                }
        } while (r == -EOPNOTSUPP && got == 0 && pb_switch(&s->svc, pkg));
        return r;
}

static void grpc_free(struct nix_pathinfo_service *ps) {
        struct grpc_pathinfos *s = to_grpc(ps);
        rpc_channel_free(s->svc.channel);
        free(s);
}

static const struct nix_pathinfo_ops grpc_pathinfo_ops = {
        .name = "grpc",
        .get = grpc_get,
        .put = grpc_put,
        /* no remove: PathInfoService has no delete call (-EOPNOTSUPP) */
        .list = grpc_list,
        .free = grpc_free,
};

int remote_pathinfo_grpc_new(const char *url, unsigned timeout_ms, struct nix_pathinfo_service **ret) {
        struct grpc_pathinfos *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->base.ops = &grpc_pathinfo_ops;
        r = pb_service_init(&s->svc, url, timeout_ms, pb_store_packages, "PathInfoService");
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = &s->base;
        return 0;
}
