/* Unit tests for the NAR encoder, rendering, local-tree hashing and
 * ingestion: SPEC §3 known answers, round trips (including reads split at
 * every size), blob integrity on render, and one hostile NAR per ingestion
 * rule. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/blobsvc.h"
#include "castore/dirsvc.h"
#include "castore/localfs.h"
#include "store/nar.h"
#include "test.h"

/* Every render runs with the read-ahead, then again with these flags
 * (NAR_RENDER_SERIAL): both paths must give the same bytes and errors. */
static unsigned extra_flags;
#define nar_render(b, d, n, f, ...) nar_render((b), (d), (n), (f) | extra_flags, __VA_ARGS__)

#define N(s) .name = (s), .name_len = sizeof(s) - 1
#define T(s) .target = (s), .target_len = sizeof(s) - 1

/* ---- growable byte buffer: a render sink and a NAR builder ---- */

struct buf {
        uint8_t *p;
        size_t len, cap;
        size_t pos;       /* read position for buf_read */
        size_t chunk;     /* max bytes per read (0: unlimited) */
        int fail_after;   /* sink: fail on this call (0: never) */
        int calls;
};

static int buf_write(void *userdata, const void *data, size_t len) {
        struct buf *b = userdata;

        if (b->fail_after && ++b->calls >= b->fail_after)
                return -ENOSPC;
        if (b->len + len > b->cap) {
                b->cap = (b->len + len) * 2;
                b->p = realloc(b->p, b->cap);
                CHECK(b->p);
        }
        memcpy(b->p + b->len, data, len);
        b->len += len;
        return 0;
}

static ssize_t buf_read(void *userdata, void *dst, size_t len) {
        struct buf *b = userdata;
        size_t n = MIN(len, b->len - b->pos);

        if (b->chunk)
                n = MIN(n, b->chunk);
        memcpy(dst, b->p + b->pos, n);
        b->pos += n;
        return (ssize_t) n;
}

static void put_u64(struct buf *b, uint64_t v) {
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
                le[i] = (uint8_t) (v >> (8 * i));
        buf_write(b, le, 8);
}

static void put_bytes(struct buf *b, const void *s, size_t len) {
        static const uint8_t zero[8];
        put_u64(b, len);
        buf_write(b, s, len);
        buf_write(b, zero, (8 - len % 8) % 8);
}

static void put_str(struct buf *b, const char *s) {
        put_bytes(b, s, strlen(s));
}

/* Several tokens at once: put_strs(b, "(", "type", "regular", NULL). */
static void put_strs(struct buf *b, ...) {
        va_list ap;
        const char *s;

        va_start(ap, b);
        while ((s = va_arg(ap, const char *)))
                put_str(b, s);
        va_end(ap);
}

/* ---- a store ---- */

static struct cas_blob_service *blobs;
static struct cas_dir_service *dirs;

static void store_reset(void) {
        if (blobs)
                cas_blob_service_free(blobs);
        if (dirs)
                cas_dir_service_free(dirs);
        CHECK_OK(cas_blob_memory_new(&blobs));
        CHECK_OK(cas_dir_memory_new(&dirs));
}

static int count_cb(void *userdata, const struct cas_digest *d, const void *data, size_t len) {
        (*(size_t *) userdata)++;
        return 0;
}

static size_t n_dirs(void) {
        size_t n = 0;
        CHECK_OK(cas_dir_list(dirs, count_cb, &n));
        return n;
}

static const char *sha_hex(const uint8_t sha[32]) {
        static char buf[65];
        return test_hex(sha, 32, buf);
}

static void render(const struct cas_node *root, struct buf *out, uint64_t *size, uint8_t sha[32]) {
        uint64_t size2;
        uint8_t sha2[32];

        memset(out, 0, sizeof(*out));
        CHECK_OK(nar_render(blobs, dirs, root, 0, buf_write, out, size, sha));
        CHECK_EQ(*size, out->len);
        /* hash only, no sink: same figures */
        CHECK_OK(nar_render(blobs, dirs, root, 0, NULL, NULL, &size2, sha2));
        CHECK_EQ(size2, *size);
        CHECK(memcmp(sha, sha2, 32) == 0);
}

/* Ingests nar (read in chunks of at most `chunk` bytes), checks the result
 * re-renders to the same bytes. */
static void round_trip(const struct buf *nar, size_t chunk, struct cas_node *ret_root) {
        struct buf in = { .p = nar->p, .len = nar->len, .chunk = chunk }, out = {};
        struct nar_ingest_result res;
        uint64_t size;
        uint8_t sha[32], sha_in[32];

        CHECK_OK(nar_ingest(blobs, dirs, buf_read, &in, chunk % 2 ? NAR_INGEST_SERIAL : 0, &res));
        CHECK_EQ(res.nar_size, nar->len);
        CHECK_OK(nar_render(blobs, dirs, &res.root, 0, buf_write, &out, &size, sha));
        CHECK_EQ(out.len, nar->len);
        CHECK(memcmp(out.p, nar->p, nar->len) == 0);
        CHECK(memcmp(sha, res.nar_sha256, 32) == 0);
        CHECK_OK(nix_sha256_of(nar->p, nar->len, sha_in));
        CHECK(memcmp(sha, sha_in, 32) == 0);
        if (ret_root)
                *ret_root = res.root;
        free(res.mem);
        free(out.p);
}

