/* PathInfo: what a Nix store path holds (its castore root node) plus the
 * NAR metadata Nix needs (references, NAR size and SHA-256, signatures,
 * content address, deriver).  Wire-compatible with tvix.store.v1.PathInfo;
 * every decode validates, from any source. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "castore/directory.h"
#include "util/base64.h"
#include "util/macro.h"
#include "store/sha256.h"
#include "store/storepath.h"

#define NIX_SIGNATURE_LEN 64 /* ed25519 */
#define NIX_SIGNATURE_NAME_MAX 255

/* NARInfo.CA.Hash: how a content-addressed path was ingested and hashed. */
enum nix_ca_hash {
        NIX_CA_NAR_SHA256 = 0,
        NIX_CA_NAR_SHA1 = 1,
        NIX_CA_NAR_SHA512 = 2,
        NIX_CA_NAR_MD5 = 3,
        NIX_CA_TEXT_SHA256 = 4,
        NIX_CA_FLAT_SHA1 = 5,
        NIX_CA_FLAT_MD5 = 6,
        NIX_CA_FLAT_SHA256 = 7,
        NIX_CA_FLAT_SHA512 = 8,
        _NIX_CA_MAX,
};
#define NIX_CA_DIGEST_MAX 64

/* Digest length of a CA hash type, or 0 for an unknown type. */
size_t nix_ca_digest_len(enum nix_ca_hash t);

/* Nix's rendering of a content address, e.g. "fixed:r:sha256:<nixbase32>"
 * or "text:sha256:<nixbase32>"; ret holds NIX_CA_STR_MAX bytes. */
#define NIX_CA_STR_MAX (sizeof("fixed:r:sha512:") + 103 + 1)
int nix_ca_to_string(enum nix_ca_hash t, const uint8_t *digest, char *ret);

/* The reverse, as narinfo CA: lines give it: s[0..len) is one of the
 * renderings above, the digest in nixbase32 or hex.  0 or -EINVAL. */
int nix_ca_parse(const char *s, size_t len, enum nix_ca_hash *ret_type, uint8_t ret_digest[NIX_CA_DIGEST_MAX]);

/* A hash string's digest of exactly n bytes: nixbase32 or lower/upper
 * case hex, told apart by the length.  0 or -EINVAL. */
int nix_hash_digest_parse(const char *s, size_t len, uint8_t *ret, size_t n);

struct nix_signature {
        char *name; /* key name, e.g. "cache.nixos.org-1"; owned */
        uint8_t data[NIX_SIGNATURE_LEN];
};

/* "name:base64(data)", as narinfo Sig: lines and nix path-info --json
 * show a signature; ret holds NIX_SIGNATURE_STR_MAX bytes. */
#define NIX_SIGNATURE_STR_MAX (NIX_SIGNATURE_NAME_MAX + 1 + BASE64_ENCODED_LEN(NIX_SIGNATURE_LEN) + 1)
void nix_signature_to_string(const struct nix_signature *s, char *ret);

/* A PathInfo.  Owns everything it points to (nix_pathinfo_free). */
struct nix_pathinfo {
        /* The root node, named by the store path basename; its strings live
         * in node_mem. */
        struct cas_node node;
        void *node_mem;
        struct nix_store_path path; /* node.name, parsed */

        /* Other store paths this one refers to, in stored order (on the
         * wire: 20-byte digests plus full basenames, same order). */
        size_t n_references;
        struct nix_store_path *references;

        uint64_t nar_size;
        uint8_t nar_sha256[NIX_SHA256_LEN];

        size_t n_signatures;
        struct nix_signature *signatures;

        bool has_deriver;
        struct nix_store_path deriver;

        bool has_ca;
        enum nix_ca_hash ca_type;
        uint8_t ca_digest[NIX_CA_DIGEST_MAX]; /* nix_ca_digest_len(ca_type) bytes */
};

/* A PathInfo for path holding root (copied and renamed to the basename),
 * with no references, signatures, deriver or CA.  0, -EINVAL (bad node),
 * -ENOMEM. */
int nix_pathinfo_new(const struct nix_store_path *path, const struct cas_node *root, uint64_t nar_size,
                     const uint8_t nar_sha256[NIX_SHA256_LEN], struct nix_pathinfo **ret);
void nix_pathinfo_free(struct nix_pathinfo *pi);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_pathinfo *, nix_pathinfo_free);

/* Appends a reference / a signature (name copied).  0 or -ENOMEM. */
int nix_pathinfo_add_reference(struct nix_pathinfo *pi, const struct nix_store_path *ref);
int nix_pathinfo_add_signature(struct nix_pathinfo *pi, const char *name, const uint8_t data[NIX_SIGNATURE_LEN]);

/* Checks a PathInfo built in memory by the same rules decode applies:
 * NULL if valid, else a sentence saying what is wrong. */
const char *nix_pathinfo_check(const struct nix_pathinfo *pi);

/* Encodes through protobuf-c (fields in field-number order, proto3
 * defaults omitted).  Refuses an invalid PathInfo with -EINVAL.
 * *ret_buf is malloc'ed. */
int nix_pathinfo_encode(const struct nix_pathinfo *pi, uint8_t **ret_buf, size_t *ret_len);

/* Parses and validates a PathInfo message: node present and valid, named
 * by a valid store path basename; narinfo present; nar_sha256 32 bytes;
 * references 20 bytes each, as many as reference_names, and each name a
 * valid basename whose digest is that reference; signatures with a
 * non-empty printable name without ':' and 64 bytes of data; CA type known
 * and its digest as long as the type says; deriver a valid store path.
 * Returns 0, -EBADMSG (with *ret_why, a static sentence, if non-NULL) or
 * -ENOMEM. */
int nix_pathinfo_decode(const void *buf, size_t len, struct nix_pathinfo **ret, const char **ret_why);
/* Decodes a stored record (a backend's key and value) and checks that key
 * is its store path digest: 0, -EBADMSG (logged as corrupt) or -ENOMEM. */
int nix_pathinfo_decode_stored(const void *key, size_t key_len, const void *buf, size_t len,
                               struct nix_pathinfo **ret);
