/* Nix binary cache metadata: the narinfo parser (tolerant, as SPEC §8 says
 * caches in the wild require), the signed fingerprint, and Ed25519
 * verification of Sig lines against trusted public keys (OpenSSL). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pathinfo.h"

/* A parsed narinfo.  Owns everything it points to (nix_narinfo_free). */
struct nix_narinfo {
        struct nix_store_path path;
        char *url;         /* as given, relative to the cache */
        char *compression; /* "bzip2" when the field is missing */

        bool has_file_hash;
        uint8_t file_sha256[NIX_SHA256_LEN];
        bool has_file_size;
        uint64_t file_size;

        uint8_t nar_sha256[NIX_SHA256_LEN];
        uint64_t nar_size;

        size_t n_references; /* in the order given */
        struct nix_store_path *references;

        bool has_deriver; /* false for "unknown-deriver" too */
        struct nix_store_path deriver;

        size_t n_signatures;
        struct nix_signature *signatures;

        bool has_ca;
        enum nix_ca_hash ca_type;
        uint8_t ca_digest[NIX_CA_DIGEST_MAX];
};

/* Largest narinfo accepted (real ones are under 2 KiB plus references). */
#define NIX_NARINFO_MAX (1024 * 1024)

/* Parses a narinfo of len bytes.  Tolerant: unknown and repeated fields
 * (the last value wins, Sig lines accumulate), NarHash in nixbase32 or
 * hex, References unsorted or missing, "Deriver: unknown-deriver",
 * missing Compression (= bzip2), a trailing line without newline.
 * Required: StorePath, URL, NarHash (sha256), NarSize.  A Sig line that
 * does not parse is skipped (it could never verify).  Returns 0, -EBADMSG
 * with *ret_why (a static sentence) if non-NULL, or -ENOMEM. */
int nix_narinfo_parse(const char *buf, size_t len, struct nix_narinfo **ret, const char **ret_why);
void nix_narinfo_free(struct nix_narinfo *ni);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nix_narinfo *, nix_narinfo_free);

/* The string Nix signs: "1;<path>;sha256:<nixbase32>;<size>;<refs>", refs
 * the full paths in the order given, comma-joined.  malloc'ed into *ret. */
int nix_narinfo_fingerprint(const struct nix_narinfo *ni, char **ret);

/* Trusted public keys: "name:base64(32 bytes)". */
struct nix_public_key {
        char name[NIX_SIGNATURE_NAME_MAX + 1];
        uint8_t key[32];
};

/* Parses a whitespace-separated list of keys into a malloc'ed array.
 * -EINVAL (with *ret_bad pointing at the offending word) or -ENOMEM. */
int nix_public_keys_parse(const char *s, struct nix_public_key **ret, size_t *ret_n, const char **ret_bad);

/* Whether at least one signature of ni is a valid Ed25519 signature of
 * its fingerprint by a key of the same name in keys.  Returns 1 (the
 * first verifying key's index in *ret_key if non-NULL), 0 when none
 * verifies, -ENOMEM or -EIO (libcrypto failure). */
int nix_narinfo_verify(const struct nix_narinfo *ni, const struct nix_public_key *keys, size_t n_keys,
                       size_t *ret_key);

/* ---- writing (narinfo_write.c) ---- */

/* A narinfo describing pi: its path, NAR hash and size, references,
 * signatures, deriver and CA, with url and compression as given and no
 * FileHash/FileSize (set them when the file is known).  0 or -ENOMEM. */
int nix_narinfo_from_pathinfo(const struct nix_pathinfo *pi, const char *url, const char *compression,
                              struct nix_narinfo **ret);

/* The PathInfo a verified NAR and its narinfo make: the tree root (the
 * NAR's, copied), the NAR size and hash (as computed, not as claimed),
 * and the narinfo's references, signatures, deriver and CA.  0, -EINVAL
 * (bad node), -ENOMEM. */
int nix_narinfo_to_pathinfo(const struct nix_narinfo *ni, const struct cas_node *root, uint64_t nar_size,
                            const uint8_t nar_sha256[NIX_SHA256_LEN], struct nix_pathinfo **ret);

/* Renders ni as Nix writes a narinfo: StorePath, URL, Compression,
 * FileHash, FileSize, NarHash, NarSize, References (basenames, the line
 * present even when empty), Deriver, one Sig line each, CA.  Hashes in
 * nixbase32.  NUL-terminated malloc'ed text in *ret (its length in
 * *ret_len if non-NULL).  0 or -ENOMEM. */
int nix_narinfo_format(const struct nix_narinfo *ni, char **ret, size_t *ret_len);

/* A signing key as nix-store --generate-binary-cache-key writes it:
 * "name:base64(64 bytes)", the Ed25519 seed followed by the public key. */
struct nix_secret_key {
        char name[NIX_SIGNATURE_NAME_MAX + 1];
        uint8_t key[64];
};

/* Parses s[0..len) (surrounding whitespace ignored), and checks that the
 * public half is the one the seed gives.  0, -EINVAL or -EIO (libcrypto). */
int nix_secret_key_parse(const char *s, size_t len, struct nix_secret_key *ret);

/* Reads and parses a key file (at most 4 KiB).  Errors are logged, naming
 * the file but never its content. */
int nix_secret_key_load(const char *path, struct nix_secret_key *ret);

/* The public key of k, as trusted-public-keys takes it. */
void nix_secret_key_public(const struct nix_secret_key *k, struct nix_public_key *ret);

/* Signs ni's fingerprint with k and adds the signature, replacing one
 * made by a key of the same name.  0, -ENOMEM or -EIO. */
int nix_narinfo_sign(struct nix_narinfo *ni, const struct nix_secret_key *k);