/* ---- known answers ---- */

static void test_symlink(void) {
        struct cas_node n = { .kind = CAS_NODE_SYMLINK, T("/nix/store/somewhereelse") };
        struct buf out;
        uint64_t size;
        uint8_t sha[32];

        store_reset();
        render(&n, &out, &size, sha);
        CHECK_EQ(size, 136);
        CHECK_STREQ(sha_hex(sha), "097d397e9b5826384eaa16c457715d1c1a51670313ead0f58566e0b232539cf1");
        round_trip(&out, 0, NULL);
        free(out.p);
}

static void test_hello(void) {
        struct cas_node n = { .kind = CAS_NODE_FILE, .size = 12 };
        struct buf out, want = {};
        uint64_t size;
        uint8_t sha[32];

        store_reset();
        CHECK_OK(cas_blob_put(blobs, "Hello World!", 12, 0, &n.digest));
        render(&n, &out, &size, sha);
        CHECK_EQ(size, 128);
        CHECK_STREQ(sha_hex(sha), "03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040");
        /* the exact bytes */
        put_strs(&want, "nix-archive-1", "(", "type", "regular", "contents", "Hello World!", ")", NULL);
        CHECK_EQ(want.len, 128);
        CHECK(memcmp(want.p, out.p, 128) == 0);
        round_trip(&out, 0, NULL);
        free(out.p);
        free(want.p);

        /* executable: the marker and its empty value */
        n.executable = true;
        render(&n, &out, &size, sha);
        memset(&want, 0, sizeof(want));
        put_strs(&want, "nix-archive-1", "(", "type", "regular", "executable", "", "contents", "Hello World!", ")",
                 NULL);
        CHECK_EQ(out.len, want.len);
        CHECK(memcmp(want.p, out.p, want.len) == 0);
        struct cas_node back;
        round_trip(&out, 0, &back);
        CHECK(back.executable);
        CHECK_EQ(back.kind, CAS_NODE_FILE);
        free(out.p);
        free(want.p);
}

/* DIRECTORY_COMPLICATED: dir keep -> WITH_KEEP, file .keep, symlink aa. */
static struct cas_node complicated(uint64_t keep_size) {
        struct cas_node keep = { .kind = CAS_NODE_FILE, N(".keep"), .digest = cas_digest_empty };
        struct cas_directory *k, *c;
        struct cas_digest empty;

        CHECK_OK(cas_blob_put(blobs, "", 0, 0, &empty));
        CHECK(cas_digest_equal(&empty, &cas_digest_empty));
        CHECK_OK(cas_directory_new(&keep, 1, &k, NULL));
        struct cas_node n[3] = {
                { .kind = CAS_NODE_SYMLINK, N("aa"), T("/nix/store/somewhereelse") },
                { .kind = CAS_NODE_FILE, N(".keep"), .digest = cas_digest_empty },
                { .kind = CAS_NODE_DIRECTORY, N("keep"), .digest = k->digest, .size = keep_size },
        };
        CHECK_OK(cas_directory_new(n, 3, &c, NULL));
        struct cas_directory *both[2] = { k, c };
        CHECK_OK(cas_dir_put(dirs, both, 2, 0, NULL));
        struct cas_node root = { .kind = CAS_NODE_DIRECTORY, .digest = c->digest, .size = c->size };
        cas_directory_free(k);
        cas_directory_free(c);
        return root;
}

static void test_complicated(void) {
        struct cas_node root, back;
        struct buf out;
        uint64_t size;
        uint8_t sha[32];

        store_reset();
        root = complicated(1);
        CHECK_STREQ(CAS_DIGEST_HEX(&root.digest), "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a");
        render(&root, &out, &size, sha);
        CHECK_EQ(size, 840);
        CHECK_STREQ(sha_hex(sha), "ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a");

        /* ingest into a fresh store: the same Directory digests come back */
        store_reset();
        CHECK_EQ(n_dirs(), 0);
        round_trip(&out, 0, &back);
        CHECK_EQ(back.kind, CAS_NODE_DIRECTORY);
        CHECK(cas_digest_equal(&back.digest, &root.digest));
        CHECK_EQ(back.size, 4);
        CHECK_EQ(n_dirs(), 2);
        /* reads split at every small size */
        for (size_t chunk = 1; chunk <= 17; chunk++)
                round_trip(&out, chunk, NULL);
        free(out.p);

        /* snix-style inflated child size (keep: 2) renders the same NAR */
        store_reset();
        root = complicated(2);
        CHECK_STREQ(CAS_DIGEST_HEX(&root.digest), "424a7f6ce08d805d15b428062faae96299a1675d708c3a39261afe38cdd04feb");
        render(&root, &out, &size, sha);
        CHECK_EQ(size, 840);
        CHECK_STREQ(sha_hex(sha), "ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a");
        free(out.p);
}

