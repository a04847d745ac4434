/* Opening the blob, directory, root and PathInfo services from addresses
 * (see services.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/cache.h"
#include "castore/pg.h"
#include "remote/backends.h"
#include "remote/services.h"
#include "util/log.h"

bool remote_url_is_grpc(const char *url) {
        return url && (strncmp(url, "grpc+unix://", 12) == 0 || strncmp(url, "grpc+http://", 12) == 0);
}

static int open_local(const struct remote_addrs *a, const char *url, unsigned flags, struct cas_store **ret_store,
                      struct nix_pathinfo_service **ret_pathinfo) {
        _cleanup_(cas_store_freep) struct cas_store *s = NULL;
        int r;

        if (a->cache)
                return log_error_errno(-EINVAL, "--cache goes in front of gRPC services, not of the local store %s",
                                       url);
        r = cas_store_open(url, flags, &s);
        if (r < 0)
                return r;
        if (ret_pathinfo) {
                r = nix_pathinfo_open_store(s, ret_pathinfo);
                if (r < 0)
                        return log_error_errno(r, "Failed to open the PathInfo database of %s: %m", url);
        }
        *ret_store = TAKE_PTR(s);
        return 0;
}

/* The grpc backends, each behind the cache's when there is one. */
static int open_far(const struct remote_addrs *a, struct cas_store *cache, struct cas_blob_service **ret_blobs,
                    struct cas_dir_service **ret_dirs) {
        struct cas_blob_service *blobs = NULL;
        struct cas_dir_service *dirs = NULL;
        int r;

        r = remote_blob_grpc_new(a->blobs, a->timeout_ms, &blobs);
        if (r >= 0 && cache)
                r = cas_blob_cache_new(cache->blobs, TAKE_PTR(blobs), &blobs);
        if (r >= 0)
                r = remote_dir_grpc_new(a->dirs, a->timeout_ms, &dirs);
        if (r >= 0 && cache) {
                r = cas_dir_cache_new(cache->dirs, TAKE_PTR(dirs), &dirs);
                if (r >= 0 && a->prefetch)
                        cas_dir_cache_set_prefetch(dirs, blobs);
        }
        if (r < 0) {
                cas_blob_service_free(blobs);
                return r;
        }
        *ret_blobs = blobs;
        *ret_dirs = dirs;
        return 0;
}

static int open_pathinfo(const struct remote_addrs *a, struct cas_store *cache, struct nix_pathinfo_service **ret) {
        struct nix_pathinfo_service *far = NULL, *near = NULL;
        int r = remote_pathinfo_grpc_new(a->pathinfo, a->timeout_ms, &far);
        if (r < 0 || !cache) {
                *ret = far;
                return r;
        }
        r = nix_pathinfo_open_store(cache, &near);
        if (r < 0) {
                nix_pathinfo_service_free(far);
                return log_error_errno(r, "Failed to open the PathInfo database of the cache: %m");
        }
        return nix_pathinfo_cache_new(near, far, ret);
}

static int open_remote(const struct remote_addrs *a, struct cas_store **ret_store,
                       struct nix_pathinfo_service **ret_pathinfo) {
        _cleanup_(cas_store_freep) struct cas_store *cache = NULL;
        struct cas_blob_service *blobs = NULL;
        struct cas_dir_service *dirs = NULL;
        struct cas_root_service *roots = NULL;
        struct cas_store *s = NULL;
        int r;

        if (a->cache) {
                r = cas_store_open(a->cache, CAS_STORE_CREATE, &cache);
                if (r < 0)
                        return r;
                if (!cache->lmdb)
                        return log_error_errno(-EINVAL, "--cache %s: a cache is a local store directory", a->cache);
        }
        r = open_far(a, cache, &blobs, &dirs);
        if (r < 0)
                return r;
        /* named roots stay local: the cache's, else a registry in memory */
        if (cache)
                roots = TAKE_PTR(cache->roots);
        else if ((r = cas_root_memory_new(&roots)) < 0) {
                cas_dir_service_free(dirs);
                cas_blob_service_free(blobs);
                return r;
        }
        r = cas_store_new(a->store ? a->store : a->blobs, blobs, dirs, roots, TAKE_PTR(cache), &s);
        if (r < 0)
                return r;
        if (ret_pathinfo) {
                r = open_pathinfo(a, s->cache, ret_pathinfo);
                if (r < 0) {
                        cas_store_free(s);
                        return r;
                }
        }
        *ret_store = s;
        return 0;
}


/* A Nix binary cache as the PathInfo service: the other services as
 * given, written to (fetched paths are stored there, created if need
 * be), their own PathInfo service in front keeping what was fetched. */
