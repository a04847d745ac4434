/* SHA-256 through OpenSSL's EVP interface: the hash of NARs and of store
 * path fingerprints.  The one place that maps libcrypto failures to errno. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"

#define NIX_SHA256_LEN 32

typedef struct evp_md_ctx_st EVP_MD_CTX;

/* Incremental hashing; not thread-safe per object.  A failed update is
 * remembered and reported by final, so callers check once. */
struct nix_sha256 {
        EVP_MD_CTX *ctx;
        bool failed;
};

/* 0 or -ENOMEM.  Pair with nix_sha256_final or nix_sha256_done. */
int nix_sha256_init(struct nix_sha256 *h);
void nix_sha256_update(struct nix_sha256 *h, const void *data, size_t len);
/* Writes the digest and releases the context: 0 or -EIO. */
int nix_sha256_final(struct nix_sha256 *h, uint8_t ret[NIX_SHA256_LEN]);
/* Releases the context without a result (safe after final, or on a
 * zeroed struct): usable as a cleanup handler. */
void nix_sha256_done(struct nix_sha256 *h);

int nix_sha256_of(const void *data, size_t len, uint8_t ret[NIX_SHA256_LEN]);

/* Lower-case hex of a SHA-256 digest: ret holds 65 bytes. */
void nix_sha256_to_hex(const uint8_t d[NIX_SHA256_LEN], char *ret);
