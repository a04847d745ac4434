/* The grpc directory backend: a DirectoryService of a castore, tvix or
 * snix daemon.  get checks that the answer hashes to the digest asked
 * for; get_recursive takes a whole closure in one call and checks that
 * it starts at the root and that every directory was referred to by one
 * before it; put streams leaves first and checks the root digest the
 * server answers. */
#include <errno.h>
#include <stdlib.h>

#include "remote/backends.h"
#include "remote/pb.h"
#include "rpc_directory.pb-c.h"
#include "util/hashmap.h"
#include "util/log.h"

typedef Tvix__Castore__V1__GetDirectoryRequest GetReq;
typedef Tvix__Castore__V1__PutDirectoryResponse PutResp;

struct grpc_dirs {
        struct cas_dir_service base;
        struct pb_service svc;
};

static struct grpc_dirs *to_grpc(struct cas_dir_service *s) {
        return (struct grpc_dirs *) s;
}

typedef int (*dir_cb)(void *userdata, struct cas_directory *d); /* takes d */

/* Runs a Get and hands each decoded directory to cb. */
static int get_stream(struct grpc_dirs *s, const struct cas_digest *d, bool recursive, dir_cb cb, void *userdata) {
        GetReq req;
        _cleanup_free_ uint8_t *out = NULL;
        char method[96];
        size_t out_len;
        int pkg, r;

        tvix__castore__v1__get_directory_request__init(&req);
        req.by_what_case = TVIX__CASTORE__V1__GET_DIRECTORY_REQUEST__BY_WHAT_DIGEST;
        req.digest = (ProtobufCBinaryData){ .data = (uint8_t *) d->b, .len = CAS_DIGEST_LEN };
        req.recursive = recursive;
        r = pb_pack(&req.base, &out, &out_len);
        if (r < 0)
                return r;
        unsigned got = 0;
        do {
                _cleanup_(rpc_stream_closep) struct rpc_stream *st = NULL;
                pkg = pb_method(&s->svc, "Get", method, sizeof(method));
                r = rpc_stream_open(s->svc.channel, method, out, out_len, &st);
                while (r >= 0) {
                        _cleanup_free_ uint8_t *msg = NULL;
                        struct cas_directory *dir = NULL;
                        enum cas_verr why = CAS_VERR_NONE;
                        size_t len;
                        r = rpc_stream_next(st, &msg, &len);
                        if (r <= 0)
                                break;
                        got++;
                        if (cas_directory_decode(msg, len, 0, &dir, &why) < 0)
                                return log_error_errno(-EBADMSG, "%s sent an invalid directory: %s",
                                                       rpc_channel_target(s->svc.channel), cas_verr_str(why));
                        r = cb(userdata, dir);
                }
        } while (r == -EOPNOTSUPP && got == 0 && pb_switch(&s->svc, pkg));
        return r;
}

struct one {
        const struct cas_digest *want;
        struct cas_directory *dir;
};

static int take_one(void *userdata, struct cas_directory *d) {
        struct one *o = userdata;
        if (o->dir || !cas_digest_equal(&d->digest, o->want)) {
                cas_directory_free(d);
                return -EBADMSG;
        }
        o->dir = d;
        return 0;
}

static int grpc_get(struct cas_dir_service *ds, const struct cas_digest *d, struct cas_directory **ret) {
        struct grpc_dirs *s = to_grpc(ds);
        struct one o = { .want = d };
        int r = get_stream(s, d, false, take_one, &o);
        if (r >= 0 && !o.dir)
                r = -EBADMSG;
        if (r == -EBADMSG)
                log_error("%s answered directory %s with another one", rpc_channel_target(s->svc.channel),
                          CAS_DIGEST_B3(d));
        if (r < 0) {
                cas_directory_free(o.dir);
                return r;
        }
        *ret = o.dir;
        return 0;
}

static int grpc_stat(struct cas_dir_service *ds, const struct cas_digest *d, uint64_t *ret_size) {
        _cleanup_(cas_directory_freep) struct cas_directory *dir = NULL;
        int r = grpc_get(ds, d, &dir);
        if (r < 0)
                return r;
        *ret_size = dir->size;
        return 0;
}

/* ---- recursive ---- */

struct closure {
        const struct cas_digest *root;
        struct hashmap expected; /* digest -> struct want: referred to so far */
        size_t received;
        int (*cb)(void *userdata, const struct cas_directory *d);
        void *userdata;
};

struct want {
        struct cas_digest digest;
        bool seen;
};

static bool want_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct want *) entry)->digest, key);
}

static int expect(struct closure *c, const struct cas_digest *d) {
        uint64_t h = hash_bytes(d->b, CAS_DIGEST_LEN);
        if (hashmap_get(&c->expected, h, d))
                return 0;
        struct want *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->digest = *d;
        int r = hashmap_put(&c->expected, h, w);
        if (r < 0)
                free(w);
        return r;
}

