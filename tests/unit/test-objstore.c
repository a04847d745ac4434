/* Unit tests for the object-store blob service on objectstore+file://:
 * the blob service contract, snix's layout, chunk dedup, damage of every
 * kind turned into errors (never wrong bytes), and range reads that fetch
 * only the chunks they cover. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "castore/blob_objstore.h"
#include "castore/fastcdc.h"
#include "castore/objstore.h"
#include "castore/vblob.h"
#include "test.h"
#include "util/io.h"
#include "util/log.h"
#include "util/macro.h"

static char root[] = "/tmp/test-objstore-XXXXXX";

static uint8_t *random_bytes(size_t n, uint64_t seed) {
        uint8_t *p = malloc(n ? n : 1);

        CHECK(p);
        for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                p[i] = (uint8_t) (seed >> 56);
        }
        return p;
}

static struct cas_blob_service *open_svc(const char *sub, size_t avg) {
        char url[256];
        struct cas_blob_service *s;

        snprintf(url, sizeof(url), "objectstore+file://%s/%s?avg_chunk_size=%zu", root, sub, avg);
        CHECK_OK(cas_blob_objstore_open(url, &s));
        return s;
}

static void path_of(char *ret, const char *sub, const char *kind, const struct cas_digest *d) {
        const char *hex = CAS_DIGEST_HEX(d);

        sprintf(ret, "%s/%s/%s/b3/%.4s/%s", root, sub, kind, hex, hex);
}

static bool exists(const char *path) {
        return access(path, F_OK) == 0;
}

/* Writes data through a writer in uneven pieces; checks the digest. */
static void store(struct cas_blob_service *s, const uint8_t *data, size_t n, struct cas_digest *ret) {
        struct cas_blob_writer *w;
        struct cas_digest want;
        uint64_t size;

        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        for (size_t off = 0, k = 1; off < n; off += k, k = k * 3 + 1)
                CHECK_OK(cas_blob_write(w, data + off, MIN(k, n - off)));
        CHECK_OK(cas_blob_commit(w, ret, &size));
        cas_digest_of(data, n, &want);
        CHECK(cas_digest_equal(ret, &want));
        CHECK_EQ(size, n);
}

/* Reads the whole blob back, raw and verified. */
static void check_reads(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *data, size_t n) {
        struct cas_blob_reader *rd;
        struct cas_vblob *v;
        uint8_t *buf = malloc(n + 1);
        uint64_t size;

        CHECK(buf);
        CHECK_OK(cas_blob_stat(s, d, &size));
        CHECK_EQ(size, n);
        CHECK_OK(cas_blob_open(s, d, &rd));
        CHECK_EQ(cas_blob_pread_full(rd, buf, n + 1, 0), n);
        CHECK(memcmp(buf, data, n) == 0);
        cas_blob_reader_close(rd);
        CHECK_OK(cas_vblob_open(s, d, n, &v));
        memset(buf, 0, n + 1);
        for (uint64_t off = 0; off < n; off += 70000)
                CHECK_EQ(cas_vblob_pread(v, buf + off, MIN((size_t) 70000, n - off), off),
                         MIN((size_t) 70000, n - off));
        CHECK(memcmp(buf, data, n) == 0);
        CHECK_OK(cas_vblob_check(v));
        cas_vblob_close(v);
        free(buf);
}

/* Round trips at sizes around the chunk bounds (avg 16 KiB: min 8 KiB,
 * max 32 KiB), with the layout each should have. */
static void test_round_trip(void) {
        static const size_t sizes[] = { 0, 1, 8191, 8192, 8193, 16384, 16385, 32768, 32769, 100000, 1 << 20 };
        struct cas_blob_service *s = open_svc("rt", 16384);
        char path[512];

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                size_t n = sizes[i];
                uint8_t *data = random_bytes(n, i + 1);
                struct cas_digest d, d2;

                store(s, data, n, &d);
                check_reads(s, &d, data, n);
                path_of(path, "rt", "chunks", &d);
                bool single = exists(path);
                path_of(path, "rt", "blobs", &d);
                CHECK(single != exists(path)); /* a chunk or an index, never both */
                if (n <= 8192)
                        CHECK(single);
                if (n > 32768)
                        CHECK(!single);
                path_of(path, "rt", "outboards", &d);
                CHECK_EQ(exists(path), !single && n > 16384);
                CHECK_OK(cas_blob_put(s, data, n, 0, &d2)); /* already there: cheap, same digest */
                CHECK(cas_digest_equal(&d, &d2));
                free(data);
        }
        cas_blob_service_free(s);
}

