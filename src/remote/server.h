/* castore's gRPC services over a store, as tvix-store/snix-store's daemon
 * offers them, each under both package names: castore.v1.BlobService
 * (Stat, Read, Put), castore.v1.DirectoryService (Get, Put),
 * store.v1.PathInfoService (Get, Put, CalculateNAR, List) and
 * grpc.health.v1.Health (Check).  Status codes as upstream (docs/REMOTE.md).
 * Every byte a Read sends is verified (castore/vblob.h). */
#pragma once

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"
#include "castore/store.h"
#include "remote/rpc.h"
#include "store/pathinfosvc.h"

/* Borrowed by the server: they must outlive it. */
struct remote_services {
        struct cas_blob_service *blobs;
        struct cas_dir_service *dirs;
        struct nix_pathinfo_service *pathinfo;
        /* The store the services belong to, or NULL: each Put holds its
         * garbage collector's lock shared (cas_store_lock), so that a
         * directory or PathInfo is never stored against a sweep in
         * progress. */
        struct cas_store *store;
};

/* The shared hold of a Put: *ret stays NULL without a store. */
static inline int remote_put_lock(struct remote_services *svc, struct cas_store_lock **ret) {
        *ret = NULL;
        return svc->store ? cas_store_lock(svc->store, false, true, ret) : 0;
}

int remote_server_add_services(struct rpc_server *s, struct remote_services *svc);

/* Per service (server_blob.c, server_dir.c, server_pathinfo.c). */
int remote_add_blob_service(struct rpc_server *s, struct remote_services *svc);
int remote_add_dir_service(struct rpc_server *s, struct remote_services *svc);
int remote_add_pathinfo_service(struct rpc_server *s, struct remote_services *svc);
/* Registers h as "/PACKAGE.SERVICE/METHOD" for both packages. */
int remote_add_method(struct rpc_server *s, const char *const packages[2], const char *service, const char *method,
                      rpc_handler h, void *userdata);
