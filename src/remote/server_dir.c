/* The DirectoryService of castore's gRPC daemon: Get (one directory, or
 * the closure root first, each once, parents before children) and Put (a
 * stream leaves first, the last the root: order, exact child sizes and
 * connectivity are checked before anything is stored, all or nothing). */
#include <errno.h>
#include <stdlib.h>

#include "remote/pb.h"
#include "remote/server.h"
#include "rpc_directory.pb-c.h"
#include "util/hashmap.h"
#include "util/log.h"

/* What one Put may carry (RESOURCE_EXHAUSTED beyond). */
#define PUT_MAX_DIRS (1u << 20)
#define PUT_MAX_BYTES (1ull << 30)

typedef Tvix__Castore__V1__GetDirectoryRequest GetReq;
typedef Tvix__Castore__V1__PutDirectoryResponse PutResp;

static int send_dir(void *userdata, const struct cas_directory *d) {
        struct rpc_call *c = userdata;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r = cas_directory_encode(d, &buf, &len);
        if (r < 0)
                return r;
        return rpc_call_send(c, buf, len);
}

static int do_get(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        GetReq *req = NULL;
        struct cas_digest digest;
        bool recursive;
        int r;

        r = pb_recv(c, &tvix__castore__v1__get_directory_request__descriptor, (ProtobufCMessage **) &req);
        if (r <= 0)
                return r < 0 ? r : rpc_call_fail(c, RPC_INVALID_ARGUMENT, "no request");
        if (req->by_what_case != TVIX__CASTORE__V1__GET_DIRECTORY_REQUEST__BY_WHAT_DIGEST)
                r = rpc_call_fail(c, RPC_INVALID_ARGUMENT, "by_what is not set");
        else if (cas_digest_from_bytes(req->digest.data, req->digest.len, &digest) < 0)
                r = rpc_call_fail(c, RPC_INVALID_ARGUMENT, "digest must be 32 bytes, not %zu", req->digest.len);
        recursive = req->recursive;
        pb_free(&req->base);
        if (r < 0)
                return r;
        /* the root first on its own, so that a missing one is NOT_FOUND
         * before anything was sent */
        r = cas_dir_get(svc->dirs, &digest, &d);
        if (r == -ENOENT)
                return rpc_call_fail(c, RPC_NOT_FOUND, "directory %s not found", CAS_DIGEST_B3(&digest));
        if (r < 0)
                return r;
        if (!recursive)
                return send_dir(c, d);
        r = cas_dir_get_recursive(svc->dirs, &digest, send_dir, c);
        if (r == -ENOENT)
                return rpc_call_fail(c, RPC_INTERNAL, "a directory below %s is missing", CAS_DIGEST_B3(&digest));
        return r;
}

/* ---- Put ---- */

struct put_batch {
        struct cas_directory **dirs;
        size_t n, cap;
        uint64_t bytes;
        struct hashmap index; /* digest -> struct slot */
};

struct slot {
        struct cas_digest digest;
        size_t i;
        bool reached;
};

static bool slot_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct slot *) entry)->digest, key);
}

static void batch_done(struct put_batch *b) {
        for (size_t i = 0; i < b->n; i++)
                cas_directory_free(b->dirs[i]);
        free(b->dirs);
        hashmap_done_free(&b->index);
}

/* Adds one received directory; duplicates in the stream are dropped. */
static int batch_add(struct rpc_call *c, struct put_batch *b, const uint8_t *buf, size_t len) {
        struct cas_directory *d = NULL;
        enum cas_verr why = CAS_VERR_NONE;

        if (b->n >= PUT_MAX_DIRS || (b->bytes += len) > PUT_MAX_BYTES)
                return rpc_call_fail(c, RPC_RESOURCE_EXHAUSTED, "more directories than one Put may carry");
        if (cas_directory_decode(buf, len, 0, &d, &why) < 0)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "directory %zu: %s", b->n, cas_verr_str(why));
        uint64_t h = hash_bytes(d->digest.b, CAS_DIGEST_LEN);
        if (hashmap_get(&b->index, h, &d->digest)) {
                cas_directory_free(d);
                return 0;
        }
        struct slot *s = calloc(1, sizeof(*s));
        if (!s || (b->n == b->cap && !(b->dirs = reallocarray(b->dirs, b->cap = b->cap * 2 + 16, sizeof(*b->dirs))))) {
                free(s);
                cas_directory_free(d);
                return -ENOMEM;
        }
        *s = (struct slot){ .digest = d->digest, .i = b->n };
        int r = hashmap_put(&b->index, h, s);
        if (r < 0) {
                free(s);
                cas_directory_free(d);
                return r;
        }
        b->dirs[b->n++] = d;
        return 0;
}

/* Every directory of the batch must be reachable from the last one. */
static int batch_connected(struct rpc_call *c, struct put_batch *b) {
        size_t *stack = malloc(b->n * sizeof(*stack)), top = 0, reached = 0;
        if (!stack)
                return -ENOMEM;
        struct slot *root = hashmap_get(&b->index, hash_bytes(b->dirs[b->n - 1]->digest.b, CAS_DIGEST_LEN),
                                        &b->dirs[b->n - 1]->digest);
        root->reached = true;
        stack[top++] = root->i;
        while (top > 0) {
                const struct cas_directory *d = b->dirs[stack[--top]];
                reached++;
                for (size_t i = 0; i < d->n_entries; i++) {
                        const struct cas_node *e = &d->entries[i];
                        if (e->kind != CAS_NODE_DIRECTORY)
                                continue;
                        struct slot *s = hashmap_get(&b->index, hash_bytes(e->digest.b, CAS_DIGEST_LEN), &e->digest);
                        if (s && !s->reached) {
                                s->reached = true;
                                stack[top++] = s->i;
                        }
                }
        }
        free(stack);
        if (reached != b->n)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "%zu of the %zu directories are not below the root",
                                     b->n - reached, b->n);
        return 0;
}

static int do_put(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        struct put_batch b = {};
        PutResp resp = TVIX__CASTORE__V1__PUT_DIRECTORY_RESPONSE__INIT;
        enum cas_verr why = CAS_VERR_NONE;
        int r;

        hashmap_init(&b.index, slot_eq);
        for (;;) {
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len;
                r = rpc_call_recv(c, &buf, &len);
                if (r <= 0)
                        break;
                r = batch_add(c, &b, buf, len);
                if (r < 0)
                        break;
        }
        if (r >= 0 && b.n == 0)
                r = rpc_call_fail(c, RPC_INVALID_ARGUMENT, "no directory sent");
        if (r >= 0)
                r = batch_connected(c, &b);
        if (r >= 0)
                r = remote_put_lock(svc, &lock);
        if (r >= 0) {
                r = cas_dir_put(svc->dirs, b.dirs, b.n, CAS_DECODE_STRICT_SIZE, &why);
                if (r == -EBADMSG)
                        r = rpc_call_fail(c, RPC_INVALID_ARGUMENT, "%s", cas_verr_str(why));
        }
        if (r >= 0) {
                resp.root_digest = (ProtobufCBinaryData){ .data = b.dirs[b.n - 1]->digest.b, .len = CAS_DIGEST_LEN };
                r = pb_send(c, &resp.base);
        }
        batch_done(&b);
        return r;
}

int remote_add_dir_service(struct rpc_server *s, struct remote_services *svc) {
        int r = remote_add_method(s, pb_castore_packages, "DirectoryService", "Get", do_get, svc);
        if (r >= 0)
                r = remote_add_method(s, pb_castore_packages, "DirectoryService", "Put", do_put, svc);
        return r;
}
