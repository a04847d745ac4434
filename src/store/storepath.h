/* Nix store paths: "/nix/store/<32 nixbase32 chars>-<name>", the 32
 * characters encoding a 20-byte digest.  Parsing, validation, formatting,
 * and the content-addressed path computations (text and "source" paths)
 * that Nix's makeStorePath performs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/sha256.h"

#define NIX_STORE_DIR "/nix/store"
#define NIX_STORE_DIR_LEN (sizeof(NIX_STORE_DIR) - 1)
#define NIX_DIGEST_LEN 20
#define NIX_DIGEST_CHARS 32
#define NIX_NAME_MAX 211
/* "<digest>-<name>" and "/nix/store/<digest>-<name>", without NUL */
#define NIX_BASENAME_MAX (NIX_DIGEST_CHARS + 1 + NIX_NAME_MAX)
#define NIX_PATH_MAX (NIX_STORE_DIR_LEN + 1 + NIX_BASENAME_MAX)

struct nix_store_path {
        uint8_t digest[NIX_DIGEST_LEN];
        size_t name_len;
        char name[NIX_NAME_MAX + 1]; /* NUL-terminated */
};

/* The name rules of current Nix: 1-211 characters of [A-Za-z0-9+-._?=];
 * not "." or "..", and not starting with ".-" or "..-" (so no dash-separated
 * component is "." or "..").  Other names with a leading period are valid:
 * Nix 2.4 and later accept them (nix-store --add of ".foo" works), although
 * tvix refuses any leading period.  0 or -EINVAL. */
int nix_name_check(const char *name, size_t len);

/* Parses "<digest>-<name>" (exactly len bytes, no NUL needed).  -EINVAL if
 * it is not a valid store path basename. */
int nix_store_path_from_basename(const char *s, size_t len, struct nix_store_path *ret);

/* Parses "/nix/store/<basename>", optionally followed by "/sub/path".  If
 * ret_subpath is NULL a sub path is refused; otherwise *ret_subpath points
 * into s at the '/' that starts it, or at the terminating NUL.  -EINVAL. */
int nix_store_path_from_absolute(const char *s, struct nix_store_path *ret, const char **ret_subpath);

/* Either form: an absolute path (starting with '/') or a basename. */
int nix_store_path_parse(const char *s, struct nix_store_path *ret, const char **ret_subpath);

/* Builds a store path from its parts, checking the name.  -EINVAL. */
int nix_store_path_new(const uint8_t digest[NIX_DIGEST_LEN], const char *name, size_t name_len,
                       struct nix_store_path *ret);

/* Formatting: ret holds NIX_BASENAME_MAX + 1 / NIX_PATH_MAX + 1 bytes.
 * Both return the length written (without NUL). */
size_t nix_store_path_basename(const struct nix_store_path *p, char *ret);
size_t nix_store_path_absolute(const struct nix_store_path *p, char *ret);

/* Nix's order of store paths: by basename, byte-wise. */
int nix_store_path_compare(const struct nix_store_path *a, const struct nix_store_path *b);

static inline bool nix_store_path_equal(const struct nix_store_path *a, const struct nix_store_path *b) {
        return nix_store_path_compare(a, b) == 0;
}

/* Nix's makeStorePath: fingerprint
 *   "<type>:sha256:<hex of inner>:/nix/store:<name>"
 * hashed with SHA-256 and folded to 20 bytes (out[i % 20] ^= h[i]).
 * type is NUL-terminated.  0, -EINVAL (bad name), -ENOMEM, -EIO. */
int nix_store_path_make(const char *type, const uint8_t inner[NIX_SHA256_LEN], const char *name,
                        size_t name_len, struct nix_store_path *ret);

/* A text path (builtins.toFile, "text" ingestion): type "text" followed by
 * ":<absolute path>" for each reference, sorted and deduplicated; inner =
 * sha256(content). */
int nix_store_path_make_text(const char *name, size_t name_len, const void *content, size_t content_len,
                             const struct nix_store_path *refs, size_t n_refs, struct nix_store_path *ret);

/* A "source" path: what nix-store --add / addToStore with recursive
 * (NAR) ingestion and SHA-256 gives; inner = the NAR's sha256, type
 * "source" plus references as for text paths (refs must not hold the
 * path itself), then ":self" if self_ref: the path refers to itself. */
int nix_store_path_make_source(const char *name, size_t name_len, const uint8_t nar_sha256[NIX_SHA256_LEN],
                               const struct nix_store_path *refs, size_t n_refs, bool self_ref,
                               struct nix_store_path *ret);