/* Files larger than every internal buffer, of sizes around the padding. */
static void test_large_files(void) {
        static const size_t sizes[] = { 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 1044480, 3 * 512 * 1024 + 5 };
        struct cas_node n[ELEMENTSOF(sizes)];
        char names[ELEMENTSOF(sizes)][8];
        struct cas_directory *d;
        uint8_t *data = malloc(sizes[ELEMENTSOF(sizes) - 1]);

        store_reset();
        CHECK(data);
        for (size_t i = 0; i < sizes[ELEMENTSOF(sizes) - 1]; i++)
                data[i] = (uint8_t) (i % 255);
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                snprintf(names[i], sizeof(names[i]), "f%zu", i);
                n[i] = (struct cas_node){ .kind = CAS_NODE_FILE, .name = names[i], .name_len = strlen(names[i]),
                                          .size = sizes[i], .executable = i % 2 };
                CHECK_OK(cas_blob_put(blobs, data, sizes[i], 0, &n[i].digest));
        }
        /* BLOB_B of SPEC §2 */
        CHECK_STREQ(CAS_DIGEST_HEX(&n[3].digest), "a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2");
        CHECK_OK(cas_directory_new(n, ELEMENTSOF(sizes), &d, NULL));
        CHECK_OK(cas_dir_put(dirs, &d, 1, 0, NULL));
        struct cas_node root = { .kind = CAS_NODE_DIRECTORY, .digest = d->digest, .size = d->size };
        struct buf out;
        uint64_t size;
        uint8_t sha[32];
        render(&root, &out, &size, sha);
        store_reset();
        round_trip(&out, 0, NULL);
        round_trip(&out, 4093, NULL);
        free(out.p);
        free(data);
        cas_directory_free(d);
}

/* ---- integrity on render ---- */

/* A blob service serving one blob's bytes: pass1 for the first read from
 * offset 0, pass2 for later ones (a file changing between reads), either
 * through pread or as in-memory data. */
struct fake_blobs {
        struct cas_blob_service base;
        bool in_memory;
        uint64_t size; /* what the reader claims */
        const uint8_t *pass1, *pass2;
        size_t len;    /* bytes actually available */
        int passes;    /* atomic: the read-ahead reads segments on several threads */
};

static ssize_t fake_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        struct fake_blobs *f = *(struct fake_blobs **) (r + 1);

        int passes = off == 0 ? __atomic_add_fetch(&f->passes, 1, __ATOMIC_SEQ_CST)
                              : __atomic_load_n(&f->passes, __ATOMIC_SEQ_CST);

        if (off >= f->len)
                return 0;
        len = MIN(len, f->len - off);
        memcpy(buf, (passes <= 1 ? f->pass1 : f->pass2) + off, len);
        return (ssize_t) len;
}
static void fake_close(struct cas_blob_reader *r) {
        free(r);
}
static const struct cas_blob_reader_ops fake_reader_ops = { .pread = fake_pread, .close = fake_close };
static int fake_open(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct fake_blobs *f = (struct fake_blobs *) s;
        struct cas_blob_reader *r = calloc(1, sizeof(*r) + sizeof(f));

        CHECK(r);
        *r = (struct cas_blob_reader){ .ops = &fake_reader_ops, .digest = *d, .size = f->size, .fd = -1,
                                       .data = f->in_memory ? f->pass1 : NULL };
        memcpy(r + 1, &f, sizeof(f));
        f->passes = 0;
        *ret = r;
        return 0;
}
static const struct cas_blob_ops fake_ops = { .name = "fake", .open = fake_open };

