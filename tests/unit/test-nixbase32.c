/* Unit tests for nixbase32: SPEC §3 known answers, every decoding rule
 * (alphabet, length, non-zero carry) and round trips of all lengths. */
#include "store/nixbase32.h"
#include "test.h"

static int unhex(const char *s, uint8_t *out) {
        size_t n = strlen(s) / 2;
        for (size_t i = 0; i < n; i++) {
                unsigned v;
                CHECK(sscanf(s + 2 * i, "%2x", &v) == 1);
                out[i] = (uint8_t) v;
        }
        return (int) n;
}

static void check_pair(const char *hex, const char *b32) {
        uint8_t in[64], out[64];
        char enc[128], h[129];
        int n = unhex(hex, in);

        CHECK_EQ(nixbase32_encoded_len((size_t) n), strlen(b32));
        nixbase32_encode(in, (size_t) n, enc);
        CHECK_STREQ(enc, b32);
        CHECK_EQ(nixbase32_decode(b32, strlen(b32), out, sizeof(out)), n);
        CHECK_STREQ(test_hex(out, (size_t) n, h), hex);
}

static void test_known_answers(void) {
        check_pair("8a12321522fd91efbd60ebb2481af88580f61600", "00bgd045z0d4icpbc2yyz4gx48ak44la");
        check_pair("1f", "0z");
        check_pair("", "");
        check_pair("00", "00");
        check_pair("ff", "7z");
        /* from nix hash to-base32 */
        check_pair("ffffffffffffffffffffffffffffffffffffffff", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
        check_pair("000102030405060708090a0b0c0d0e0f", "0g1q6hq2qa1440f1h50h1h4080");
        /* sha256 of the "Hello World!" NAR, as nix-store --query --hash prints it */
        check_pair("03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040",
                   "0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3");
}

static void test_invalid(void) {
        uint8_t out[64];

        /* non-zero carry: bits beyond the last byte */
        CHECK_EQ(nixbase32_decode("zz", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("c0", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("80", 2, out, sizeof(out)), -EINVAL);
        /* lengths no byte count encodes to */
        CHECK_EQ(nixbase32_decode("0", 1, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("0zz", 3, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("000000000000000000000000000000000", 33, out, sizeof(out)), -EINVAL);
        /* characters outside the alphabet: e o t u, upper case, NUL */
        CHECK_EQ(nixbase32_decode("0e", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("0o", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("0t", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("0u", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("0A", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("0\0", 2, out, sizeof(out)), -EINVAL);
        CHECK_EQ(nixbase32_decode("0-", 2, out, sizeof(out)), -EINVAL);
        /* buffer too small */
        CHECK_EQ(nixbase32_decode("00bgd045z0d4icpbc2yyz4gx48ak44la", 32, out, 19), -ENOBUFS);
        CHECK(nixbase32_is_char('z'));
        CHECK(!nixbase32_is_char('e'));
        CHECK(!nixbase32_is_char(0));
}

static void test_round_trip(void) {
        uint8_t in[70], out[70];
        char enc[120];

        for (size_t i = 0; i < sizeof(in); i++)
                in[i] = (uint8_t) (i * 37 + 11);
        for (size_t n = 0; n <= sizeof(in); n++) {
                nixbase32_encode(in, n, enc);
                CHECK_EQ(strlen(enc), (n * 8 + 4) / 5);
                CHECK_EQ(nixbase32_decode(enc, strlen(enc), out, sizeof(out)), n);
                CHECK(memcmp(in, out, n) == 0);
        }
        /* every single-byte value */
        for (unsigned v = 0; v < 256; v++) {
                uint8_t b = (uint8_t) v, o;
                nixbase32_encode(&b, 1, enc);
                CHECK_EQ(nixbase32_decode(enc, 2, &o, 1), 1);
                CHECK_EQ(o, v);
        }
}

int main(void) {
        RUN(test_known_answers);
        RUN(test_invalid);
        RUN(test_round_trip);
        return 0;
}
