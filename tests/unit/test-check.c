/* Unit tests for the store checker (castore/check.h) and its Nix layer
 * (store/check.h) on local stores in a temporary directory: a sound store
 * has no problems; each kind of damage gives the problem kind it should,
 * once; --repair removes a rotten blob. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/check.h"
#include "castore/lmdb.h"
#include "store/check.h"
#include "store/nar.h"
#include "test.h"

#define N(s) .name = (s), .name_len = sizeof(s) - 1

static char tmp_root[256];
static int store_counter;

/* A store holding
 *   root "v" = dir { sub: dir { inner: dir { f: "hello" }, link -> f }, top: "top" (executable) }
 * registered as a store path too (valid NAR hash and size). */
struct fixture {
        char path[300];
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct cas_digest hello, top, inner, sub, root;
        struct cas_node root_node;
        struct nix_store_path sp;
};

static struct cas_directory *dir_of(const struct cas_node *n, size_t count) {
        struct cas_directory *d;
        CHECK_OK(cas_directory_new(n, count, &d, NULL));
        return d;
}

static void fixture_open(struct fixture *f) {
        struct cas_directory *dirs[3];

        snprintf(f->path, sizeof(f->path), "%s/store%d", tmp_root, store_counter++);
        CHECK_OK(cas_store_open(f->path, CAS_STORE_CREATE, &f->store));
        CHECK_OK(nix_pathinfo_open_store(f->store, &f->pis));
        CHECK_OK(cas_blob_put(f->store->blobs, "hello", 5, 0, &f->hello));
        CHECK_OK(cas_blob_put(f->store->blobs, "top", 3, 0, &f->top));

        struct cas_node in[] = { { .kind = CAS_NODE_FILE, N("f"), .digest = f->hello, .size = 5 } };
        dirs[0] = dir_of(in, 1);
        struct cas_node sub[] = {
                { .kind = CAS_NODE_DIRECTORY, N("inner"), .digest = dirs[0]->digest, .size = dirs[0]->size },
                { .kind = CAS_NODE_SYMLINK, N("link"), .target = "inner/f", .target_len = 7 },
        };
        dirs[1] = dir_of(sub, 2);
        struct cas_node top[] = {
                { .kind = CAS_NODE_DIRECTORY, N("sub"), .digest = dirs[1]->digest, .size = dirs[1]->size },
                { .kind = CAS_NODE_FILE, N("top"), .executable = true, .digest = f->top, .size = 3 },
        };
        dirs[2] = dir_of(top, 2);
        CHECK_OK(cas_dir_put(f->store->dirs, dirs, 3, 0, NULL));
        f->inner = dirs[0]->digest;
        f->sub = dirs[1]->digest;
        f->root = dirs[2]->digest;
        f->root_node =
                (struct cas_node){ .kind = CAS_NODE_DIRECTORY, N("v"), .digest = f->root, .size = dirs[2]->size };
        for (size_t i = 0; i < 3; i++)
                cas_directory_free(dirs[i]);
        CHECK_OK(cas_root_put(f->store->roots, &f->root_node));
        {
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t nar_size;

                CHECK_OK(nar_render(f->store->blobs, f->store->dirs, &f->root_node, 0, NULL, NULL, &nar_size, sha));
                CHECK_OK(nix_register_nar(f->pis, &f->root_node, "v", nar_size, sha, &f->sp));
        }
}

static void fixture_close(struct fixture *f) {
        nix_pathinfo_service_free(f->pis);
        cas_store_free(f->store);
}

static void blob_file(const struct fixture *f, const struct cas_digest *d, char *ret, size_t size) {
        char hex[CAS_DIGEST_HEX_LEN + 1];

        cas_digest_to_hex(d, hex);
        snprintf(ret, size, "%s/blobs/%.2s/%s", f->path, hex, hex);
}