static int count_keys(void *userdata, const char *key) {
        (*(size_t *) userdata)++;
        return 0;
}

static size_t n_chunks(struct cas_blob_service *s) {
        size_t n = 0;

        CHECK_OK(cas_objstore_list(cas_blob_objstore_objects(s), "chunks/", count_keys, &n));
        return n;
}

/* Two blobs with a long common prefix share its chunks; the chunk objects
 * are zstd frames. */
static void test_dedup(void) {
        struct cas_blob_service *s = open_svc("dedup", 16384);
        size_t n = 1 << 20;
        uint8_t *a = random_bytes(n, 7), *b = malloc(n);
        struct cas_digest da, db;
        char path[512];

        CHECK(b);
        memcpy(b, a, n);
        memset(b + n - 1000, 0x55, 100);
        store(s, a, n, &da);
        size_t after_a = n_chunks(s);
        store(s, b, n, &db);
        size_t after_b = n_chunks(s);
        CHECK(after_b - after_a <= 2); /* only the changed tail */
        check_reads(s, &db, b, n);

        uint8_t magic[4], want[4] = { 0x28, 0xb5, 0x2f, 0xfd };
        struct cas_digest small;
        CHECK_OK(cas_blob_put(s, a, 100, 0, &small));
        path_of(path, "dedup", "chunks", &small);
        int fd = open(path, O_RDONLY);
        CHECK(fd >= 0);
        CHECK_EQ(read(fd, magic, 4), 4);
        close(fd);
        CHECK(memcmp(magic, want, 4) == 0);
        free(a);
        free(b);
        cas_blob_service_free(s);
}

struct index_chunk {
        char key[256];
        size_t n;
};

static int first_chunk_of(void *userdata, const char *key) {
        struct index_chunk *c = userdata;

        if (c->n++ == 1) /* the second chunk listed: any chunk will do */
                snprintf(c->key, sizeof(c->key), "%s", key);
        return 0;
}

static void write_file(const char *path, const void *data, size_t len) {
        int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0644);

        CHECK(fd >= 0);
        CHECK_OK(loop_write(fd, data, len));
        close(fd);
}

/* Every verified read of the whole blob fails with -EBADMSG or -EIO, no
 * wrong byte is returned, and the counts of good and bad 16 KiB reads. */
static void check_damaged(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *data, size_t n,
                          bool some_good) {
        struct cas_vblob *v;
        uint8_t buf[16384];
        size_t good = 0, bad = 0;
        int r = cas_vblob_open(s, d, n, &v);

        if (r < 0) {
                CHECK(r == -EBADMSG || r == -EIO);
                CHECK(!some_good);
                return;
        }
        for (uint64_t off = 0; off < n; off += sizeof(buf)) {
                ssize_t k = cas_vblob_pread(v, buf, sizeof(buf), off);
                if (k < 0) {
                        CHECK(k == -EBADMSG || k == -EIO);
                        bad++;
                } else {
                        CHECK(memcmp(buf, data + off, (size_t) k) == 0);
                        good++;
                }
        }
        CHECK(bad > 0);
        CHECK(!some_good || good > 0);
        cas_vblob_close(v);
}

