/* Copying store paths from a Nix binary cache (file:///dir or
 * http(s)://host[:port][/prefix]) into castore: narinfo fetched and its
 * signature checked, NAR streamed through the decompressor into
 * nar_ingest, every hash and size compared, then the PathInfo registered.
 * The one place that maps libcurl's codes to errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "castore/store.h"
#include "store/narinfo.h"
#include "store/pathinfosvc.h"

struct nix_cache;

/* Opens a cache by URL and reads its nix-cache-info (a StoreDir other
 * than /nix/store is refused with -EINVAL; a missing file is accepted).
 * -EINVAL for an unsupported URL.  Errors are logged. */
int nix_cache_open(const char *url, struct nix_cache **ret);
void nix_cache_free(struct nix_cache *c);
/* The cache's URL for messages and reports: without its query and
 * without credentials.  Valid as long as c. */
const char *nix_cache_url(const struct nix_cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_cache *, nix_cache_free);

/* Fetches and parses the narinfo of path: -ENOENT if the cache has none,
 * -EBADMSG if it does not parse or names another path.  Logged. */
int nix_cache_get_narinfo(struct nix_cache *c, const struct nix_store_path *path, struct nix_narinfo **ret);

/* The same by the digest alone (the name is whatever the narinfo says;
 * its digest must be this one). */
int nix_cache_get_narinfo_digest(struct nix_cache *c, const uint8_t digest[NIX_DIGEST_LEN], struct nix_narinfo **ret);

struct nix_copy_opts {
        const struct nix_public_key *keys;
        size_t n_keys;
        /* Accept unsigned narinfos (only meaningful without keys). */
        bool no_check_sigs;
        /* Only the paths given, not their references. */
        bool no_closure;
        /* NARs fetched and ingested at once: 0 = NIX_COPY_JOBS_DEFAULT,
         * at most NIX_COPY_JOBS_MAX. */
        unsigned jobs;
        /* Called (from the calling thread) after each path copied or
         * found present (may be NULL). */
        void (*progress)(void *userdata, const struct nix_store_path *p, bool copied, uint64_t nar_size);
        void *progress_userdata;
};

/* One path, its references left alone: checks ni's signature as
 * nix_copy_from_cache does (opts: keys, no_check_sigs), streams its NAR
 * into blobs and dirs with every check, and returns the PathInfo to
 * register (not registered here).  Errors are logged, naming the path. */
int nix_cache_fetch_path(struct nix_cache *c, struct cas_blob_service *blobs, struct cas_dir_service *dirs,
                         const struct nix_narinfo *ni, const struct nix_copy_opts *opts, struct nix_pathinfo **ret);

#define NIX_COPY_JOBS_DEFAULT 4
#define NIX_COPY_JOBS_MAX 64

struct nix_copy_stats {
        size_t copied;       /* paths fetched and registered */
        size_t present;      /* paths skipped: already registered */
        uint64_t nar_bytes;  /* NAR bytes ingested */
        uint64_t file_bytes; /* bytes read from the cache (compressed) */
};

/* Copies paths (and, unless opts->no_closure, their closures, references
 * first, each once) from c into store and pis.  A path already registered
 * in pis is not fetched again (nor, then, its references).  First every
 * narinfo is fetched and its signature checked (opts->keys; with none,
 * refused with -EPERM unless no_check_sigs), so a bad signature anywhere
 * copies nothing; then the NARs are fetched and ingested on opts->jobs
 * threads, each checked (FileHash/FileSize when given, NarHash/NarSize),
 * and registered in order, references first, on the calling thread: the
 * PathInfo (references, signatures, deriver, CA) is put only for a path
 * whose checks passed.  The first failure stops the copy; paths
 * registered before it stay (complete and verified).  *ret counts what was done, also on
 * failure.  Errors are logged, naming the path. */
int nix_copy_from_cache(struct cas_store *store, struct nix_pathinfo_service *pis, struct nix_cache *c,
                        const struct nix_store_path *paths, size_t n_paths, const struct nix_copy_opts *opts,
                        struct nix_copy_stats *ret);

/* ---- writing a cache (nixcache_write.c) ---- */

/* Percent-decodes s[0..len) into a malloc'ed string, as Nix decodes its
 * store URL parameters ('+' stays '+': keys are base64).  NULL: ENOMEM. */
char *nix_url_decode(const char *s, size_t len);

/* The value of query parameter name in url ("?compression=zstd&..."),
 * percent-decoded, malloc'ed into *ret.  -ENOENT when absent, -ENOMEM. */
int nix_cache_url_param(const char *url, const char *name, char **ret);

/* Opens a cache for writing: as nix_cache_open, then for file:// the
 * directory (and its nar/) is created if missing, and nix-cache-info
 * ("StoreDir: /nix/store") is written when the cache has none (over
 * http(s): PUT).  Errors are logged, naming the URL without credentials. */
int nix_cache_open_write(const char *url, struct nix_cache **ret);

struct nix_copy_to_opts {
        const char *compression; /* none, xz, zstd, bzip2, br; NULL: xz */
        const struct nix_secret_key *keys; /* each narinfo is signed with all */
        size_t n_keys;
        bool write_nar_listing; /* a <hash>.ls file listing each NAR */
        bool no_closure;        /* only the paths given, not their references */
        unsigned jobs;          /* 0 = NIX_COPY_JOBS_DEFAULT, at most NIX_COPY_JOBS_MAX */
        /* Called (from the calling thread) after each path written or
         * found present in the cache (may be NULL). */
        void (*progress)(void *userdata, const struct nix_store_path *p, bool copied, uint64_t nar_size);
        void *progress_userdata;
};

/* Copies paths (and, unless opts->no_closure, their closures, references
 * first, each once) from store and pis to the cache c.  A path whose
 * narinfo the cache has is not written again.  Each NAR is rendered from
 * castore (never held in memory: it streams through the compressor into
 * a temporary file while its FileHash and FileSize are computed), checked
 * against the PathInfo's NarHash and NarSize, and stored as
 * nar/<nixbase32 FileHash>.nar<ext>; the narinfo (stored signatures kept,
 * one more per key) is written last, so a reader never meets a narinfo
 * without its NAR.  NARs are made on opts->jobs threads; narinfos are
 * written in order, references first, from the calling thread.  A file://
 * cache is written through temporary files renamed into place and
 * fsync'ed; an http(s):// one with PUTs (connection failures and 5xx
 * retried a few times).  The first failure stops the copy; narinfos
 * written before it stay (complete).  Stats: copied/present count paths,
 * nar_bytes and file_bytes what was written; filled on failure too.
 * -ENOENT: a path (or reference) is not registered in pis.  Errors are
 * logged, naming the path. */
int nix_copy_to_cache(struct cas_store *store, struct nix_pathinfo_service *pis, struct nix_cache *c,
                      const struct nix_store_path *paths, size_t n_paths, const struct nix_copy_to_opts *opts,
                      struct nix_copy_stats *ret);
