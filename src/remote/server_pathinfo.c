/* The PathInfoService of castore's gRPC daemon (Get, Put, CalculateNAR,
 * List), grpc.health.v1.Health/Check, and the registration of all
 * services under both package names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/pb.h"
#include "remote/server.h"
#include "rpc_pathinfo.pb-c.h"
#include "store/nar.h"
#include "util/log.h"

typedef Tvix__Store__V1__GetPathInfoRequest GetReq;
typedef Tvix__Store__V1__CalculateNARResponse NarResp;

static int send_pathinfo(struct rpc_call *c, const struct nix_pathinfo *pi) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r = nix_pathinfo_encode(pi, &buf, &len);
        if (r < 0)
                return r;
        return rpc_call_send(c, buf, len);
}

static int do_get(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        uint8_t digest[NIX_DIGEST_LEN];
        GetReq *req = NULL;
        int r;

        r = pb_recv(c, &tvix__store__v1__get_path_info_request__descriptor, (ProtobufCMessage **) &req);
        if (r <= 0)
                return r < 0 ? r : rpc_call_fail(c, RPC_INVALID_ARGUMENT, "no request");
        if (req->by_what_case != TVIX__STORE__V1__GET_PATH_INFO_REQUEST__BY_WHAT_BY_OUTPUT_HASH)
                r = rpc_call_fail(c, RPC_UNIMPLEMENTED, "by_what is not set");
        else if (req->by_output_hash.len != NIX_DIGEST_LEN)
                r = rpc_call_fail(c, RPC_INVALID_ARGUMENT, "by_output_hash must be 20 bytes, not %zu",
                                  req->by_output_hash.len);
        else
                memcpy(digest, req->by_output_hash.data, NIX_DIGEST_LEN);
        pb_free(&req->base);
        if (r < 0)
                return r;
        r = nix_pathinfo_get(svc->pathinfo, digest, &pi);
        if (r == -ENOENT)
                return rpc_call_fail(c, RPC_NOT_FOUND, "no such store path");
        if (r < 0)
                return r;
        return send_pathinfo(c, pi);
}

/* The root node's contents must be in this store, as big as it says. */
static int root_present(struct rpc_call *c, struct remote_services *svc, const struct cas_node *n) {
        uint64_t size = 0;
        int r = 0;

        if (n->kind == CAS_NODE_DIRECTORY)
                r = cas_dir_stat(svc->dirs, &n->digest, &size);
        else if (n->kind == CAS_NODE_FILE)
                r = cas_blob_stat(svc->blobs, &n->digest, &size);
        else
                return 0;
        if (r == -ENOENT)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "the root %s %s is not in the store",
                                     n->kind == CAS_NODE_DIRECTORY ? "directory" : "blob", CAS_DIGEST_B3(&n->digest));
        if (r < 0)
                return r;
        if (size != n->size)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "the root node says size %llu, the store has %llu",
                                     (unsigned long long) n->size, (unsigned long long) size);
        return 0;
}

static int do_put(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_(cas_store_unlockp) struct cas_store_lock *lock = NULL;
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        const char *why = NULL;
        size_t len;
        int r;

        r = rpc_call_recv(c, &buf, &len);
        if (r <= 0)
                return r < 0 ? r : rpc_call_fail(c, RPC_INVALID_ARGUMENT, "no request");
        if (nix_pathinfo_decode(buf, len, &pi, &why) < 0)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "invalid PathInfo: %s", why ? why : "cannot decode");
        r = remote_put_lock(svc, &lock); /* the root cannot go between the check and the put */
        if (r < 0)
                return r;
        r = root_present(c, svc, &pi->node);
        if (r < 0)
                return r;
        r = nix_pathinfo_put(svc->pathinfo, pi);
        if (r == -EINVAL)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "invalid PathInfo: %s", nix_pathinfo_check(pi));
        if (r < 0)
                return r;
        return send_pathinfo(c, pi);
}