static void test_damage(void) {
        struct cas_blob_service *s = open_svc("damage", 16384);
        size_t n = 300000;
        uint8_t *data = random_bytes(n, 99), *other = random_bytes(20000, 5);
        struct cas_digest d;
        struct index_chunk c = {};
        char path[512], chunk_path[512];
        uint8_t *saved;
        size_t saved_len;

        store(s, data, n, &d);
        CHECK_OK(cas_objstore_list(cas_blob_objstore_objects(s), "chunks/", first_chunk_of, &c));
        snprintf(chunk_path, sizeof(chunk_path), "%s/damage/%s", root, c.key);
        int fd = open(chunk_path, O_RDONLY);
        CHECK(fd >= 0);
        CHECK_OK(read_file_fd(fd, 1 << 24, &saved, &saved_len));
        close(fd);

        /* absent chunk */
        CHECK_OK(unlink(chunk_path));
        check_damaged(s, &d, data, n, true);
        /* corrupt compressed chunk */
        saved[saved_len / 2] ^= 1;
        write_file(chunk_path, saved, saved_len);
        check_damaged(s, &d, data, n, true);
        saved[saved_len / 2] ^= 1;
        /* a valid frame of other content */
        uint8_t z[32768];
        size_t zlen = ZSTD_compress(z, sizeof(z), other, 20000, 3);
        CHECK(!ZSTD_isError(zlen));
        write_file(chunk_path, z, zlen);
        check_damaged(s, &d, data, n, true);
        write_file(chunk_path, saved, saved_len);
        check_reads(s, &d, data, n);

        /* a tampered index: the first chunk named twice; sizes kept */
        path_of(path, "damage", "blobs", &d);
        fd = open(path, O_RDONLY);
        uint8_t *idx;
        size_t idx_len;
        CHECK(fd >= 0);
        CHECK_OK(read_file_fd(fd, 1 << 24, &idx, &idx_len));
        close(fd);
        /* each ChunkMeta: 0x12 len 0x0a 0x20 <32> 0x10 varint; swap the first two digests */
        CHECK(idx[0] == 0x12 && idx[2] == 0x0a && idx[3] == 0x20);
        size_t second = 2 + idx[1];
        CHECK(idx[second] == 0x12 && idx[second + 2] == 0x0a);
        uint8_t tmp[32];
        memcpy(tmp, idx + 4, 32);
        memcpy(idx + 4, idx + second + 4, 32);
        memcpy(idx + second + 4, tmp, 32);
        write_file(path, idx, idx_len);
        check_damaged(s, &d, data, n, true);
        /* an index that does not decode */
        write_file(path, "\xff\xff\xff", 3);
        check_damaged(s, &d, data, n, false);
        free(idx);

        free(saved);
        free(other);
        free(data);
        cas_blob_service_free(s);
}

/* Chunks as other writers may frame them read the same: a frame without
 * its content size (a streaming encoder's, as snix's), two frames in a
 * row; a truncated frame is damage. */
static void test_frames(void) {
        struct cas_blob_service *s = open_svc("frames", 16384);
        size_t n = 200000;
        uint8_t *data = random_bytes(n, 21), *z = NULL, *plain;
        struct cas_digest d;
        struct index_chunk c = {};
        char path[512];
        size_t zlen, len;

        store(s, data, n, &d);
        CHECK_OK(cas_objstore_list(cas_blob_objstore_objects(s), "chunks/", first_chunk_of, &c));
        snprintf(path, sizeof(path), "%s/frames/%s", root, c.key);
        int fd = open(path, O_RDONLY);
        CHECK(fd >= 0);
        CHECK_OK(read_file_fd(fd, 1 << 24, &z, &zlen));
        close(fd);
        len = ZSTD_getFrameContentSize(z, zlen);
        CHECK(len > 0 && len <= 32768);
        plain = malloc(len);
        CHECK(plain);
        CHECK_EQ(ZSTD_decompress(plain, len, z, zlen), len);

        size_t cap = ZSTD_compressBound(len) * 2 + 64, k;
        uint8_t *out = malloc(cap);
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        CHECK(out && cctx);
        CHECK(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)));
        k = ZSTD_compress2(cctx, out, cap, plain, len);
        CHECK(!ZSTD_isError(k));
        CHECK_EQ(ZSTD_getFrameContentSize(out, k), ZSTD_CONTENTSIZE_UNKNOWN);
        write_file(path, out, k);
        check_reads(s, &d, data, n);

        size_t k1 = ZSTD_compress(out, cap, plain, len / 2, 1);
        CHECK(!ZSTD_isError(k1));
        size_t k2 = ZSTD_compress(out + k1, cap - k1, plain + len / 2, len - len / 2, 1);
        CHECK(!ZSTD_isError(k2));
        write_file(path, out, k1 + k2);
        check_reads(s, &d, data, n);

        write_file(path, z, zlen - 5);
        check_damaged(s, &d, data, n, true);
        write_file(path, z, zlen);
        check_reads(s, &d, data, n);

        ZSTD_freeCCtx(cctx);
        free(out);
        free(plain);
        free(z);
        free(data);
        cas_blob_service_free(s);
}

struct found {
        const struct cas_digest *want;
        size_t n_want, hits, total;
};

static int find(void *userdata, const struct cas_digest *d) {
        struct found *f = userdata;

        f->total++;
        for (size_t i = 0; i < f->n_want; i++)
                if (cas_digest_equal(d, &f->want[i]))
                        f->hits++;
        return 0;
}

