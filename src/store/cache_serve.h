/* Serving a Nix binary cache from castore, without the HTTP: what each
 * request of a binary cache client gets (nix-cache-info, narinfos signed
 * on the fly, NARs rendered from the store), and uploads as
 * `nix copy --to http://...` makes them (a NAR, then the narinfo that
 * binds it), checked before anything is registered.  A transport
 * (src/transport/httpcache.c) maps requests onto these calls.  All calls
 * are thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "castore/store.h"
#include "store/narinfo.h"
#include "store/nar_stream.h"
#include "store/pathinfosvc.h"

struct nix_serve_config {
        /* Each narinfo served gets a signature by each key. */
        const struct nix_secret_key *sign_keys;
        size_t n_sign_keys;
        unsigned priority;  /* nix-cache-info's Priority */
        bool allow_uploads; /* else every upload call is -EPERM */
        /* When n_upload_keys > 0, an uploaded narinfo needs a signature by
         * one of them. */
        const struct nix_public_key *upload_keys;
        size_t n_upload_keys;
};

/* Uploaded NARs waiting for their narinfo: at most this many, each for at
 * most this long (then dropped, its blobs left for the garbage collector). */
#define NIX_SERVE_PENDING_MAX 256
#define NIX_SERVE_PENDING_SECONDS (3600)

struct nix_serve;

/* Serves store and pis (both must outlive it) with cfg (copied; the keys
 * it points to must outlive it).  0 or -ENOMEM. */
int nix_serve_new(struct cas_store *store, struct nix_pathinfo_service *pis, const struct nix_serve_config *cfg,
                  struct nix_serve **ret);
void nix_serve_free(struct nix_serve *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_serve *, nix_serve_free);

/* The text of nix-cache-info (malloc'ed, NUL-terminated).  0 or -ENOMEM. */
int nix_serve_cache_info(struct nix_serve *s, char **ret, size_t *ret_len);

/* The narinfo for name[0..len), "<hash32>" (the part before ".narinfo"):
 * URL nar/<NarHash32>.nar, Compression none, FileHash/FileSize the
 * NarHash/NarSize, the stored signatures plus one by each sign key.
 * -EINVAL for a malformed name, -ENOENT if no path has that hash, else
 * 0 with malloc'ed text. */
int nix_serve_narinfo(struct nix_serve *s, const char *name, size_t len, char **ret, size_t *ret_len);

/* The path whose NAR is served as "nar/<name>" (name: "<NarHash32>.nar"):
 * *ret gets its PathInfo.  -EINVAL for a name that is not of that form,
 * -ENOENT if no registered path has that NAR hash.  NAR hashes are found
 * through an in-memory index from NAR hash to store path digest, filled
 * by narinfo requests and uploads and rebuilt from a full PathInfo
 * listing on a miss (one listing per miss: O(paths) per unknown name). */
int nix_serve_nar_lookup(struct nix_serve *s, const char *name, struct nix_pathinfo **ret);

/* The bytes [offset, offset + length) of pi's NAR as a stream
 * (nar_stream.h: every byte verified, a damaged blob an error). */
int nix_serve_nar_open(struct nix_serve *s, const struct nix_pathinfo *pi, uint64_t offset, uint64_t length,
                       struct nar_stream **ret);

/* ---- uploads (cache_upload.c) ---- */

struct nix_upload;

/* Drops the pending NARs older than NIX_SERVE_PENDING_SECONDS (and with
 * them their hold on the garbage collector).  Adding an upload does it
 * too; a server calls this now and then so that an idle one lets go. */
void nix_serve_expire(struct nix_serve *s);

/* Whether a NAR file uploaded as "nar/<name>" is pending (1, its size in
 * *ret_file_size if non-NULL) or not (0). */
int nix_serve_upload_pending(struct nix_serve *s, const char *name, uint64_t *ret_file_size);

/* Starts receiving the NAR file uploaded as "nar/<name>", name
 * "<anything>.nar" or with .xz, .zst, .bz2, .br: decompressed by its
 * extension and ingested while it arrives.  -EPERM (uploads not allowed),
 * -EINVAL (bad name), -ENOMEM, -errno. */
int nix_serve_upload_begin(struct nix_serve *s, const char *name, struct nix_upload **ret);
/* Feeds len bytes of the file (blocks while the ingest catches up).  0, or
 * the ingest's error (then only nix_upload_free remains). */
int nix_upload_write(struct nix_upload *u, const void *buf, size_t len);
/* The file ended: waits for the ingest, checks the NAR and keeps it as
 * pending under its name.  0, or -EBADMSG (malformed or truncated file or
 * NAR, *ret_why says what), -ENOSPC (too many pending), -errno.  Logged.
 * Frees u either way. */
int nix_upload_finish(struct nix_upload *u, const char **ret_why);
/* Abandons an upload (the client went away). NULL is fine. */
void nix_upload_free(struct nix_upload *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_upload *, nix_upload_free);

/* Binds an uploaded narinfo (buf[0..len)) to its pending NAR and registers
 * the path: the narinfo must parse and name the path the request named
 * (name: "<hash32>"), its URL a pending NAR whose FileHash/FileSize (when
 * given) and NarHash/NarSize match, each reference registered (or the
 * path itself), and with upload keys configured a signature by one of
 * them.  -EPERM (uploads not allowed, or no trusted signature), -EINVAL
 * (bad name), -EBADMSG (does not parse, does not match), -ENOENT (no such
 * pending NAR, or a reference unknown); *ret_why (a static sentence) says
 * which.  Nothing is registered unless 0 is returned.  Logged. */
int nix_serve_upload_narinfo(struct nix_serve *s, const char *name, size_t name_len, const char *buf, size_t len,
                             const char **ret_why);