static void flip_blob_byte(const struct fixture *f, const struct cas_digest *d) {
        char p[512], c;
        int fd;

        blob_file(f, d, p, sizeof(p));
        CHECK_EQ(chmod(p, 0644), 0);
        fd = open(p, O_RDWR);
        CHECK(fd >= 0);
        CHECK_EQ(pread(fd, &c, 1, 1), 1);
        c ^= 1;
        CHECK_EQ(pwrite(fd, &c, 1, 1), 1);
        close(fd);
}

/* ---- what the checker reported ---- */

#define MAX_SEEN 16

struct seen {
        size_t n;
        struct {
                int kind;
                bool has_digest, repaired;
                struct cas_digest digest;
                char name[300], referrer[400], message[600];
        } p[MAX_SEEN];
};

static void collect(void *userdata, const struct cas_problem *p) {
        struct seen *s = userdata;

        fprintf(stderr, "    problem: %s%s\n", p->message, p->repaired ? " (repaired)" : "");
        CHECK(s->n < MAX_SEEN);
        s->p[s->n].kind = p->kind;
        s->p[s->n].has_digest = p->has_digest;
        s->p[s->n].repaired = p->repaired;
        s->p[s->n].digest = p->digest;
        snprintf(s->p[s->n].name, sizeof(s->p[s->n].name), "%s", p->name ? p->name : "");
        snprintf(s->p[s->n].referrer, sizeof(s->p[s->n].referrer), "%s", p->referrer ? p->referrer : "");
        snprintf(s->p[s->n].message, sizeof(s->p[s->n].message), "%s", p->message);
        s->n++;
}

static void check(struct fixture *f, bool nar, bool repair, struct seen *seen, struct nix_check_stats *st) {
        struct nix_check_opts o = { .nar = nar, .repair = repair };

        *seen = (struct seen){};
        CHECK_OK(nix_check_store(f->store, f->pis, &o, collect, seen, st));
        CHECK_EQ(st->cas.problems, seen->n);
}

/* exactly one problem, of this kind */
static void expect_one(const struct seen *s, int kind) {
        CHECK_EQ(s->n, 1);
        CHECK_EQ(s->p[0].kind, kind);
}

/* ---- tests ---- */

static void test_clean(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;

        fixture_open(&f);
        check(&f, false, false, &s, &st);
        CHECK_EQ(s.n, 0);
        CHECK_EQ(st.cas.blobs, 2);
        CHECK_EQ(st.cas.directories, 3);
        CHECK_EQ(st.cas.roots, 1);
        CHECK_EQ(st.store_paths, 1);
        check(&f, true, false, &s, &st); /* the NAR hashes match too */
        CHECK_EQ(s.n, 0);
        fixture_close(&f);
}

static void test_clean_memory(void) {
        struct cas_store *store;
        struct cas_check_stats st;
        struct seen s = {};
        struct cas_digest d;

        CHECK_OK(cas_store_open("memory://", 0, &store));
        CHECK_OK(cas_blob_put(store->blobs, "x", 1, 0, &d));
        struct cas_node n = { .kind = CAS_NODE_FILE, N("x"), .digest = d, .size = 1 };
        CHECK_OK(cas_root_put(store->roots, &n));
        CHECK_OK(cas_check_store(store, NULL, collect, &s, &st));
        CHECK_EQ(s.n, 0);
        CHECK_EQ(st.blobs, 1);
        CHECK_EQ(st.roots, 1);
        cas_store_free(store);
}

static void test_flipped_blob(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        char p[512];

        fixture_open(&f);
        flip_blob_byte(&f, &f.top);
        check(&f, false, false, &s, &st);
        /* once: the directory entry naming it is not reported again */
        expect_one(&s, CAS_PROBLEM_BLOB_CORRUPT);
        CHECK(s.p[0].has_digest && cas_digest_equal(&s.p[0].digest, &f.top));
        CHECK(!s.p[0].repaired);
        CHECK(strstr(s.p[0].message, "corrupt blob b3:") == s.p[0].message);
        blob_file(&f, &f.top, p, sizeof(p));
        CHECK_EQ(access(p, F_OK), 0); /* no repair asked for */

        /* --nar: the render refuses the blob as well */
        check(&f, true, false, &s, &st);
        CHECK_EQ(s.n, 2);
        CHECK(s.p[0].kind == NIX_PROBLEM_NAR_UNREADABLE || s.p[1].kind == NIX_PROBLEM_NAR_UNREADABLE);
        fixture_close(&f);
}