static void test_corrupt_blob(void) {
        struct cas_node n = { .kind = CAS_NODE_FILE, .size = 12 };
        struct fake_blobs bad = { .base.ops = &fake_ops, .size = 12, .len = 12, .pass1 = (const uint8_t *) "Hello World?",
                                  .pass2 = (const uint8_t *) "Hello World?" };
        uint64_t size;
        uint8_t sha[32];

        store_reset();
        cas_digest_of("Hello World!", 12, &n.digest);
        for (int mem = 0; mem < 2; mem++) {
                struct buf out = {};

                bad.in_memory = mem;
                CHECK_EQ(nar_render(&bad.base, dirs, &n, 0, buf_write, &out, &size, sha), -EBADMSG);
                /* not one byte of the blob escaped */
                CHECK(!out.p || !memmem(out.p, out.len, "Hello", 5));
                free(out.p);
                CHECK_EQ(nar_render(&bad.base, dirs, &n, 0, NULL, NULL, &size, sha), -EBADMSG);
        }
        /* a small blob changing between reads: read once, so it renders or fails as a whole */
        bad.in_memory = false;
        bad.pass1 = (const uint8_t *) "Hello World!";
        struct buf out1 = {};
        CHECK_OK(nar_render(&bad.base, dirs, &n, 0, buf_write, &out1, &size, sha));
        CHECK_EQ(size, 128);
        CHECK_EQ(bad.passes, 1);
        free(out1.p);

        /* blob size differs from the FileNode's */
        bad.size = 11;
        CHECK_EQ(nar_render(&bad.base, dirs, &n, 0, NULL, NULL, &size, sha), -EBADMSG);
        /* blob shorter than it claims */
        bad.size = 12;
        bad.len = 11;
        CHECK_EQ(nar_render(&bad.base, dirs, &n, 0, NULL, NULL, &size, sha), -EBADMSG);
        out1 = (struct buf){};
        CHECK_EQ(nar_render(&bad.base, dirs, &n, 0, buf_write, &out1, &size, sha), -EBADMSG);
        free(out1.p);
        CHECK_OK(cas_blob_put(blobs, "Hello World!", 12, 0, &n.digest));
        n.size = 13;
        CHECK_EQ(nar_render(blobs, dirs, &n, 0, NULL, NULL, &size, sha), -EBADMSG);
        n.size = 11;
        CHECK_EQ(nar_render(blobs, dirs, &n, 0, NULL, NULL, &size, sha), -EBADMSG);
        /* missing blob, missing directory */
        n.size = 1;
        cas_digest_of("x", 1, &n.digest);
        CHECK_EQ(nar_render(blobs, dirs, &n, 0, NULL, NULL, &size, sha), -ENOENT);
        struct cas_node d = { .kind = CAS_NODE_DIRECTORY, .digest = n.digest, .size = 1 };
        CHECK_EQ(nar_render(blobs, dirs, &d, 0, NULL, NULL, &size, sha), -ENOENT);
        /* directory node claiming fewer entries than it has */
        store_reset();
        struct cas_node root = complicated(1);
        root.size = 3;
        CHECK_EQ(nar_render(blobs, dirs, &root, 0, NULL, NULL, &size, sha), -EBADMSG);
}

/* Blobs above the read-ahead's size, from a backend that keeps no
 * outboards: the open builds one (a first pass that checks the whole
 * blob), the render's reads verify each group against it (a second). */
static void test_corrupt_large_blob(void) {
        size_t len = 9 * 1024 * 1024 + 3; /* above WHOLE_BLOB_MAX (8 MiB) */
        uint8_t *good = malloc(len), *evil = malloc(len);
        struct cas_node n = { .kind = CAS_NODE_FILE, .size = len };
        struct fake_blobs f = { .base.ops = &fake_ops, .size = len, .len = len };
        struct buf out = {}, want = {};
        uint64_t size, want_size;
        uint8_t sha[32], want_sha[32];

        CHECK(good && evil);
        for (size_t i = 0; i < len; i++)
                good[i] = evil[i] = (uint8_t) (i * 7);
        evil[len / 2] ^= 1;
        cas_digest_of(good, len, &n.digest);

        /* intact: same bytes as from the memory store; two passes */
        store_reset();
        CHECK_OK(cas_blob_put(blobs, good, len, 0, &n.digest));
        CHECK_OK(nar_render(blobs, dirs, &n, 0, buf_write, &want, &want_size, want_sha));
        f.pass1 = f.pass2 = good;
        CHECK_OK(nar_render(&f.base, dirs, &n, 0, buf_write, &out, &size, sha));
        CHECK_EQ(f.passes, 2);
        CHECK_EQ(out.len, want.len);
        CHECK(memcmp(out.p, want.p, want.len) == 0);
        CHECK(memcmp(sha, want_sha, 32) == 0);
        free(out.p);
        /* hash only: the same two passes (nothing is trusted unchecked) */
        CHECK_OK(nar_render(&f.base, dirs, &n, 0, NULL, NULL, &size, sha));
        CHECK_EQ(f.passes, 2);
        CHECK(memcmp(sha, want_sha, 32) == 0);

        /* corrupt: refused before any of its bytes is written */
        f.pass1 = f.pass2 = evil;
        memset(&out, 0, sizeof(out));
        CHECK_EQ(nar_render(&f.base, dirs, &n, 0, buf_write, &out, &size, sha), -EBADMSG);
        CHECK(out.len < 200);
        free(out.p);
        CHECK_EQ(nar_render(&f.base, dirs, &n, 0, NULL, NULL, &size, sha), -EBADMSG);

        /* changed between the check and the output: the render fails */
        f.pass1 = good;
        f.pass2 = evil;
        memset(&out, 0, sizeof(out));
        CHECK_EQ(nar_render(&f.base, dirs, &n, 0, buf_write, &out, &size, sha), -EBADMSG);
        free(out.p);
        free(want.p);
        free(good);
        free(evil);
}

