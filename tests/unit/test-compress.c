/* Unit tests for the NAR compressors (store/compress.c): every method
 * round-trips through our decompressors, for empty, one-byte and large
 * inputs written in varied chunk sizes, and the sink's errors come back. */
#include "store/compress.h"
#include "store/decompress.h"
#include "test.h"

/* A growing memory sink */
struct mem_sink {
        uint8_t *data;
        size_t len, cap, max_chunk;
        int fail_after; /* > 0: the nth write fails with -ENOSPC */
        int writes;
};

static int mem_write(void *userdata, const void *buf, size_t len) {
        struct mem_sink *m = userdata;

        CHECK(len > 0);
        if (len > m->max_chunk)
                m->max_chunk = len;
        if (m->fail_after > 0 && ++m->writes >= m->fail_after)
                return -ENOSPC;
        if (m->len + len > m->cap) {
                m->cap = (m->len + len) * 2;
                m->data = realloc(m->data, m->cap);
                CHECK(m->data);
        }
        memcpy(m->data + m->len, buf, len);
        m->len += len;
        return 0;
}

struct mem_source {
        const uint8_t *data;
        size_t len, pos;
};

static ssize_t mem_read(void *userdata, void *buf, size_t len) {
        struct mem_source *m = userdata;
        size_t n = m->len - m->pos < len ? m->len - m->pos : len;

        if (n > 0)
                memcpy(buf, m->data + m->pos, n);
        m->pos += n;
        return (ssize_t) n;
}

static const char *const methods[] = { "none", "xz", "zstd", "bzip2", "br" };

/* Compressible but not trivial: text-like runs with pseudo-random bytes */
static uint8_t *make_input(size_t len) {
        uint8_t *p = malloc(len ? len : 1);
        uint32_t x = 12345;

        CHECK(p);
        for (size_t i = 0; i < len; i++) {
                x = x * 1103515245 + 12345;
                p[i] = (i / 64) % 3 == 0 ? (uint8_t) (x >> 24) : (uint8_t) ("nix-archive-1 "[i % 14]);
        }
        return p;
}

static void round_trip(const char *method, size_t len, size_t chunk) {
        _cleanup_(nix_compress_freep) struct nix_compress *c = NULL;
        _cleanup_(nix_decompress_freep) struct nix_decompress *d = NULL;
        _cleanup_free_ uint8_t *in = make_input(len), *out = malloc(len + 1);
        struct mem_sink sink = {};
        struct mem_source src;
        size_t got = 0;
        ssize_t n;

        CHECK(out);
        CHECK_OK(nix_compress_new(method, mem_write, &sink, &c));
        for (size_t off = 0; off < len; off += chunk)
                CHECK_OK(nix_compress_write(c, in + off, len - off < chunk ? len - off : chunk));
        CHECK_OK(nix_compress_finish(c));
        CHECK(sink.max_chunk <= 128 * 1024);
        if (strcmp(method, "none") == 0)
                CHECK_EQ(sink.len, len);
        else
                CHECK(sink.len > 0); /* even an empty input has a header */
        src = (struct mem_source){ sink.data, sink.len, 0 };
        CHECK_OK(nix_decompress_new(method, mem_read, &src, &d));
        while ((n = nix_decompress_read(d, out + got, len + 1 - got)) > 0)
                got += (size_t) n;
        CHECK_OK(n);
        CHECK_EQ(got, len);
        CHECK(len == 0 || memcmp(in, out, len) == 0);
        free(sink.data);
}

static void test_round_trips(void) {
        static const size_t lens[] = { 0, 1, 4096, 600 * 1024 + 17 };
        static const size_t chunks[] = { 1, 7, 65536, 1 << 20 };

        for (size_t m = 0; m < ELEMENTSOF(methods); m++)
                for (size_t l = 0; l < ELEMENTSOF(lens); l++)
                        for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                                /* byte-by-byte writes of megabytes only cost time */
                                if (chunks[c] < 4096 && lens[l] > 4096)
                                        continue;
                                round_trip(methods[m], lens[l], chunks[c]);
                        }
}

/* Incompressible input bigger than the output buffer: many sink calls */
static void test_incompressible(void) {
        for (size_t m = 0; m < ELEMENTSOF(methods); m++) {
                _cleanup_(nix_compress_freep) struct nix_compress *c = NULL;
                _cleanup_(nix_decompress_freep) struct nix_decompress *d = NULL;
                size_t len = 1024 * 1024, got = 0;
                _cleanup_free_ uint8_t *in = malloc(len), *out = malloc(len);
                struct mem_sink sink = {};
                struct mem_source src;
                uint64_t x = 88172645463325252ULL;
                ssize_t n;

                CHECK(in && out);
                for (size_t i = 0; i < len; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        in[i] = (uint8_t) x;
                }
                CHECK_OK(nix_compress_new(methods[m], mem_write, &sink, &c));
                CHECK_OK(nix_compress_write(c, in, len));
                CHECK_OK(nix_compress_finish(c));
                src = (struct mem_source){ sink.data, sink.len, 0 };
                CHECK_OK(nix_decompress_new(methods[m], mem_read, &src, &d));
                while ((n = nix_decompress_read(d, out + got, len - got)) > 0)
                        got += (size_t) n;
                CHECK_OK(n);
                CHECK_EQ(got, len);
                CHECK(memcmp(in, out, len) == 0);
                free(sink.data);
        }
}

static void test_sink_error(void) {
        for (size_t m = 0; m < ELEMENTSOF(methods); m++) {
                _cleanup_(nix_compress_freep) struct nix_compress *c = NULL;
                _cleanup_free_ uint8_t *in = make_input(512 * 1024);
                struct mem_sink sink = { .fail_after = 1 };
                int r;

                CHECK_OK(nix_compress_new(methods[m], mem_write, &sink, &c));
                r = nix_compress_write(c, in, 512 * 1024);
                if (r == 0)
                        r = nix_compress_finish(c);
                CHECK_EQ(r, -ENOSPC);
                free(sink.data);
        }
}

static void test_names(void) {
        struct mem_sink sink = {};
        struct nix_compress *c = NULL;

        CHECK_STREQ(nix_compress_extension("none"), "");
        CHECK_STREQ(nix_compress_extension("xz"), ".xz");
        CHECK_STREQ(nix_compress_extension("zstd"), ".zst");
        CHECK_STREQ(nix_compress_extension("bzip2"), ".bz2");
        CHECK_STREQ(nix_compress_extension("br"), ".br");
        CHECK(nix_compress_extension("gzip") == NULL);
        CHECK(nix_compress_extension("") == NULL);
        CHECK(nix_compress_method_valid("xz"));
        CHECK(!nix_compress_method_valid("lz4"));
        CHECK(!nix_compress_method_valid(NULL));
        CHECK_EQ(nix_compress_new("lz4", mem_write, &sink, &c), -EOPNOTSUPP);
        CHECK(c == NULL);
}

int main(void) {
        test_names();
        test_round_trips();
        test_incompressible();
        test_sink_error();
        return *test_exit_code();
}