/* Objects as snix writes them: every blob has an index, a single-chunk
 * blob's (and the empty blob's) listing no chunk; the empty blob has no
 * chunk.  castore reads, lists and removes them. */
static void test_snix_written(void) {
        struct cas_blob_service *s = open_svc("snix", 16384);
        struct cas_objstore *o = cas_blob_objstore_objects(s);
        static const char hello[] = "hello from snix";
        struct cas_digest d, e = cas_digest_empty, absent;
        struct cas_blob_reader *rd;
        char key[256], buf[64];
        const char *hex;
        uint64_t size;
        uint8_t z[128];
        size_t zlen;
        ZSTD_CCtx *cctx = ZSTD_createCCtx();

        CHECK(cctx);
        CHECK(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)));
        zlen = ZSTD_compress2(cctx, z, sizeof(z), hello, strlen(hello));
        CHECK(!ZSTD_isError(zlen));
        ZSTD_freeCCtx(cctx);
        cas_digest_of(hello, strlen(hello), &d);
        hex = CAS_DIGEST_HEX(&d);
        snprintf(key, sizeof(key), "chunks/b3/%.4s/%s", hex, hex);
        CHECK_OK(cas_objstore_put(o, key, z, zlen));
        snprintf(key, sizeof(key), "blobs/b3/%.4s/%s", hex, hex);
        CHECK_OK(cas_objstore_put(o, key, "", 0)); /* StatBlobResponse{} */
        hex = CAS_DIGEST_HEX(&e);
        snprintf(key, sizeof(key), "blobs/b3/%.4s/%s", hex, hex);
        CHECK_OK(cas_objstore_put(o, key, "", 0));

        check_reads(s, &d, (const uint8_t *) hello, strlen(hello));
        CHECK_OK(cas_blob_stat(s, &e, &size));
        CHECK_EQ(size, 0);
        CHECK_OK(cas_blob_open(s, &e, &rd));
        CHECK_EQ(cas_blob_pread(rd, buf, sizeof(buf), 0), 0);
        cas_blob_reader_close(rd);

        struct cas_digest want[2] = { d, e };
        struct found f = { .want = want, .n_want = 2 };
        CHECK_OK(cas_blob_list(s, find, &f));
        CHECK_EQ(f.hits, 2);
        CHECK_EQ(f.total, 2); /* each once, though d is both an index and a chunk */

        /* an index naming no chunk for a blob whose chunk is missing */
        cas_digest_of("gone", 4, &absent);
        hex = CAS_DIGEST_HEX(&absent);
        snprintf(key, sizeof(key), "blobs/b3/%.4s/%s", hex, hex);
        CHECK_OK(cas_objstore_put(o, key, "", 0));
        CHECK_EQ(cas_blob_stat(s, &absent, &size), -EIO);

        CHECK_OK(cas_blob_remove(s, &d));
        CHECK_EQ(cas_blob_stat(s, &d, &size), -ENOENT);
        CHECK_OK(cas_blob_remove(s, &e));
        CHECK_EQ(cas_blob_stat(s, &e, &size), -ENOENT);
        cas_blob_service_free(s);
}

/* A 128 KiB verified read of a large blob (default chunk size) fetches its
 * index, its outboard and the chunks the range covers: not the blob. */
static void test_range_reads(void) {
        struct cas_blob_service *s = open_svc("range", CAS_FASTCDC_AVG_DEFAULT);
        struct cas_objstore *o = cas_blob_objstore_objects(s);
        size_t n = 24 << 20;
        uint8_t *data = random_bytes(n, 3), buf[131072];
        struct cas_digest d;
        struct cas_vblob *v;

        store(s, data, n, &d);
        uint64_t gets = o->n_get, bytes = o->get_bytes;
        CHECK_OK(cas_vblob_open(s, &d, n, &v));
        CHECK_EQ(cas_vblob_pread(v, buf, sizeof(buf), 10 << 20), sizeof(buf));
        CHECK(memcmp(buf, data + (10 << 20), sizeof(buf)) == 0);
        uint64_t used_gets = o->n_get - gets, used = o->get_bytes - bytes;
        /* chunk miss + index + outboard + at most 2 chunks of <= 512 KiB */
        CHECK(used_gets <= 5);
        CHECK(used < (1u << 20) + (64u << 10) + (2u << 10));
        fprintf(stderr, "128 KiB read of a %zu MiB blob: %" PRIu64 " GETs, %" PRIu64 " bytes\n", n >> 20,
                used_gets, used);
        /* the next read in the same chunk is served from the kept one */
        gets = o->n_get;
        CHECK_EQ(cas_vblob_pread(v, buf, 4096, (10 << 20) + sizeof(buf)), 4096);
        CHECK(o->n_get - gets <= 1);
        cas_vblob_close(v);
        free(data);
        cas_blob_service_free(s);
}