/* Appends a regular file entry named name with len pseudo-random bytes. */
static void put_file_entry(struct buf *b, const char *name, size_t len, unsigned seed) {
        uint8_t *data = malloc(len ? len : 1);

        CHECK(data);
        for (size_t i = 0; i < len; i++)
                data[i] = (uint8_t) ((i * 2654435761u + seed) >> 13);
        put_strs(b, "entry", "(", "name", NULL);
        put_str(b, name);
        put_strs(b, "node", "(", "type", "regular", "contents", NULL);
        put_bytes(b, data, len);
        put_strs(b, ")", ")", NULL);
        free(data);
}

/* Many files (more than the read-ahead ring holds), files at and above its
 * per-file limit, more bytes than its budget: the render comes out in NAR
 * order, byte for byte; a failing sink or a missing blob stops it cleanly
 * with files still in flight. */
static void test_many_files(void) {
        struct buf nar = {}, out = {};
        struct nar_ingest_result res;
        struct cas_blob_service *empty;
        uint64_t size;
        uint8_t sha[32];
        char name[32];

        store_reset();
        put_strs(&nar, "nix-archive-1", "(", "type", "directory", NULL);
        for (unsigned i = 0; i < 700; i++) {
                snprintf(name, sizeof(name), "f%04u", i);
                put_file_entry(&nar, name, (i * 7919u) % 20000, i);
        }
        for (unsigned i = 0; i < 9; i++) { /* 72 MiB at the in-memory limit */
                snprintf(name, sizeof(name), "m%u", i);
                put_file_entry(&nar, name, 8 * 1024 * 1024, 1);
        }
        put_file_entry(&nar, "z", 9 * 1024 * 1024, 2);
        put_strs(&nar, ")", NULL);
        round_trip(&nar, 0, NULL);

        struct buf in = { .p = nar.p, .len = nar.len };
        CHECK_OK(nar_ingest(blobs, dirs, buf_read, &in, 0, &res));
        for (int fail = 1; fail <= 16; fail *= 4) { /* the render makes some 40 calls */
                out = (struct buf){ .fail_after = fail };
                CHECK_EQ(nar_render(blobs, dirs, &res.root, 0, buf_write, &out, &size, sha), -ENOSPC);
                free(out.p);
        }
        CHECK_OK(cas_blob_memory_new(&empty));
        out = (struct buf){};
        CHECK_EQ(nar_render(empty, dirs, &res.root, 0, buf_write, &out, &size, sha), -ENOENT);
        CHECK(out.len < 200);
        free(out.p);
        cas_blob_service_free(empty);
        free(res.mem);
        free(nar.p);
}

static void test_sink_error(void) {
        struct cas_node root;
        struct buf out = { .fail_after = 1 };
        uint64_t size = 77;

        store_reset();
        root = complicated(1);
        CHECK_EQ(nar_render(blobs, dirs, &root, 0, buf_write, &out, &size, NULL), -ENOSPC);
        CHECK_EQ(size, 77);
        /* NO_SHA256: bytes and size, no hash */
        uint8_t sha[32] = { 1 };
        struct buf ok = {};
        CHECK_OK(nar_render(blobs, dirs, &root, NAR_RENDER_NO_SHA256, buf_write, &ok, &size, sha));
        CHECK_EQ(size, 840);
        CHECK_EQ(sha[0], 1);
        free(ok.p);
}

/* The encoder alone: the grammar byte for byte, contents held to the
 * declared size. */
static void test_writer(void) {
        struct nar_writer w;
        struct buf out = {}, want = {};
        uint8_t sha[32], want_sha[32], *p;
        uint64_t size;
        size_t room;

        CHECK_OK(nar_writer_init(&w, buf_write, &out, true));
        CHECK_OK(nar_write_magic(&w));
        CHECK_OK(nar_write_directory_begin(&w));
        CHECK_OK(nar_write_entry_begin(&w, "a", 1));
        CHECK_OK(nar_write_file_begin(&w, true, 5));
        CHECK_OK(nar_write_contents(&w, "ab", 2));
        CHECK_OK(nar_write_reserve(&w, &p, &room));
        CHECK_EQ(room, 3);
        memcpy(p, "cde", 3);
        nar_write_commit(&w, 3);
        CHECK_OK(nar_write_file_end(&w));
        CHECK_OK(nar_write_entry_end(&w));
        CHECK_OK(nar_write_entry_begin(&w, "b", 1));
        CHECK_OK(nar_write_symlink(&w, "a", 1));
        CHECK_OK(nar_write_entry_end(&w));
        CHECK_OK(nar_write_directory_end(&w));
        CHECK_OK(nar_writer_finish(&w, &size, sha));
        put_strs(&want, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "node", "(", "type",
                 "regular", "executable", "", "contents", "abcde", ")", ")", "entry", "(", "name", "b", "node", "(",
                 "type", "symlink", "target", "a", ")", ")", ")", NULL);
        CHECK_EQ(size, want.len);
        CHECK_EQ(out.len, want.len);
        CHECK(memcmp(out.p, want.p, want.len) == 0);
        CHECK_OK(nix_sha256_of(want.p, want.len, want_sha));
        CHECK(memcmp(sha, want_sha, 32) == 0);
        free(out.p);
        free(want.p);

        /* contents beyond or short of the declared size */
        CHECK_OK(nar_writer_init(&w, NULL, NULL, false));
        CHECK_OK(nar_write_file_begin(&w, false, 2));
        CHECK_EQ(nar_write_contents(&w, "abc", 3), -EIO);
        CHECK_OK(nar_write_contents(&w, "a", 1));
        CHECK_EQ(nar_write_file_end(&w), -EIO);
        CHECK_EQ(nar_write_file_begin(&w, false, 0), -EIO);
        nar_writer_free(&w);
}

