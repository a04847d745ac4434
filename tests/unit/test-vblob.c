/* Unit tests for verified streaming: outboard tree math against b3sum
 * known answers and the official hasher, and verified range reads over the
 * local store with damaged data and damaged outboards. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/blobsvc.h"
#include "castore/outboard.h"
#include "castore/vblob.h"
#include "test.h"
#include "util/log.h"

static uint8_t *pattern(size_t n) {
        uint8_t *p = malloc(n ? n : 1);

        CHECK(p);
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (i % 251);
        return p;
}

/* The root digest a blob's outboard merges into (or the plain hash of a
 * blob of one group or less). */
static void outboard_digest(const uint8_t *data, size_t n, struct cas_digest *ret) {
        uint64_t groups = cas_outboard_groups(n);
        uint8_t *ob;

        if (groups == 0) {
                cas_digest_of(data, n, ret);
                return;
        }
        ob = malloc(groups * CAS_CV_LEN);
        CHECK(ob);
        cas_outboard_of(data, n, ob);
        cas_outboard_root(ob, groups, ret);
        free(ob);
}

/* Known answers from b3sum for the BLAKE3 test-vector input pattern. */
static void test_known_answers(void) {
        static const struct {
                size_t n;
                const char *hex;
        } ka[] = {
                { 0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" },
                { 1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7" },
                { 16384, "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4" },
                { 16385, "1dabe216be2578830263b049de1639f39f05a4da616b9b78c7a5e4e41662fd1f" },
                { 32768, "162183d1f9184474f5a5c9e6224e66720cdb6523f822e52d9b1efa30893f48f9" },
                { 49153, "447d09cdb7cc2b870f041eda4d9b759195db784047b12666ec29e6905d38ac9c" },
                { 278529, "8241d9fa31c1249c6adad6305dec71eee9b5efb6268a4a5ae692a3c3ffd3c57e" },
                { 1048577, "2f053cd7472cf0cd2f9adaf45c1180255b91b9a865404a63671a0ee5f792ed33" },
        };

        for (size_t i = 0; i < sizeof(ka) / sizeof(ka[0]); i++) {
                uint8_t *data = pattern(ka[i].n);
                struct cas_digest d;
                char hex[CAS_DIGEST_HEX_LEN + 1];

                outboard_digest(data, ka[i].n, &d);
                CHECK_STREQ(test_hex(d.b, CAS_DIGEST_LEN, hex), ka[i].hex);
                free(data);
        }
}

/* Every size around chunk and group boundaries, and tree shapes of 2..40
 * groups: the outboard's root equals the official hasher's digest. */
static void test_boundaries(void) {
        const size_t max = 40 * CAS_GROUP_SIZE + 1025;
        uint8_t *data = pattern(max);
        static const long deltas[] = { -1025, -1024, -1023, -65, -64, -1, 0, 1, 63, 64, 1023, 1024, 1025 };

        for (size_t groups = 1; groups <= 40; groups++)
                for (size_t k = 0; k < sizeof(deltas) / sizeof(deltas[0]); k++) {
                        long n = (long) (groups * CAS_GROUP_SIZE) + deltas[k];
                        struct cas_digest a, b;

                        if (n < 0 || (size_t) n > max)
                                continue;
                        outboard_digest(data, (size_t) n, &a);
                        cas_digest_of(data, (size_t) n, &b);
                        CHECK(cas_digest_equal(&a, &b));
                }
        free(data);
}

/* cas_group_cvs over a slice of groups equals the same groups' CVs from
 * the whole-blob outboard, and cas_groups_verify accepts and rejects. */
static void test_group_slices(void) {
        const size_t n = 37 * CAS_GROUP_SIZE + 100;
        uint64_t groups = cas_outboard_groups(n);
        uint8_t *data = pattern(n), *ob = malloc(groups * CAS_CV_LEN), cvs[5 * CAS_CV_LEN];

        CHECK(ob);
        cas_outboard_of(data, n, ob);
        for (uint64_t g = 0; g + 5 <= groups; g += 3) {
                size_t len = MIN((size_t) 5 * CAS_GROUP_SIZE, n - g * CAS_GROUP_SIZE);

                cas_group_cvs(data + g * CAS_GROUP_SIZE, len, g, cvs);
                CHECK(memcmp(cvs, ob + g * CAS_CV_LEN, 5 * CAS_CV_LEN) == 0);
                CHECK_OK(cas_groups_verify(data + g * CAS_GROUP_SIZE, len, g, ob + g * CAS_CV_LEN));
                /* The same bytes at another position are other groups. */
                CHECK_EQ(cas_groups_verify(data + g * CAS_GROUP_SIZE, len, g + 1, ob + g * CAS_CV_LEN), -EBADMSG);
        }
        free(ob);
        free(data);
}

/* The streaming builder, fed in odd pieces, gives the digest and the
 * outboard that the one-shot functions give. */
static void test_builder(void) {
        static const size_t sizes[] = { 0, 5, CAS_GROUP_SIZE, CAS_GROUP_SIZE + 1, 2 * CAS_GROUP_SIZE,
                                        40 * CAS_GROUP_SIZE + 999, 70 * CAS_GROUP_SIZE };
        static const size_t pieces[] = { 1, 1000, CAS_GROUP_SIZE, CAS_GROUP_SIZE + 1, 1 << 20 };

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
                for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
                        size_t n = sizes[i], groups = cas_outboard_groups(n), ob_len;
                        struct cas_outboard_builder b;
                        struct cas_digest d, dd;
                        uint8_t *data, *want, *ob;

                        if (n > 4 * CAS_GROUP_SIZE && pieces[k] == 1)
                                continue; /* slow, and nothing new */
                        data = pattern(n);
                        want = malloc(groups * CAS_CV_LEN + 1);
                        cas_outboard_builder_init(&b);
                        for (size_t off = 0; off < n; off += pieces[k])
                                cas_outboard_builder_update(&b, data + off, MIN(pieces[k], n - off));
                        CHECK_OK(cas_outboard_builder_final(&b, &d, &ob, &ob_len));
                        cas_digest_of(data, n, &dd);
                        CHECK(cas_digest_equal(&d, &dd));
                        CHECK_EQ(ob_len, groups * CAS_CV_LEN);
                        cas_outboard_of(data, n, want);
                        CHECK(groups == 0 || memcmp(ob, want, ob_len) == 0);
                        free(ob);
                        free(want);
                        free(data);
                }
}

struct local {
        char dir[64], blobs[80], tmp[80];
        struct cas_blob_service *s;
};

static void local_open(struct local *l) {
        strcpy(l->dir, "/tmp/test-vblob-XXXXXX");
        CHECK(mkdtemp(l->dir));
        snprintf(l->blobs, sizeof(l->blobs), "%s/blobs", l->dir);
        snprintf(l->tmp, sizeof(l->tmp), "%s/tmp", l->dir);
        CHECK_OK(cas_blob_local_new(l->blobs, l->tmp, &l->s));
}

static void local_close(struct local *l) {
        char cmd[128];

        cas_blob_service_free(l->s);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", l->dir);
        CHECK(system(cmd) == 0);
}

static void blob_file(struct local *l, const struct cas_digest *d, const char *suffix, char *path, size_t size) {
        char hex[CAS_DIGEST_HEX_LEN + 1];

        cas_digest_to_hex(d, hex);
        snprintf(path, size, "%s/%.2s/%s%s", l->blobs, hex, hex, suffix);
}

static void flip_byte(const char *path, uint64_t off) {
        int fd = open(path, O_RDWR);
        uint8_t b;

        CHECK(fd >= 0);
        CHECK(chmod(path, 0644) == 0);
        CHECK(pread(fd, &b, 1, (off_t) off) == 1);
        b ^= 0x40;
        CHECK(pwrite(fd, &b, 1, (off_t) off) == 1);
        close(fd);
}

static void check_range(struct cas_vblob *v, const uint8_t *data, uint64_t off, size_t len) {
        uint8_t *buf = malloc(len + 1);
        uint64_t size = cas_vblob_size(v);
        size_t want = off >= size ? 0 : (size_t) MIN((uint64_t) len, size - off);

        CHECK(buf);
        CHECK_EQ(cas_vblob_pread(v, buf, len, off), (ssize_t) want);
        CHECK(memcmp(buf, data + off, want) == 0);
        free(buf);
}

/* Reads at many offsets and lengths, aligned and not, return the data. */
static void test_ranges(void) {
        static const size_t sizes[] = { 0, 1, 4096, CAS_GROUP_SIZE, CAS_GROUP_SIZE + 1, 5 * CAS_GROUP_SIZE + 7 };
        struct local l;

        local_open(&l);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                size_t n = sizes[i];
                uint8_t *data = pattern(n);
                struct cas_vblob *v = NULL;
                struct cas_digest d;

                CHECK_OK(cas_blob_put(l.s, data, n, 0, &d));
                CHECK_OK(cas_vblob_open(l.s, &d, n, &v));
                for (uint64_t off = 0; off <= n + 1; off += 4093)
                        for (size_t len = 1; len <= 3 * CAS_GROUP_SIZE; len = len * 3 + 1)
                                check_range(v, data, off, len);
                check_range(v, data, 0, n + 100);
                CHECK_OK(cas_vblob_check(v));
                cas_vblob_close(v);
                CHECK_EQ(cas_vblob_open(l.s, &d, n + 1, &v), -EBADMSG); /* the Directory's size rules */
                free(data);
        }
        local_close(&l);
}

