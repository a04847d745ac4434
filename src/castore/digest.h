/* BLAKE3-256 digests: the identity of blobs and Directory messages.
 * Hashing goes through the official BLAKE3 C implementation (SIMD dispatch
 * at run time).  Display forms: lower-case hex, and "b3:" + padded base64. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "blake3.h"

#define CAS_DIGEST_LEN 32
#define CAS_DIGEST_HEX_LEN 64                 /* without NUL */
#define CAS_DIGEST_B3_LEN (3 + 44)            /* "b3:" + base64, without NUL */
#define CAS_DIGEST_STR_MAX (CAS_DIGEST_HEX_LEN + 1)

struct cas_digest {
        uint8_t b[CAS_DIGEST_LEN];
};

/* Incremental hashing; not thread-safe per object. */
struct cas_hasher {
        blake3_hasher h;
};

void cas_hasher_init(struct cas_hasher *h);
void cas_hasher_update(struct cas_hasher *h, const void *data, size_t len);
void cas_hasher_final(struct cas_hasher *h, struct cas_digest *ret);

void cas_digest_of(const void *data, size_t len, struct cas_digest *ret);

static inline bool cas_digest_equal(const struct cas_digest *a, const struct cas_digest *b) {
        return memcmp(a->b, b->b, CAS_DIGEST_LEN) == 0;
}

/* A hash-table key for a digest: its first 8 bytes (already uniform). */
static inline uint64_t cas_digest_hash(const struct cas_digest *d) {
        uint64_t h;

        memcpy(&h, d->b, sizeof(h));
        return h;
}

/* The digest of the empty string, which is also that of the empty Directory. */
extern const struct cas_digest cas_digest_empty;

/* ret must hold CAS_DIGEST_HEX_LEN + 1 bytes. */
void cas_digest_to_hex(const struct cas_digest *d, char *ret);
/* ret must hold CAS_DIGEST_B3_LEN + 1 bytes. */
void cas_digest_to_b3(const struct cas_digest *d, char *ret);

/* Parses 64 hex digits (either case) or "b3:" + base64.  -EINVAL otherwise. */
int cas_digest_parse(const char *s, struct cas_digest *ret);

/* Copies a digest from a byte field of a foreign message: -EINVAL unless
 * len is exactly CAS_DIGEST_LEN. */
int cas_digest_from_bytes(const uint8_t *data, size_t len, struct cas_digest *ret);

/* Convenience for logs: formats into a caller-provided buffer, returns it. */
#define CAS_DIGEST_HEX(d) cas_digest_to_hex_buf((d), (char[CAS_DIGEST_HEX_LEN + 1]){})
#define CAS_DIGEST_B3(d) cas_digest_to_b3_buf((d), (char[CAS_DIGEST_B3_LEN + 1]){})
static inline const char *cas_digest_to_hex_buf(const struct cas_digest *d, char *buf) {
        cas_digest_to_hex(d, buf);
        return buf;
}
static inline const char *cas_digest_to_b3_buf(const struct cas_digest *d, char *buf) {
        cas_digest_to_b3(d, buf);
        return buf;
}