/* ---- hostile NARs ---- */

static void expect_reject(struct buf *nar, const char *why) {
        struct buf in = { .p = nar->p, .len = nar->len };
        struct nar_ingest_result res;
        int r;

        store_reset();
        r = nar_ingest(blobs, dirs, buf_read, &in, 0, &res);
        if (r != -EBADMSG || !res.error || !strstr(res.error, why)) {
                fprintf(stderr, "expected rejection \"%s\", got %d \"%s\"\n", why, r, res.error ? res.error : "");
                abort();
        }
        CHECK_EQ(n_dirs(), 0);
        free(nar->p);
        memset(nar, 0, sizeof(*nar));
}

static void test_hostile(void) {
        struct buf b = {}, good;
        uint64_t size;
        uint8_t sha[32];

        /* every truncation of a valid NAR */
        store_reset();
        struct cas_node root = complicated(1);
        render(&root, &good, &size, sha);
        for (size_t len = 0; len < good.len; len++) {
                struct buf in = { .p = good.p, .len = len };
                struct nar_ingest_result res;

                store_reset();
                CHECK_EQ(nar_ingest(blobs, dirs, buf_read, &in, NAR_INGEST_SERIAL, &res), -EBADMSG);
                CHECK(res.error);
                CHECK_EQ(n_dirs(), 0);
        }
        /* trailing data */
        b = good;
        b.p = malloc(good.len + 1);
        memcpy(b.p, good.p, good.len);
        b.cap = good.len + 1;
        buf_write(&b, "x", 1);
        expect_reject(&b, "trailing data");
        /* non-zero padding: last padding byte of "nix-archive-1" */
        b.p = malloc(good.len);
        memcpy(b.p, good.p, good.len);
        b.len = b.cap = good.len;
        b.p[23] = 1;
        expect_reject(&b, "padding");
        free(good.p);

        put_strs(&b, "nix-archive-2", "(", "type", "regular", "contents", "", ")", NULL);
        expect_reject(&b, "bad magic");
        put_u64(&b, 1ULL << 62);
        expect_reject(&b, "bad magic");
        put_strs(&b, "nix-archive-1", "(", "type", "fifo", ")", NULL);
        expect_reject(&b, "unknown node type");
        put_strs(&b, "nix-archive-1", "(", "kind", NULL);
        expect_reject(&b, "expected \"type\"");
        /* unsorted, duplicate, bad names */
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", "b", "node", "(", "type",
                 "symlink", "target", "x", ")", ")", "entry", "(", "name", "a", "node", "(", "type", "symlink",
                 "target", "x", ")", ")", ")", NULL);
        expect_reject(&b, "ascending");
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "node", "(", "type",
                 "symlink", "target", "x", ")", ")", "entry", "(", "name", "a", "node", "(", "type", "regular",
                 "contents", "", ")", ")", ")", NULL);
        expect_reject(&b, "duplicate");
        const char *bad_names[] = { "..", ".", "", "a/b" };
        for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
                put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", bad_names[i], "node",
                         "(", "type", "symlink", "target", "x", ")", ")", ")", NULL);
                expect_reject(&b, "invalid entry name");
        }
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", NULL);
        put_bytes(&b, "a\0b", 3);
        put_strs(&b, "node", "(", "type", "symlink", "target", "x", ")", ")", ")", NULL);
        expect_reject(&b, "invalid entry name");
        /* oversized lengths: name, target, token, contents beyond the input */
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", NULL);
        put_u64(&b, 256);
        expect_reject(&b, "longer than 255");
        put_strs(&b, "nix-archive-1", "(", "type", "symlink", "target", NULL);
        put_u64(&b, 4096);
        expect_reject(&b, "longer than 4095");
        put_strs(&b, "nix-archive-1", "(", NULL);
        put_u64(&b, UINT64_MAX);
        expect_reject(&b, "expected \"type\"");
        put_strs(&b, "nix-archive-1", "(", "type", "regular", "contents", NULL);
        put_u64(&b, UINT64_MAX);
        put_u64(&b, 0);
        expect_reject(&b, "truncated");
        put_strs(&b, "nix-archive-1", "(", "type", "regular", "contents", NULL);
        put_u64(&b, 1 << 20);
        put_u64(&b, 0);
        expect_reject(&b, "truncated");
        /* symlink targets */
        put_strs(&b, "nix-archive-1", "(", "type", "symlink", "target", "", ")", NULL);
        expect_reject(&b, "invalid symlink target");
        put_strs(&b, "nix-archive-1", "(", "type", "symlink", "target", NULL);
        put_bytes(&b, "a\0", 2);
        put_str(&b, ")");
        expect_reject(&b, "invalid symlink target");
        /* executable: only on regular files, value empty, before contents */
        put_strs(&b, "nix-archive-1", "(", "type", "symlink", "executable", "", "target", "x", ")", NULL);
        expect_reject(&b, "expected \"target\"");
        put_strs(&b, "nix-archive-1", "(", "type", "regular", "executable", "1", "contents", "", ")", NULL);
        expect_reject(&b, "non-empty value");
        put_strs(&b, "nix-archive-1", "(", "type", "regular", "contents", "", "executable", "", ")", NULL);
        expect_reject(&b, "closing a node");
        put_strs(&b, "nix-archive-1", "(", "type", "regular", "executable", "", "executable", "", "contents", "",
                 ")", NULL);
        expect_reject(&b, "expected \"contents\"");
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "executable", "", ")", NULL);
        expect_reject(&b, "expected \"entry\"");
        /* entry structure */
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "name", "a", NULL);
        expect_reject(&b, "expected \"(\" after");
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "(", NULL);
        expect_reject(&b, "expected \"node\"");
        put_strs(&b, "nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "node", "(", "type",
                 "symlink", "target", "x", ")", ")", NULL);
        expect_reject(&b, "truncated");

        /* nesting: NAR_DEPTH_MAX directories deep is refused, one less is fine */
        for (int depth = NAR_DEPTH_MAX - 1; depth <= NAR_DEPTH_MAX; depth++) {
                put_str(&b, "nix-archive-1");
                for (int i = 0; i < depth; i++)
                        put_strs(&b, "(", "type", "directory", "entry", "(", "name", "d", "node", NULL);
                put_strs(&b, "(", "type", "directory", ")", NULL);
                for (int i = 0; i < depth; i++)
                        put_strs(&b, ")", ")", NULL);
                if (depth == NAR_DEPTH_MAX) {
                        expect_reject(&b, "nested too deeply");
                } else {
                        store_reset();
                        round_trip(&b, 0, NULL);
                        CHECK_EQ(n_dirs(), (size_t) depth + 1);
                        free(b.p);
                        memset(&b, 0, sizeof(b));
                }
        }
}