static int take_closure(void *userdata, struct cas_directory *d) {
        struct closure *c = userdata;
        struct want *w = hashmap_get(&c->expected, hash_bytes(d->digest.b, CAS_DIGEST_LEN), &d->digest);
        int r = 0;

        /* the root first, then only directories referred to and not sent yet */
        if (!w || w->seen || (c->received == 0 && !cas_digest_equal(&d->digest, c->root)))
                r = -EBADMSG;
        else
                w->seen = true;
        for (size_t i = 0; r >= 0 && i < d->n_entries; i++)
                if (d->entries[i].kind == CAS_NODE_DIRECTORY)
                        r = expect(c, &d->entries[i].digest);
        if (r >= 0) {
                c->received++;
                r = c->cb(c->userdata, d);
        }
        cas_directory_free(d);
        return r;
}

static bool unseen(void *entry, void *userdata) {
        if (!((struct want *) entry)->seen)
                *(bool *) userdata = true;
        return true;
}

static int grpc_get_recursive(struct cas_dir_service *ds, const struct cas_digest *root,
                              int (*cb)(void *userdata, const struct cas_directory *d), void *userdata) {
        struct grpc_dirs *s = to_grpc(ds);
        struct closure c = { .root = root, .cb = cb, .userdata = userdata };
        bool missing = false;
        int r;

        hashmap_init(&c.expected, want_eq);
        r = expect(&c, root);
        if (r >= 0)
                r = get_stream(s, root, true, take_closure, &c);
        if (r >= 0) {
                hashmap_foreach(&c.expected, unseen, &missing);
                if (missing)
                        r = -EBADMSG;
        }
        hashmap_done_free(&c.expected);
        if (r == -EBADMSG)
                log_error("%s sent a broken closure for directory %s", rpc_channel_target(s->svc.channel),
                          CAS_DIGEST_B3(root));
        return r;
}

/* ---- put ---- */

static int put_once(struct grpc_dirs *s, struct cas_directory *const *dirs, size_t n, struct cas_digest *ret_root,
                    int *ret_pkg) {
        _cleanup_(rpc_upload_cancelp) struct rpc_upload *u = NULL;
        _cleanup_free_ uint8_t *in = NULL;
        PutResp *resp = NULL;
        char method[96];
        size_t in_len;
        int r;

        GetReq probe;
        tvix__castore__v1__get_directory_request__init(&probe);
        r = pb_probe(&s->svc, "Get", &probe.base);
        if (r < 0)
                return r;
        *ret_pkg = pb_method(&s->svc, "Put", method, sizeof(method));
        r = rpc_upload_open(s->svc.channel, method, &u);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len;
                r = cas_directory_encode(dirs[i], &buf, &len);
                if (r >= 0)
                        r = rpc_upload_send(u, buf, len);
        }
        if (r < 0)
                return r;
        r = rpc_upload_finish(TAKE_PTR(u), &in, &in_len);
        if (r < 0)
                return r;
        r = pb_unpack(&tvix__castore__v1__put_directory_response__descriptor, in, in_len, (ProtobufCMessage **) &resp);
        if (r < 0)
                return r;
        r = cas_digest_from_bytes(resp->root_digest.data, resp->root_digest.len, ret_root);
        pb_free(&resp->base);
        return r < 0 ? -EBADMSG : 0;
}

static int grpc_put(struct cas_dir_service *ds, struct cas_directory *const *dirs, size_t n, unsigned flags,
                    enum cas_verr *ret_why) {
        struct grpc_dirs *s = to_grpc(ds);
        struct cas_digest root;
        int pkg = 0, r;

        if (n == 0)
                return 0;
        do
                r = put_once(s, dirs, n, &root, &pkg);
        while (r == -EOPNOTSUPP && pb_switch(&s->svc, pkg));
        if (r == -EINVAL)
                return log_error_errno(r, "%s refused the directories (see its log)", rpc_channel_target(s->svc.channel));
        if (r < 0)
                return r;
        if (!cas_digest_equal(&root, &dirs[n - 1]->digest))
                return log_error_errno(-EBADMSG, "%s stored root directory %s under another digest",
                                       rpc_channel_target(s->svc.channel), CAS_DIGEST_B3(&dirs[n - 1]->digest));
        return 0;
}

static void grpc_free(struct cas_dir_service *ds) {
        struct grpc_dirs *s = to_grpc(ds);
        rpc_channel_free(s->svc.channel);
        free(s);
}

static const struct cas_dir_ops grpc_dir_ops = {
        .name = "grpc",
        .get = grpc_get,
        .stat = grpc_stat,
        .put = grpc_put,
        .get_recursive = grpc_get_recursive,
        .free = grpc_free,
};

int remote_dir_grpc_new(const char *url, unsigned timeout_ms, struct cas_dir_service **ret) {
        struct grpc_dirs *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->base.ops = &grpc_dir_ops;
        r = pb_service_init(&s->svc, url, timeout_ms, pb_castore_packages, "DirectoryService");
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = &s->base;
        return 0;
}
