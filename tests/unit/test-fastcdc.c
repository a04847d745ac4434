/* Unit tests for FastCDC v2020: cut points against a reference run of the
 * Rust crate, independence from how the stream is split, the size bounds,
 * and all-zero input. */
#include <stdlib.h>

#include "castore/fastcdc.h"
#include "test.h"
#include "util/macro.h"

/* The input of the reference runs: SplitMix64 (Steele, Lea, Flood 2014)
 * from state 0, each output appended as 8 little-endian bytes. */
static uint8_t *splitmix(size_t n) {
        uint8_t *p = malloc(n);
        uint64_t s = 0;

        CHECK(p);
        for (size_t i = 0; i < n; i += 8) {
                uint64_t z = (s += 0x9e3779b97f4a7c15ull);
                z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
                z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
                z ^= z >> 31;
                for (size_t k = 0; k < 8 && i + k < n; k++)
                        p[i + k] = (uint8_t) (z >> (8 * k));
        }
        return p;
}

struct lens {
        size_t v[4096];
        size_t n;
};

static int record(void *userdata, const uint8_t *chunk, size_t len) {
        struct lens *l = userdata;

        CHECK(l->n < 4096);
        l->v[l->n++] = len;
        return 0;
}

/* Chunks data, pushed in pieces of `piece` bytes (0: all at once). */
static void chunk(size_t avg, const uint8_t *data, size_t n, size_t piece, struct lens *ret) {
        struct cas_fastcdc c;

        ret->n = 0;
        CHECK_OK(cas_fastcdc_init(&c, avg));
        for (size_t off = 0; off < n;) {
                size_t k = piece ? MIN(piece, n - off) : n - off;

                CHECK_OK(cas_fastcdc_push(&c, data + off, k, record, ret));
                off += k;
        }
        CHECK_OK(cas_fastcdc_finish(&c, record, ret));
        cas_fastcdc_done(&c);
}

/* Chunk lengths from the `fastcdc` crate's src/v2020/mod.rs, releases
 * 3.1.0 (the one snix locks) and 4.0.1 alike, each compiled with rustc
 * 1.95 and a driver printing the lengths FastCDC::new(data, avg/2, avg,
 * 2*avg) yields over splitmix() of the given size.  The same builds
 * reproduce the crate's published vectors (SekienAkashita.jpg at
 * 4096/16384/65535: 21325, 17140, 28084, 18217, 24700), which this C code
 * also matches.  300000 and 1500 are not powers of two: the mask comes
 * from the rounded logarithm (18 and 11). */
static const size_t ka_16k[] = {
        23429, 19811, 22802, 26923, 22528, 17806, 26297, 24465, 32768, 22424, 22289, 16635, 22952,
        19635, 16851, 32768, 19396, 32768, 17197, 16616, 10499, 19266, 11715, 32768, 16656, 19902,
        20472, 25795, 29335, 19756, 21955, 9367,  27682, 32768, 11802, 15355, 17976, 18617, 21163,
        23285, 24451, 32768, 23045, 31075, 8322,  25960, 16946, 11890, 10871, 754,
};
static const size_t ka_256k[] = {
        263641, 459576, 320113, 418623, 266975, 447401, 175474, 255295,
        133096, 283577, 276396, 265227, 230651, 303247, 95012,
};

static const size_t ka_300000[] = { 263641, 459576, 320113, 418623, 270563, 364636 };
static const size_t ka_1500[] = {
        1927, 1916, 2634, 3000, 1158, 2616, 2170, 1688, 1984, 1624, 2171, 3000, 1566, 802, 1342, 2460,
        1312, 1954, 2392, 2395, 3000, 2167, 3000, 1833, 1920, 2888, 2958, 2011, 1739, 3000, 909,
};