static void test_repair(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        char p[512];

        fixture_open(&f);
        flip_blob_byte(&f, &f.hello);
        check(&f, false, true, &s, &st);
        expect_one(&s, CAS_PROBLEM_BLOB_CORRUPT);
        CHECK(s.p[0].repaired);
        blob_file(&f, &f.hello, p, sizeof(p));
        CHECK(access(p, F_OK) < 0 && errno == ENOENT);
        /* now it is missing where it is referenced; a re-put repairs it */
        check(&f, false, false, &s, &st);
        expect_one(&s, CAS_PROBLEM_BLOB_MISSING);
        CHECK(strstr(s.p[0].referrer, "entry \"f\" of directory b3:") == s.p[0].referrer);
        CHECK_EQ(st.cas.blobs, 1);
        CHECK_OK(cas_blob_put(f.store->blobs, "hello", 5, 0, NULL));
        check(&f, false, false, &s, &st);
        CHECK_EQ(s.n, 0);
        fixture_close(&f);
}

static void test_missing_blob(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        char p[512];

        fixture_open(&f);
        blob_file(&f, &f.top, p, sizeof(p));
        CHECK_EQ(unlink(p), 0);
        check(&f, false, false, &s, &st);
        expect_one(&s, CAS_PROBLEM_BLOB_MISSING);
        CHECK(cas_digest_equal(&s.p[0].digest, &f.top));
        CHECK(strstr(s.p[0].message, "missing blob b3:") == s.p[0].message);
        CHECK(strstr(s.p[0].referrer, "entry \"top\" of directory") != NULL);
        fixture_close(&f);
}

static void test_missing_child(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        MDB_dbi dbi;

        fixture_open(&f);
        CHECK_OK(cas_lmdb_dbi(f.store->lmdb, "directories", &dbi));
        CHECK_OK(cas_lmdb_del(f.store->lmdb, dbi, f.inner.b, CAS_DIGEST_LEN));
        check(&f, false, false, &s, &st);
        expect_one(&s, CAS_PROBLEM_DIR_MISSING);
        CHECK(cas_digest_equal(&s.p[0].digest, &f.inner));
        CHECK(strstr(s.p[0].referrer, "entry \"inner\" of directory") != NULL);
        CHECK_EQ(st.cas.directories, 2);
        fixture_close(&f);
}

static void test_wrong_sizes(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        struct cas_directory *d;

        fixture_open(&f);
        /* a root claiming fewer entries than its directory has */
        struct cas_node small = f.root_node;
        small.name = "small";
        small.name_len = 5;
        small.size = 1;
        CHECK_OK(cas_root_put(f.store->roots, &small));
        check(&f, false, false, &s, &st);
        expect_one(&s, CAS_PROBLEM_DIR_SIZE);
        CHECK(cas_digest_equal(&s.p[0].digest, &f.root));
        CHECK_STREQ(s.p[0].referrer, "root \"small\"");
        CHECK_OK(cas_root_remove(f.store->roots, "small", 5));

        /* a directory that says "hello" has 6 bytes */
        struct cas_node e = { .kind = CAS_NODE_FILE, N("f"), .digest = f.hello, .size = 6 };
        d = dir_of(&e, 1);
        CHECK_OK(cas_dir_put(f.store->dirs, &d, 1, 0, NULL));
        cas_directory_free(d);
        check(&f, false, false, &s, &st);
        expect_one(&s, CAS_PROBLEM_BLOB_SIZE);
        CHECK(cas_digest_equal(&s.p[0].digest, &f.hello));
        CHECK(strstr(s.p[0].message, "has 5 bytes") != NULL);
        fixture_close(&f);
}

