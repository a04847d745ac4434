/* Opening the blob, directory, root and PathInfo services from addresses
 * (see services.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blob_objstore.h"
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

/* The far blob service (gRPC or an object store), behind the cache's
 * when there is one. */
static int open_far_blobs(const struct remote_addrs *a, struct cas_store *cache, struct cas_blob_service **ret) {
        struct cas_blob_service *blobs = NULL;
        int r;

        if (cas_blob_url_is_objstore(a->blobs))
                r = cas_blob_objstore_open(a->blobs, &blobs);
        else
                r = remote_blob_grpc_new(a->blobs, a->timeout_ms, &blobs);
        if (r >= 0 && cache)
                r = cas_blob_cache_new(cache->blobs, TAKE_PTR(blobs), &blobs);
        if (r < 0)
                return log_error_errno(r, "Failed to open the blob service %s: %m", a->blobs);
        *ret = blobs;
        return 0;
}

static int open_cache(const struct remote_addrs *a, struct cas_store **ret) {
        int r;

        *ret = NULL;
        if (!a->cache)
                return 0;
        r = cas_store_open(a->cache, CAS_STORE_CREATE, ret);
        if (r < 0)
                return r;
        if (!(*ret)->lmdb) {
                cas_store_free(TAKE_PTR(*ret));
                return log_error_errno(-EINVAL, "--cache %s: a cache is a local store directory", a->cache);
        }
        return 0;
}

/* The far backends, each behind the cache's when there is one. */
static int open_far(const struct remote_addrs *a, struct cas_store *cache, struct cas_blob_service **ret_blobs,
                    struct cas_dir_service **ret_dirs) {
        struct cas_blob_service *blobs = NULL;
        struct cas_dir_service *dirs = NULL;
        int r;

        r = open_far_blobs(a, cache, &blobs);
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

        r = open_cache(a, &cache);
        if (r < 0)
                return r;
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

        a.pathinfo = cas_blob_url_is_objstore(a.blobs) ? a.dirs : a.blobs; /* where the store's own lives */
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

/* The local (or memory) store at url with the object store's blobs (behind
 * the cache if there is one) in place of its own, which stay unused. */
static int open_objstore_base(const struct remote_addrs *a, const char *url, unsigned flags, struct cas_store **ret) {
        _cleanup_(cas_store_freep) struct cas_store *s = NULL, *cache = NULL;
        struct cas_blob_service *blobs = NULL;
        int r;

        r = open_cache(a, &cache);
        if (r < 0)
                return r;
        r = open_far_blobs(a, cache, &blobs);
        if (r < 0)
                return r;
        r = cas_store_open(url, flags, &s);
        if (r < 0) {
                cas_blob_service_free(blobs);
                return r;
        }
        cas_blob_service_free(s->blobs);
        s->blobs = blobs;
        s->cache = TAKE_PTR(cache);
        *ret = TAKE_PTR(s);
        return 0;
}

/* The store under PostgreSQL directories: the local (or memory) store
 * holding the blobs and named roots, or, with object-store blobs (a cache
 * in front if given), --store's local store for the named roots. */
static int open_pg_base(const struct remote_addrs *a, unsigned flags, struct cas_store **ret) {
        if (cas_blob_url_is_objstore(a->blobs)) {
                if (!a->store || remote_url_is_grpc(a->store) || cas_pg_url_is(a->store) ||
                    cas_blob_url_is_objstore(a->store))
                        return log_error_errno(-EINVAL, "With object-store blobs and PostgreSQL directories, named "
                                                        "roots live in a local store: give --store DIR");
                return open_objstore_base(a, a->store, flags, ret);
        }
        if (a->cache)
                return log_error_errno(-EINVAL, "--cache goes in front of gRPC services or an object store, not "
                                                "of PostgreSQL");
        return cas_store_open(a->blobs, flags, ret);
}

/* PostgreSQL directory and PathInfo services with the blobs (and named
 * roots) of a local or memory store, or with object-store blobs. */
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
                                                "or an object store (not the gRPC daemon %s)", a->blobs);
        r = open_pg_base(a, flags, &s);
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
        if (r >= 0 && s->cache && a->prefetch) {
                /* serving with a cache: a directory's first get brings its
                 * closure (one recursive query) into the cache, and the
                 * small files of it into the blob cache, in parallel */
                r = cas_dir_cache_new(s->cache->dirs, TAKE_PTR(dirs), &dirs);
                if (r >= 0)
                        cas_dir_cache_set_prefetch(dirs, s->blobs);
        }
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

/* Blobs in an object store, directories and path infos in one local (or
 * memory) store. */
static int open_objstore_local(const struct remote_addrs *a, unsigned flags, struct cas_store **ret_store,
                               struct nix_pathinfo_service **ret_pathinfo) {
        _cleanup_(cas_store_freep) struct cas_store *s = NULL;
        int r;

        r = open_objstore_base(a, a->dirs, flags, &s);
        if (r < 0)
                return r;
        if (ret_pathinfo) {
                r = nix_pathinfo_open_store(s, ret_pathinfo);
                if (r < 0)
                        return log_error_errno(r, "Failed to open the PathInfo database of %s: %m", a->dirs);
        }
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
        if (cas_blob_url_is_objstore(a.dirs) || cas_blob_url_is_objstore(a.pathinfo))
                return log_error_errno(-EINVAL, "An object store holds blobs only: give the directories and path "
                                                "infos a local store or a gRPC daemon (--store DIR or "
                                                "--directory-service-addr and --path-info-service-addr)");
        if (cas_pg_url_is(a.blobs) || cas_pg_url_is(a.dirs) || cas_pg_url_is(a.pathinfo))
                return open_pg(&a, flags, ret_store, ret_pathinfo);
        bool objstore = cas_blob_url_is_objstore(a.blobs);
        int n_grpc = (objstore || remote_url_is_grpc(a.blobs)) + remote_url_is_grpc(a.dirs) +
                     remote_url_is_grpc(a.pathinfo);
        if (objstore && n_grpc == 1 && strcmp(a.dirs, a.pathinfo) == 0)
                return open_objstore_local(&a, flags, ret_store, ret_pathinfo);
        if (n_grpc == 3)
                return open_remote(&a, ret_store, ret_pathinfo);
        if (n_grpc == 0 && strcmp(a.blobs, a.dirs) == 0 && strcmp(a.blobs, a.pathinfo) == 0)
                return open_local(&a, a.blobs, flags, ret_store, ret_pathinfo);
        return log_error_errno(-EINVAL, "The blob, directory and PathInfo services must be all gRPC addresses, one "
                                        "local store, or an object store for blobs with the others in one local "
                                        "store or gRPC (got %s, %s, %s)", a.blobs, a.dirs, a.pathinfo);
}
