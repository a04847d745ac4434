/* Unit tests for BLAKE3 digests: SPEC §2 known answers and display forms. */
#include "castore/digest.h"
#include "util/macro.h"
#include "test.h"

static void check_hex(const void *data, size_t len, const char *want) {
        struct cas_digest d;
        char hex[CAS_DIGEST_HEX_LEN + 1];

        cas_digest_of(data, len, &d);
        cas_digest_to_hex(&d, hex);
        CHECK_STREQ(hex, want);
}

static void test_known_answers(void) {
        static const uint8_t blob_a[] = { 0x00, 0x01 };

        check_hex("", 0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        check_hex("Hello World!", 12, "5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c");
        check_hex(blob_a, 2, "7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63");
}

/* BLOB_B: 0x00..0xFE repeated 4096 times, fed in uneven pieces so that the
 * incremental path (and the SIMD code for long inputs) is exercised. */
static void test_blob_b_incremental(void) {
        uint8_t *b = malloc(255 * 4096);
        struct cas_hasher h;
        struct cas_digest d, d2;

        CHECK(b);
        for (size_t i = 0; i < 255 * 4096; i++)
                b[i] = i % 255;
        cas_hasher_init(&h);
        for (size_t off = 0, step = 1; off < 255 * 4096; off += step, step = step * 3 % 65537 + 1)
                cas_hasher_update(&h, b + off, MIN(step, 255 * 4096 - off));
        cas_hasher_final(&h, &d);
        CHECK_STREQ(CAS_DIGEST_HEX(&d), "a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2");
        cas_digest_of(b, 255 * 4096, &d2);
        CHECK(cas_digest_equal(&d, &d2));
        free(b);
}

static void test_display_and_parse(void) {
        struct cas_digest d, p;
        char b3[CAS_DIGEST_B3_LEN + 1];

        cas_digest_of("", 0, &d);
        CHECK(cas_digest_equal(&d, &cas_digest_empty));
        cas_digest_to_b3(&d, b3);
        CHECK_STREQ(b3, "b3:rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI=");
        CHECK_OK(cas_digest_parse(b3, &p));
        CHECK(cas_digest_equal(&d, &p));
        CHECK_OK(cas_digest_parse("AF1349B9F5F9A1A6A0404DEA36DCC9499BCB25C9ADC112B7CC9A93CAE41F3262", &p));
        CHECK(cas_digest_equal(&d, &p));
        CHECK_EQ(cas_digest_parse("af13", &p), -EINVAL);
        CHECK_EQ(cas_digest_parse("xf1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", &p), -EINVAL);
        CHECK_EQ(cas_digest_parse("b3:rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMm==", &p), -EINVAL);
        CHECK_EQ(cas_digest_parse("b2:rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI=", &p), -EINVAL);
        CHECK_EQ(cas_digest_from_bytes(d.b, 31, &p), -EINVAL);
        CHECK_EQ(cas_digest_from_bytes(NULL, 32, &p), -EINVAL);
}

int main(void) {
        RUN(test_known_answers);
        RUN(test_blob_b_incremental);
        RUN(test_display_and_parse);
        return 0;
}