struct sink {
        uint8_t *buf;
        size_t len;
};

static int sink_append(void *userdata, const void *buf, size_t len) {
        struct sink *s = userdata;

        memcpy(s->buf + s->len, buf, len);
        s->len += len;
        return 0;
}

static void test_copy(void) {
        const size_t n = 40 * CAS_GROUP_SIZE + 3;
        uint8_t *data = pattern(n);
        struct sink out = { .buf = malloc(n) };
        struct cas_vblob *v = NULL;
        struct cas_digest d;
        struct local l;

        struct cas_blob_writer *w = NULL;
        char path[256];
        uint64_t size;

        local_open(&l);
        CHECK_OK(cas_blob_writer_new(l.s, 0, &w)); /* the writer stores the outboard too */
        for (size_t off = 0; off < n; off += 7000)
                CHECK_OK(cas_blob_write(w, data + off, MIN((size_t) 7000, n - off)));
        CHECK_OK(cas_blob_commit(w, &d, &size));
        blob_file(&l, &d, ".ob", path, sizeof(path));
        CHECK(access(path, F_OK) == 0);
        CHECK_OK(cas_vblob_open(l.s, &d, n, &v));
        CHECK_OK(cas_vblob_copy(v, 0, UINT64_MAX, sink_append, &out));
        CHECK_EQ(out.len, n);
        CHECK(memcmp(out.buf, data, n) == 0);
        out.len = 0;
        CHECK_OK(cas_vblob_copy(v, 1000, 300000, sink_append, &out));
        CHECK_EQ(out.len, 300000);
        CHECK(memcmp(out.buf, data + 1000, 300000) == 0);
        cas_vblob_close(v);
        local_close(&l);
        free(out.buf);
        free(data);
}