static int do_calculate_nar(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_free_ uint8_t *buf = NULL;
        _cleanup_free_ void *mem = NULL;
        NarResp resp = TVIX__STORE__V1__CALCULATE_NARRESPONSE__INIT;
        enum cas_verr why = CAS_VERR_NONE;
        uint8_t sha[NIX_SHA256_LEN];
        struct cas_node node;
        size_t len;
        int r;

        r = rpc_call_recv(c, &buf, &len);
        if (r <= 0)
                return r < 0 ? r : rpc_call_fail(c, RPC_INVALID_ARGUMENT, "no request");
        if (cas_node_decode(buf, len, CAS_NODE_ALLOW_EMPTY_NAME, &node, &mem, &why) < 0)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "invalid node: %s", cas_verr_str(why));
        if (node.name_len != 0)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "the node must have an empty name");
        r = nar_render(svc->blobs, svc->dirs, &node, 0, NULL, NULL, &resp.nar_size, sha);
        if (r == -ENOENT)
                return rpc_call_fail(c, RPC_NOT_FOUND, "the node's contents are not all in the store");
        if (r == -EBADMSG)
                return rpc_call_fail(c, RPC_DATA_LOSS, "the node's contents are damaged in this store");
        if (r < 0)
                return r;
        resp.nar_sha256 = (ProtobufCBinaryData){ .data = sha, .len = NIX_SHA256_LEN };
        return pb_send(c, &resp.base);
}

static int list_one(void *userdata, const struct nix_pathinfo *pi) {
        return send_pathinfo(userdata, pi);
}

static int do_list(struct rpc_call *c, void *userdata) {
        struct remote_services *svc = userdata;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r = rpc_call_recv(c, &buf, &len);
        if (r < 0)
                return r;
        return nix_pathinfo_list(svc->pathinfo, list_one, c);
}

/* grpc.health.v1: HealthCheckRequest { string service = 1; } ->
 * HealthCheckResponse { ServingStatus status = 1; }, SERVING = 1. */
static int do_health(struct rpc_call *c, void *userdata) {
        static const char *const services[] = { "BlobService", "DirectoryService", "PathInfoService" };
        static const uint8_t serving[] = { 0x08, 0x01 };
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r = rpc_call_recv(c, &buf, &len);
        if (r < 0)
                return r;
        if (r == 0 || len == 0)
                return rpc_call_send(c, serving, sizeof(serving));
        if (len < 2 || buf[0] != 0x0a || buf[1] >= 0x80 || (size_t) buf[1] + 2 != len)
                return rpc_call_fail(c, RPC_INVALID_ARGUMENT, "malformed HealthCheckRequest");
        const char *name = (const char *) buf + 2;
        size_t n = buf[1];
        const char *dot = memrchr(name, '.', n);
        for (size_t i = 0; dot && i < ELEMENTSOF(services); i++)
                if ((size_t) (name + n - dot - 1) == strlen(services[i]) && memcmp(dot + 1, services[i], strlen(services[i])) == 0)
                        return rpc_call_send(c, serving, sizeof(serving));
        return rpc_call_fail(c, RPC_NOT_FOUND, "unknown service %.*s", (int) n, name);
}

int remote_add_method(struct rpc_server *s, const char *const packages[2], const char *service, const char *method,
                      rpc_handler h, void *userdata) {
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "/%s.%s/%s", packages[i], service, method) < 0)
                        return -ENOMEM;
                int r = rpc_server_add_method(s, path, h, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int remote_add_pathinfo_service(struct rpc_server *s, struct remote_services *svc) {
        static const struct {
                const char *name;
                rpc_handler h;
        } methods[] = {
                { "Get", do_get }, { "Put", do_put }, { "CalculateNAR", do_calculate_nar }, { "List", do_list },
        };
        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                int r = remote_add_method(s, pb_store_packages, "PathInfoService", methods[i].name, methods[i].h, svc);
                if (r < 0)
                        return r;
        }
        return 0;
}

int remote_server_add_services(struct rpc_server *s, struct remote_services *svc) {
        int r = remote_add_blob_service(s, svc);
        if (r >= 0)
                r = remote_add_dir_service(s, svc);
        if (r >= 0)
                r = remote_add_pathinfo_service(s, svc);
        if (r >= 0)
                r = rpc_server_add_method(s, "/grpc.health.v1.Health/Check", do_health, svc);
        return r;
}