/* A blob service whose stores fail: the error comes back, nothing is
 * registered, with and without store workers. */
static int full_put(struct cas_blob_service *s, const void *data, size_t len, unsigned flags,
                    struct cas_digest *ret_digest) {
        return -ENOSPC;
}
static int full_writer_new(struct cas_blob_service *s, unsigned flags, struct cas_blob_writer **ret) {
        return -ENOSPC;
}
static const struct cas_blob_ops full_ops = { .name = "full", .put = full_put, .writer_new = full_writer_new };

static void test_store_errors(void) {
        struct cas_blob_service full = { .ops = &full_ops };
        struct nar_ingest_result res;
        struct buf b = {};
        static const char big[100000];

        for (int serial = 0; serial < 2; serial++) {
                /* many small files, then a large one */
                put_strs(&b, "nix-archive-1", "(", "type", "directory", NULL);
                for (int i = 0; i < 200; i++) {
                        char name[16];
                        snprintf(name, sizeof(name), "f%03d", i);
                        put_strs(&b, "entry", "(", "name", name, "node", "(", "type", "regular", "contents", name,
                                 ")", ")", NULL);
                }
                put_strs(&b, ")", NULL);
                struct buf in = { .p = b.p, .len = b.len };
                store_reset();
                CHECK_EQ(nar_ingest(&full, dirs, buf_read, &in, serial ? NAR_INGEST_SERIAL : 0, &res), -ENOSPC);
                CHECK_EQ(n_dirs(), 0);
                free(b.p);
                memset(&b, 0, sizeof(b));

                put_strs(&b, "nix-archive-1", "(", "type", "regular", "contents", NULL);
                put_bytes(&b, big, sizeof(big));
                put_strs(&b, ")", NULL);
                in = (struct buf){ .p = b.p, .len = b.len };
                CHECK_EQ(nar_ingest(&full, dirs, buf_read, &in, serial ? NAR_INGEST_SERIAL : 0, &res), -ENOSPC);
                free(b.p);
                memset(&b, 0, sizeof(b));
        }
}