static void check_ka(size_t avg, size_t n, const size_t *want, size_t n_want) {
        uint8_t *data = splitmix(n);
        struct lens *got = malloc(sizeof(*got));

        CHECK(got);
        chunk(avg, data, n, 0, got);
        CHECK_EQ(got->n, n_want);
        for (size_t i = 0; i < n_want; i++)
                CHECK_EQ(got->v[i], want[i]);
        free(got);
        free(data);
}

static void test_known_answers(void) {
        check_ka(16384, 1 << 20, ka_16k, ELEMENTSOF(ka_16k));
        check_ka(262144, 4 << 20, ka_256k, ELEMENTSOF(ka_256k));
        check_ka(300000, 2 << 20, ka_300000, ELEMENTSOF(ka_300000));
        check_ka(1500, 65536, ka_1500, ELEMENTSOF(ka_1500));
}

/* Same cut points however the stream arrives; every chunk but the last
 * within [min, max]; the lengths add up. */
static void test_split_and_bounds(void) {
        static const size_t pieces[] = { 1, 7, 4093, 8192, 32768, 65537, 1 << 20 };
        size_t n = (1 << 20) + 12345;
        uint8_t *data = splitmix(n);
        struct lens *whole = malloc(sizeof(*whole)), *split = malloc(sizeof(*split));
        size_t sum = 0;

        CHECK(whole && split);
        chunk(16384, data, n, 0, whole);
        for (size_t i = 0; i < whole->n; i++) {
                if (i + 1 < whole->n)
                        CHECK(whole->v[i] >= 8192);
                CHECK(whole->v[i] <= 32768 && whole->v[i] > 0);
                sum += whole->v[i];
        }
        CHECK_EQ(sum, n);
        for (size_t p = 0; p < ELEMENTSOF(pieces); p++) {
                chunk(16384, data, n, pieces[p], split);
                CHECK_EQ(split->n, whole->n);
                CHECK(memcmp(split->v, whole->v, whole->n * sizeof(size_t)) == 0);
        }
        free(whole);
        free(split);
        free(data);
}

/* All zeros never match a mask: chunks of the maximum, then the rest. */
static void test_zeros(void) {
        size_t n = 10 * 2048 + 100;
        uint8_t *data = calloc(1, n);
        struct lens *got = malloc(sizeof(*got));

        CHECK(data && got);
        chunk(1024, data, n, 333, got);
        CHECK_EQ(got->n, 11);
        for (size_t i = 0; i < 10; i++)
                CHECK_EQ(got->v[i], 2048);
        CHECK_EQ(got->v[10], 100);
        chunk(1024, data, 0, 0, got);
        CHECK_EQ(got->n, 0);
        chunk(1024, data, 512, 0, got); /* at most min: one chunk */
        CHECK_EQ(got->n, 1);
        CHECK_EQ(got->v[0], 512);
        free(got);
        free(data);
}

static void test_limits(void) {
        struct cas_fastcdc c;

        CHECK_EQ(cas_fastcdc_init(&c, 511), -EINVAL);
        CHECK_EQ(cas_fastcdc_init(&c, (2u << 20) + 1), -EINVAL);
        CHECK_OK(cas_fastcdc_init(&c, 300000)); /* not a power of two: rounded log2 */
        CHECK_EQ(c.min, 150000);
        CHECK_EQ(c.max, 600000);
        cas_fastcdc_done(&c);
}

static int stop(void *userdata, const uint8_t *chunk, size_t len) {
        return -ECANCELED;
}

static void test_sink_error(void) {
        struct cas_fastcdc c;
        uint8_t *data = splitmix(100000);

        CHECK_OK(cas_fastcdc_init(&c, 1024));
        CHECK_EQ(cas_fastcdc_push(&c, data, 100000, stop, NULL), -ECANCELED);
        cas_fastcdc_done(&c);
        free(data);
}

int main(void) {
        test_known_answers();
        test_split_and_bounds();
        test_zeros();
        test_limits();
        test_sink_error();
        return 0;
}
