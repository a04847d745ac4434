/* BLAKE3 digest helpers: hashing, hex and b3:base64 display and parsing. */
#include "castore/digest.h"

#include <errno.h>

#include "util/base64.h"
#include "util/hex.h"

const struct cas_digest cas_digest_empty = { {
        0xaf, 0x13, 0x49, 0xb9, 0xf5, 0xf9, 0xa1, 0xa6, 0xa0, 0x40, 0x4d, 0xea, 0x36, 0xdc, 0xc9, 0x49,
        0x9b, 0xcb, 0x25, 0xc9, 0xad, 0xc1, 0x12, 0xb7, 0xcc, 0x9a, 0x93, 0xca, 0xe4, 0x1f, 0x32, 0x62,
} };

void cas_hasher_init(struct cas_hasher *h) {
        blake3_hasher_init(&h->h);
}

void cas_hasher_update(struct cas_hasher *h, const void *data, size_t len) {
        blake3_hasher_update(&h->h, data, len);
}

void cas_hasher_final(struct cas_hasher *h, struct cas_digest *ret) {
        blake3_hasher_finalize(&h->h, ret->b, CAS_DIGEST_LEN);
}

void cas_digest_of(const void *data, size_t len, struct cas_digest *ret) {
        struct cas_hasher h;

        cas_hasher_init(&h);
        cas_hasher_update(&h, data, len);
        cas_hasher_final(&h, ret);
}

void cas_digest_to_hex(const struct cas_digest *d, char *ret) {
        hex_encode(d->b, CAS_DIGEST_LEN, ret);
}

void cas_digest_to_b3(const struct cas_digest *d, char *ret) {
        memcpy(ret, "b3:", 3);
        base64_encode(d->b, CAS_DIGEST_LEN, ret + 3);
}

int cas_digest_parse(const char *s, struct cas_digest *ret) {
        struct cas_digest d;
        size_t len = strlen(s);

        if (len == CAS_DIGEST_B3_LEN && strncmp(s, "b3:", 3) == 0) {
                if (base64_decode(s + 3, len - 3, d.b, sizeof(d.b)) != CAS_DIGEST_LEN)
                        return -EINVAL;
        } else if (len == CAS_DIGEST_HEX_LEN) {
                for (size_t i = 0; i < CAS_DIGEST_LEN; i++) {
                        int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        d.b[i] = hi << 4 | lo;
                }
        } else
                return -EINVAL;
        *ret = d;
        return 0;
}

int cas_digest_from_bytes(const uint8_t *data, size_t len, struct cas_digest *ret) {
        if (len != CAS_DIGEST_LEN || !data)
                return -EINVAL;
        memcpy(ret->b, data, CAS_DIGEST_LEN);
        return 0;
}