/* A flipped byte in the data: the groups around it fail, all others read;
 * the stored outboard (written on the first open) is what makes that
 * possible without re-hashing the blob. */
static void test_damaged_data(void) {
        const size_t n = 64 * CAS_GROUP_SIZE;
        const uint64_t bad = 20 * CAS_GROUP_SIZE + 5;
        uint8_t *data = pattern(n), buf[4096];
        struct cas_vblob *v = NULL;
        struct cas_digest d;
        char path[256];
        struct local l;

        local_open(&l);
        CHECK_OK(cas_blob_put(l.s, data, n, 0, &d));
        blob_file(&l, &d, ".ob", path, sizeof(path));
        CHECK(access(path, F_OK) == 0); /* written with the blob */

        blob_file(&l, &d, "", path, sizeof(path));
        flip_byte(path, bad);
        CHECK_OK(cas_vblob_open(l.s, &d, n, &v));
        CHECK_EQ(cas_vblob_pread(v, buf, 1, bad), -EBADMSG);
        CHECK_EQ(cas_vblob_pread(v, buf, 4096, bad - 4000), -EBADMSG); /* same group, other bytes */
        CHECK_EQ(cas_vblob_pread(v, buf, 4096, bad - 5 - 2048), -EBADMSG); /* straddles into it */
        check_range(v, data, 0, 4096);
        check_range(v, data, bad + CAS_GROUP_SIZE, 4096);
        check_range(v, data, n - 10, 10);
        CHECK_EQ(cas_vblob_check(v), -EBADMSG);
        cas_vblob_close(v);

        /* Truncated behind an open reader's back: EBADMSG, not a short
         * read; and a later open refuses the wrong size. */
        CHECK_OK(cas_vblob_open(l.s, &d, n, &v));
        CHECK(truncate(path, n - 100) == 0);
        CHECK_EQ(cas_vblob_pread(v, buf, 4096, n - 4096), -EBADMSG);
        check_range(v, data, 0, 4096);
        cas_vblob_close(v);
        CHECK_EQ(cas_vblob_open(l.s, &d, n, &v), -EBADMSG);
        local_close(&l);
        free(data);
}