static int open_lazy(struct remote_addrs a, unsigned flags, struct cas_store **ret_store,
                     struct nix_pathinfo_service **ret_pathinfo) {
        _cleanup_(cas_store_freep) struct cas_store *s = NULL;
        struct nix_pathinfo_service *near = NULL;
        const char *url = a.pathinfo;
        int r;

        a.pathinfo = a.blobs;
        flags = (flags & ~CAS_STORE_READONLY) | CAS_STORE_CREATE;
        r = remote_open(&a, flags, &s, ret_pathinfo ? &near : NULL);
        if (r < 0)
                return r;
        if (ret_pathinfo) {
                r = nix_pathinfo_nixcache_new(url, s, near, ret_pathinfo);
                if (r == -EINVAL)
                        return log_error_errno(r, "Cannot use %.*s as a PathInfo service", (int) strcspn(url, "?"),
                                               url);
                if (r < 0)
                        return r;
        }
        *ret_store = TAKE_PTR(s);
        return 0;
}

bool remote_url_is_pg(const char *url) {
        return cas_pg_url_is(url);
}

char *remote_url_masked(const char *url) {
        if (!url)
                return NULL;
        return cas_pg_url_is(url) ? cas_pg_url_masked(url) : strdup(url);
}

/* PostgreSQL directory and PathInfo services with the blobs (and named
 * roots) of a local or memory store. */
static int open_pg(const struct remote_addrs *a, unsigned flags, struct cas_store **ret_store,
                   struct nix_pathinfo_service **ret_pathinfo) {
        _cleanup_(cas_store_freep) struct cas_store *s = NULL;
        _cleanup_(cas_pg_unrefp) struct cas_pg *dirs_db = NULL, *pi_db = NULL;
        _cleanup_(nix_pathinfo_service_freep) struct nix_pathinfo_service *pis = NULL;
        struct cas_dir_service *dirs = NULL;
        int r;

        if (cas_pg_url_is(a->blobs))
                return log_error_errno(-EINVAL, "Blobs cannot live in PostgreSQL: give a local store for them "
                                                "(--store DIR or --blob-service-addr DIR) with the PostgreSQL "
                                                "--directory-service-addr and --path-info-service-addr");
        if (!cas_pg_url_is(a->dirs) || !cas_pg_url_is(a->pathinfo))
                return log_error_errno(-EINVAL, "The directory and PathInfo services go to PostgreSQL together "
                                                "(--directory-service-addr and --path-info-service-addr)");
        if (remote_url_is_grpc(a->blobs))
                return log_error_errno(-EINVAL, "With PostgreSQL directories, blobs are a local store "
                                                "(not the gRPC daemon %s)", a->blobs);
        if (a->cache)
                return log_error_errno(-EINVAL, "--cache goes in front of gRPC services, not of PostgreSQL");
        r = cas_store_open(a->blobs, flags, &s);
        if (r < 0)
                return r;
        r = cas_pg_open(a->dirs, a->timeout_ms, &dirs_db);
        if (r < 0)
                return r;
        if (strcmp(a->dirs, a->pathinfo) == 0)
                pi_db = cas_pg_ref(dirs_db);
        else if ((r = cas_pg_open(a->pathinfo, a->timeout_ms, &pi_db)) < 0)
                return r;
        r = cas_dir_pg_new(dirs_db, &dirs);
        if (r >= 0 && ret_pathinfo)
                r = nix_pathinfo_pg_new(pi_db, &pis);
        if (r < 0) {
                cas_dir_service_free(dirs);
                return r;
        }
        /* the local store's own directory database stays unused */
        cas_dir_service_free(s->dirs);
        s->dirs = dirs;
        if (ret_pathinfo)
                *ret_pathinfo = TAKE_PTR(pis);
        *ret_store = TAKE_PTR(s);
        return 0;
}

int remote_open(const struct remote_addrs *in, unsigned flags, struct cas_store **ret_store,
                struct nix_pathinfo_service **ret_pathinfo) {
        struct remote_addrs a = *in;

        if (!a.blobs)
                a.blobs = a.store;
        if (!a.dirs)
                a.dirs = a.store;
        if (!a.pathinfo)
                a.pathinfo = a.store;
        if (!a.blobs || !a.dirs || !a.pathinfo)
                return log_error_errno(-EINVAL, "No store given");
        if (nix_pathinfo_url_is_cache(a.pathinfo))
                return open_lazy(a, flags, ret_store, ret_pathinfo);
        if (cas_pg_url_is(a.blobs) || cas_pg_url_is(a.dirs) || cas_pg_url_is(a.pathinfo))
                return open_pg(&a, flags, ret_store, ret_pathinfo);
        int n_grpc = remote_url_is_grpc(a.blobs) + remote_url_is_grpc(a.dirs) + remote_url_is_grpc(a.pathinfo);
        if (n_grpc == 3)
                return open_remote(&a, ret_store, ret_pathinfo);
        if (n_grpc == 0 && strcmp(a.blobs, a.dirs) == 0 && strcmp(a.blobs, a.pathinfo) == 0)
                return open_local(&a, a.blobs, flags, ret_store, ret_pathinfo);
        return log_error_errno(-EINVAL, "The blob, directory and PathInfo services must be all gRPC addresses or one "
                                        "local store (got %s, %s, %s)", a.blobs, a.dirs, a.pathinfo);
}
