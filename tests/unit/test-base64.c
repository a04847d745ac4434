/* Unit tests for the strict base64 codec. */
#include "util/base64.h"
#include "test.h"

static void test_roundtrip(void) {
        static const char *const want[] = { "", "AA==", "AAE=", "AAEC", "AAECAw==" };
        uint8_t in[4] = { 0, 1, 2, 3 }, out[8];
        char enc[16];

        for (size_t n = 0; n <= 4; n++) {
                base64_encode(in, n, enc);
                CHECK_STREQ(enc, want[n]);
                CHECK_EQ(base64_decode(enc, strlen(enc), out, sizeof(out)), n);
                CHECK(memcmp(in, out, n) == 0);
        }
}

static void test_rejects(void) {
        uint8_t out[8];

        CHECK_EQ(base64_decode("AAE", 3, out, sizeof(out)), -EINVAL);   /* length */
        CHECK_EQ(base64_decode("AA=E", 4, out, sizeof(out)), -EINVAL);  /* padding in the middle */
        CHECK_EQ(base64_decode("AB==", 4, out, sizeof(out)), -EINVAL);  /* trailing bits */
        CHECK_EQ(base64_decode("A*==", 4, out, sizeof(out)), -EINVAL);  /* bad character */
        CHECK_EQ(base64_decode("A===", 4, out, sizeof(out)), -EINVAL);
        CHECK_EQ(base64_decode("AA==AA==", 8, out, sizeof(out)), -EINVAL);
        CHECK_EQ(base64_decode("AAECAw==", 8, out, 2), -ENOBUFS);
}

int main(void) {
        RUN(test_roundtrip);
        RUN(test_rejects);
        return 0;
}