/* A damaged outboard is never believed: rebuilt from good data, or the
 * open fails when the data is damaged too. */
static void test_damaged_outboard(void) {
        const size_t n = 9 * CAS_GROUP_SIZE + 1;
        uint8_t *data = pattern(n);
        struct cas_vblob *v = NULL;
        struct cas_digest d;
        char ob[256], blob[256];
        struct local l;
        int saved = log_get_max_level();

        log_set_max_level(LOG_LEVEL_ERR); /* the rebuild warns */
        local_open(&l);
        CHECK_OK(cas_blob_put(l.s, data, n, 0, &d));
        CHECK_OK(cas_vblob_open(l.s, &d, n, &v));
        cas_vblob_close(v);
        blob_file(&l, &d, ".ob", ob, sizeof(ob));
        blob_file(&l, &d, "", blob, sizeof(blob));

        flip_byte(ob, 3 * CAS_CV_LEN + 1);
        CHECK_OK(cas_vblob_open(l.s, &d, n, &v)); /* rebuilt, and stored again */
        check_range(v, data, 0, n);
        cas_vblob_close(v);
        CHECK_OK(cas_vblob_open(l.s, &d, n, &v));
        cas_vblob_close(v);

        CHECK(truncate(ob, CAS_CV_LEN) == 0); /* wrong length */
        CHECK_OK(cas_vblob_open(l.s, &d, n, &v));
        cas_vblob_close(v);

        flip_byte(ob, 0);
        flip_byte(blob, 7);
        CHECK_EQ(cas_vblob_open(l.s, &d, n, &v), -EBADMSG);
        local_close(&l);
        log_set_max_level(saved);
        free(data);
}

/* The memory backend keeps no outboards: each open builds one. */
static void test_memory_backend(void) {
        const size_t n = 3 * CAS_GROUP_SIZE + 9;
        uint8_t *data = pattern(n);
        struct cas_blob_service *s = NULL;
        struct cas_vblob *v = NULL;
        struct cas_digest d;
        size_t ob_len;

        CHECK_OK(cas_blob_memory_new(&s));
        CHECK_OK(cas_blob_put(s, data, n, 0, &d));
        CHECK_OK(cas_vblob_open(s, &d, n, &v));
        CHECK(cas_vblob_outboard(v, &ob_len) != NULL);
        CHECK_EQ(ob_len, 4 * CAS_CV_LEN);
        check_range(v, data, 5, n);
        cas_vblob_close(v);
        CHECK_EQ(cas_vblob_open(s, &cas_digest_empty, 0, &v), -ENOENT);
        cas_blob_service_free(s);
        free(data);
}

int main(void) {
        RUN(test_known_answers);
        RUN(test_boundaries);
        RUN(test_group_slices);
        RUN(test_builder);
        RUN(test_ranges);
        RUN(test_copy);
        RUN(test_damaged_data);
        RUN(test_damaged_outboard);
        RUN(test_memory_backend);
        return 0;
}