static void test_corrupt_directory_record(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        MDB_dbi dbi;
        uint8_t rec[8] = { 1 }; /* size 1, then no encoding: the empty directory */

        fixture_open(&f);
        CHECK_OK(cas_lmdb_dbi(f.store->lmdb, "directories", &dbi));
        CHECK_OK(cas_lmdb_put(f.store->lmdb, dbi, f.inner.b, CAS_DIGEST_LEN, rec, sizeof(rec)));
        check(&f, false, false, &s, &st);
        /* hashes to the empty directory's digest; its parent's reference
         * is not reported again */
        expect_one(&s, CAS_PROBLEM_DIR_CORRUPT);
        CHECK(cas_digest_equal(&s.p[0].digest, &f.inner));
        CHECK(strstr(s.p[0].message, "content hashes to") != NULL);
        fixture_close(&f);
}

static void test_missing_reference(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        struct nix_pathinfo *pi;
        struct nix_store_path missing;
        const char *sub;
        char self[NIX_PATH_MAX + 1];

        fixture_open(&f);
        CHECK_OK(nix_store_path_parse("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-missing", &missing, &sub));
        CHECK_OK(nix_pathinfo_get_path(f.pis, &f.sp, &pi));
        CHECK_OK(nix_pathinfo_add_reference(pi, &f.sp)); /* a self-reference is fine */
        CHECK_OK(nix_pathinfo_add_reference(pi, &missing));
        CHECK_OK(nix_pathinfo_put(f.pis, pi));
        nix_pathinfo_free(pi);
        check(&f, false, false, &s, &st);
        expect_one(&s, NIX_PROBLEM_PATH_MISSING);
        CHECK_STREQ(s.p[0].name, "/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-missing");
        nix_store_path_absolute(&f.sp, self);
        CHECK(strstr(s.p[0].message, self) != NULL);
        fixture_close(&f);
}

static void test_nar_mismatch(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        struct nix_pathinfo *pi;

        fixture_open(&f);
        CHECK_OK(nix_pathinfo_get_path(f.pis, &f.sp, &pi));
        pi->nar_size++;
        CHECK_OK(nix_pathinfo_put(f.pis, pi));
        nix_pathinfo_free(pi);
        check(&f, false, false, &s, &st); /* only --nar looks */
        CHECK_EQ(s.n, 0);
        check(&f, true, false, &s, &st);
        expect_one(&s, NIX_PROBLEM_NAR_MISMATCH);
        fixture_close(&f);
}

static void test_missing_root_of_store_path(void) {
        struct fixture f;
        struct nix_check_stats st;
        struct seen s;
        MDB_dbi dbi;

        fixture_open(&f);
        CHECK_OK(cas_root_remove(f.store->roots, "v", 1));
        CHECK_OK(cas_lmdb_dbi(f.store->lmdb, "directories", &dbi));
        CHECK_OK(cas_lmdb_del(f.store->lmdb, dbi, f.root.b, CAS_DIGEST_LEN));
        check(&f, false, false, &s, &st);
        expect_one(&s, CAS_PROBLEM_DIR_MISSING);
        CHECK(strstr(s.p[0].referrer, "store path /nix/store/") == s.p[0].referrer);
        fixture_close(&f);
}

int main(void) {
        test_tmp_root("test-check", tmp_root, sizeof(tmp_root));

        RUN(test_clean);
        RUN(test_clean_memory);
        RUN(test_flipped_blob);
        RUN(test_repair);
        RUN(test_missing_blob);
        RUN(test_missing_child);
        RUN(test_wrong_sizes);
        RUN(test_corrupt_directory_record);
        RUN(test_missing_reference);
        RUN(test_nar_mismatch);
        RUN(test_missing_root_of_store_path);

        remove_tree(tmp_root);
        return 0;
}