/* list shows the blobs, not the pieces of larger ones; remove drops a
 * blob, its pieces go in a second round. */
static void test_list_remove(void) {
        struct cas_blob_service *s = open_svc("list", 16384);
        uint8_t *big = random_bytes(200000, 11), *small = random_bytes(100, 12);
        struct cas_digest d[2];
        struct found f = { .want = d, .n_want = 2 };
        uint64_t size;

        store(s, big, 200000, &d[0]);
        store(s, small, 100, &d[1]);
        CHECK_OK(cas_blob_list(s, find, &f));
        CHECK_EQ(f.hits, 2);
        CHECK_EQ(f.total, 2);
        CHECK_OK(cas_blob_remove(s, &d[0]));
        CHECK_EQ(cas_blob_stat(s, &d[0], &size), -ENOENT);
        CHECK_EQ(cas_blob_remove(s, &d[0]), -ENOENT);
        f = (struct found){ .want = d, .n_want = 2 };
        CHECK_OK(cas_blob_list(s, find, &f));
        CHECK_EQ(f.hits, 1);
        CHECK(f.total > 2); /* the orphaned chunks, now listed */
        CHECK_OK(cas_blob_remove(s, &d[1]));
        CHECK_EQ(cas_blob_stat(s, &d[1], &size), -ENOENT);
        free(big);
        free(small);
        cas_blob_service_free(s);
}

/* A chunk that cannot be stored fails the commit, and every write once
 * the failed upload is seen (uploads run behind the writes): nothing is
 * committed with a chunk missing. */
static void test_write_errors(void) {
        struct cas_blob_service *s = open_svc("werr", 16384);
        uint8_t *data = random_bytes(200000, 31);
        struct cas_blob_writer *w;
        struct cas_digest d;
        char path[512];
        int r;

        snprintf(path, sizeof(path), "%s/werr/chunks", root);
        write_file(path, "not a folder", 12);
        log_set_max_level(LOG_LEVEL_ERR - 1);
        CHECK_OK(cas_blob_writer_new(s, 0, &w));
        r = cas_blob_write(w, data, 100000);
        CHECK(cas_blob_write(w, data + 100000, 100000) < 0 || r >= 0);
        CHECK(cas_blob_commit(w, &d, NULL) < 0);
        CHECK(cas_blob_put(s, data, 1000, 0, &d) < 0);
        log_set_max_level(LOG_LEVEL_INFO);
        free(data);
        cas_blob_service_free(s);
}

struct thread_arg {
        struct cas_blob_service *s;
        struct cas_blob_reader *rd; /* shared by the readers */
        const uint8_t *data;
        size_t n;
        unsigned seed;
        struct cas_digest got;
};

/* Random range reads through one shared reader (its kept chunk is shared
 * state). */
static void *reader_thread(void *p) {
        struct thread_arg *a = p;
        uint8_t *buf = malloc(70000);

        CHECK(buf);
        for (int i = 0; i < 200; i++) {
                uint64_t off = rand_r(&a->seed) % a->n;
                size_t len = rand_r(&a->seed) % 70000;
                ssize_t k = cas_blob_pread(a->rd, buf, len, off);

                CHECK(k >= 0);
                CHECK(memcmp(buf, a->data + off, (size_t) k) == 0);
        }
        free(buf);
        return NULL;
}

static void *writer_thread(void *p) {
        struct thread_arg *a = p;

        store(a->s, a->data, a->n, &a->got);
        return NULL;
}

/* Readers share a reader; writers store the same blob at once (their
 * temporaries must not collide, the result is one blob). */
