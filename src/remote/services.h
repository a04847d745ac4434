/* Choosing the services a command works with, as snix-store spells the
 * addresses: --store (a directory or local://, memory://, or a gRPC
 * daemon for all three services), per service --blob-service-addr,
 * --directory-service-addr and --path-info-service-addr (gRPC, or
 * PostgreSQL for directories and PathInfos), and a local --cache store
 * written back into (castore/cache.h). */
#pragma once

#include "castore/store.h"
#include "store/pathinfosvc.h"

struct remote_addrs {
        const char *store;    /* the default for each service */
        const char *blobs;    /* NULL: store */
        const char *dirs;     /* NULL: store */
        const char *pathinfo; /* NULL: store */
        const char *cache;    /* a local store directory, or NULL */
        unsigned timeout_ms;  /* for every remote call; 0: 30 s */
        /* With a cache: fetch the small files of each directory closure
         * in the background (for serving daemons, whose users walk
         * trees; a one-shot command would only pay for it). */
        bool prefetch;
};

/* The addresses a snix store composition file describes (parsed by
 * util/toml.h; composition.c lists the compositions castore can build).
 * The strings stay doc's.  -EINVAL with a sentence in err otherwise. */
struct toml_table;
int remote_addrs_from_composition(const struct toml_table *doc, struct remote_addrs *ret, char *err, size_t errlen);

/* Whether url names a gRPC daemon (grpc+unix://, grpc+http://). */
bool remote_url_is_grpc(const char *url);
/* Whether url names a PostgreSQL database (postgresql://, postgres://):
 * the directory and PathInfo services there, the blobs and named roots
 * in the local store given by --store or --blob-service-addr. */
bool remote_url_is_pg(const char *url);
/* A copy of url for messages, with a password masked (free()). */
char *remote_url_masked(const char *url);

/* Opens the services: *ret_store (blobs, directories, named roots) and, if
 * ret_pathinfo is not NULL, the PathInfo service (free it before the
 * store).  With only local or memory addresses, all of them the same,
 * this is cas_store_open plus nix_pathinfo_open_store; gRPC addresses get
 * grpc backends, with the cache in front when given.  Named roots are
 * local: the cache's, or an empty in-memory registry without one.
 * flags: CAS_STORE_* for the local stores (the cache is always created).
 * Errors are logged. */
int remote_open(const struct remote_addrs *a, unsigned flags, struct cas_store **ret_store,
                struct nix_pathinfo_service **ret_pathinfo);