/* ---- NAR of local trees ---- */

static char local_base[] = "/tmp/castore-test-nar.XXXXXX";

static const char *lpath(const char *rel) {
        static char p[512];
        snprintf(p, sizeof(p), "%s/%s", local_base, rel);
        return p;
}

static void lwrite(const char *rel, const char *data, mode_t mode) {
        FILE *f = fopen(lpath(rel), "w");
        CHECK(f);
        CHECK(fputs(data, f) >= 0);
        CHECK(fclose(f) == 0);
        CHECK(chmod(lpath(rel), mode) == 0);
}

static void check_local(const char *rel, uint64_t want_size, const char *want_sha, const char *want_b3) {
        struct cas_node root;
        void *mem;
        uint64_t size;
        uint8_t sha[32];
        char hex[65];

        CHECK_OK(nar_hash_local(lpath(rel), false, &size, sha, &root, &mem));
        CHECK_EQ(size, want_size);
        CHECK_STREQ(test_hex(sha, 32, hex), want_sha);
        if (want_b3)
                CHECK_STREQ(CAS_DIGEST_HEX(&root.digest), want_b3);
        free(mem);
}

static void test_local_trees(void) {
        struct cas_node root;
        void *mem;
        uint64_t size;
        uint8_t sha[32];

        CHECK(mkdtemp(local_base));
        /* the SPEC's NAR known answers, from trees on disk */
        lwrite("hello", "Hello World!", 0644);
        check_local("hello", 128, "03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040",
                    "5ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c");
        CHECK(symlink("/nix/store/somewhereelse", lpath("link")) == 0);
        check_local("link", 136, "097d397e9b5826384eaa16c457715d1c1a51670313ead0f58566e0b232539cf1", NULL);
        CHECK(mkdir(lpath("c"), 0755) == 0);
        CHECK(mkdir(lpath("c/keep"), 0755) == 0);
        lwrite("c/keep/.keep", "", 0644);
        lwrite("c/.keep", "", 0644);
        CHECK(symlink("/nix/store/somewhereelse", lpath("c/aa")) == 0);
        check_local("c", 840, "ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a",
                    "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a");
        CHECK_OK(nar_hash_local(lpath("c"), false, &size, sha, &root, &mem));
        CHECK_EQ(root.kind, CAS_NODE_DIRECTORY);
        CHECK_EQ(root.size, 4);
        free(mem);

        /* an empty directory (nix-store --dump gives these 96 bytes) */
        CHECK(mkdir(lpath("e"), 0755) == 0);
        check_local("e", 96, "a50a5ab6d992f5598edd92105059fae9acfc192981e08bd88534c2167e92526a",
                    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");

        /* the executable bit is part of both */
        lwrite("x", "Hello World!", 0755);
        CHECK_OK(nar_hash_local(lpath("x"), false, &size, sha, &root, &mem));
        CHECK(root.executable);
        CHECK(size > 128);

        /* special files: refused, or left out like the importer does */
        CHECK(mkfifo(lpath("c/fifo"), 0644) == 0);
        CHECK_EQ(nar_hash_local(lpath("c"), false, &size, sha, &root, &mem), -EINVAL);
        CHECK_OK(nar_hash_local(lpath("c"), true, &size, sha, &root, &mem));
        CHECK_EQ(size, 840);
        CHECK_STREQ(CAS_DIGEST_HEX(&root.digest), "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a");
        CHECK_EQ(nar_hash_local(lpath("c/fifo"), true, &size, sha, &root, &mem), -EINVAL);
        CHECK_EQ(nar_hash_local(lpath("missing"), false, &size, sha, &root, &mem), -ENOENT);
        {
                /* A regular file swapped for a fifo between the walker's
                 * stat and the open must not block the open (no writer
                 * would ever come): the opener says it changed. */
                struct stat st;
                alarm(20);
                CHECK_EQ(cas_local_open_file(AT_FDCWD, lpath("c/fifo"), &st), -EAGAIN);
                alarm(0);
        }

        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", local_base);
        CHECK(system(cmd) == 0);
}

static void render_tests(void) {
        RUN(test_hello);
        RUN(test_complicated);
        RUN(test_large_files);
        RUN(test_corrupt_blob);
        RUN(test_corrupt_large_blob);
        RUN(test_many_files);
        RUN(test_sink_error);
}

int main(void) {
        RUN(test_symlink);
        RUN(test_writer);
        render_tests();
        RUN(test_hostile);
        RUN(test_store_errors);
        RUN(test_local_trees);
        extra_flags = NAR_RENDER_SERIAL;
        render_tests();
        cas_blob_service_free(blobs);
        cas_dir_service_free(dirs);
        return 0;
}