static void test_threads(void) {
        struct cas_blob_service *s = open_svc("threads", 16384);
        size_t n = 600000;
        uint8_t *data = random_bytes(n, 77);
        struct thread_arg a[4];
        pthread_t t[4];
        struct cas_digest d;

        for (int i = 0; i < 4; i++) {
                a[i] = (struct thread_arg){ .s = s, .data = data, .n = n, .seed = (unsigned) i };
                CHECK_EQ(pthread_create(&t[i], NULL, writer_thread, &a[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                CHECK_EQ(pthread_join(t[i], NULL), 0);
                CHECK(cas_digest_equal(&a[i].got, &a[0].got));
        }
        d = a[0].got;
        check_reads(s, &d, data, n);
        struct cas_blob_reader *rd;
        CHECK_OK(cas_blob_open(s, &d, &rd));
        for (int i = 0; i < 4; i++) {
                a[i].rd = rd;
                CHECK_EQ(pthread_create(&t[i], NULL, reader_thread, &a[i]), 0);
        }
        for (int i = 0; i < 4; i++)
                CHECK_EQ(pthread_join(t[i], NULL), 0);
        cas_blob_reader_close(rd);
        free(data);
        cas_blob_service_free(s);
}

/* memory:/// keeps the same contract in memory (tests, fuzzing). */
static void test_memory(void) {
        static const size_t sizes[] = { 0, 1, 600, 5000, 100000 };
        struct cas_blob_service *s;
        struct cas_digest d[ELEMENTSOF(sizes)];
        uint64_t size;

        CHECK_OK(cas_blob_objstore_open("objectstore+memory:///?avg_chunk_size=1024", &s));
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                uint8_t *data = random_bytes(sizes[i], 40 + i);

                store(s, data, sizes[i], &d[i]);
                check_reads(s, &d[i], data, sizes[i]);
                free(data);
        }
        struct found f = { .want = d, .n_want = ELEMENTSOF(sizes) };
        CHECK_OK(cas_blob_list(s, find, &f));
        CHECK_EQ(f.hits, ELEMENTSOF(sizes));
        CHECK_EQ(f.total, ELEMENTSOF(sizes));
        CHECK_OK(cas_blob_remove(s, &d[4]));
        CHECK_EQ(cas_blob_stat(s, &d[4], &size), -ENOENT);
        cas_blob_service_free(s);
}

static void test_urls(void) {
        struct cas_blob_service *s;
        char url[256];

        log_set_max_level(LOG_LEVEL_ERR - 1);
        CHECK_EQ(cas_blob_objstore_open("objectstore+file://relative", &s), -EINVAL);
        snprintf(url, sizeof(url), "objectstore+file://%s/u?avg_chunk_size=100", root);
        CHECK_EQ(cas_blob_objstore_open(url, &s), -EINVAL);
        snprintf(url, sizeof(url), "objectstore+file://%s/u?avg_chunk_size=12x", root);
        CHECK_EQ(cas_blob_objstore_open(url, &s), -EINVAL);
        snprintf(url, sizeof(url), "objectstore+file://%s/u?aws_region=x", root);
        CHECK_EQ(cas_blob_objstore_open(url, &s), -EINVAL);
        CHECK_EQ(cas_blob_objstore_open("objectstore+gopher://x", &s), -EINVAL);
        CHECK(!cas_objstore_key_valid("../x"));
        CHECK(!cas_objstore_key_valid("a//b"));
        CHECK(!cas_objstore_key_valid("a/.tmp"));
        CHECK(!cas_objstore_key_valid("a/"));
        CHECK(cas_objstore_key_valid("chunks/b3/ab12/ab12cd"));
        char *dir = cas_blob_objstore_file_dir("objectstore+file:///srv/b?avg_chunk_size=1024");
        CHECK_STREQ(dir, "/srv/b");
        free(dir);
        CHECK(!cas_blob_objstore_file_dir("objectstore+memory:///"));
        snprintf(url, sizeof(url), "objectstore+file://%s/u?avg_chunk_size=%%36%%35%%35%%33%%36", root);
        CHECK_OK(cas_blob_objstore_open(url, &s)); /* 65536, escaped */
        cas_blob_service_free(s);
        log_set_max_level(LOG_LEVEL_INFO);
}

int main(void) {
        CHECK(mkdtemp(root));
        test_round_trip();
        test_dedup();
        test_damage();
        test_frames();
        test_snix_written();
        test_range_reads();
        test_list_remove();
        test_write_errors();
        test_memory();
        test_threads();
        test_urls();
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
        CHECK_EQ(system(cmd), 0);
        return 0;
}
