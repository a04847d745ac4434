/* Unit tests for the directory services (memory:// and LMDB): SPEC §2
 * digests through put/get, closure under children, lenient and strict
 * sizes, atomic batches, corruption detection, the recursive walk. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/dirsvc.h"
#include "castore/lmdb.h"
#include "castore/store.h"
#include "test.h"
#include "test-pg.h"

#define N(s) .name = (s), .name_len = sizeof(s) - 1

#define WITH_KEEP_HEX "8b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e"
#define COMPLICATED_HEX "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a"
#define COMPLICATED2_HEX "424a7f6ce08d805d15b428062faae96299a1675d708c3a39261afe38cdd04feb"
#define B_HEX "8701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc"
#define EMPTY_HEX "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

static char tmp_root[256];

static const char *hex(const struct cas_digest *d) {
        static char buf[CAS_DIGEST_HEX_LEN + 1];
        cas_digest_to_hex(d, buf);
        return buf;
}

static struct cas_directory *mkdir_nodes(const struct cas_node *n, size_t count) {
        struct cas_directory *d;
        CHECK_OK(cas_directory_new(n, count, &d, NULL));
        return d;
}

static struct cas_directory *empty_dir(void) {
        return mkdir_nodes(NULL, 0);
}

static struct cas_directory *with_keep(void) {
        struct cas_node n = { .kind = CAS_NODE_FILE, N(".keep"), .digest = cas_digest_empty };
        return mkdir_nodes(&n, 1);
}

static struct cas_directory *complicated(uint64_t keep_size) {
        _cleanup_(cas_directory_freep) struct cas_directory *k = with_keep();
        struct cas_node n[3] = {
                { .kind = CAS_NODE_DIRECTORY, N("keep"), .digest = k->digest, .size = keep_size },
                { .kind = CAS_NODE_FILE, N(".keep"), .digest = cas_digest_empty },
                { .kind = CAS_NODE_SYMLINK, N("aa"), .target = "/nix/store/somewhereelse", .target_len = 24 },
        };
        return mkdir_nodes(n, 3);
}

static struct cas_directory *dir_b(void) {
        struct cas_node n = { .kind = CAS_NODE_DIRECTORY, N("a"), .digest = cas_digest_empty, .size = 0 };
        return mkdir_nodes(&n, 1);
}

/* A directory holding `child` under each of the given names. */
static struct cas_directory *parent_of(const struct cas_directory *child, const char *const *names, size_t n) {
        struct cas_node nodes[8];

        CHECK(n <= 8);
        for (size_t i = 0; i < n; i++)
                nodes[i] = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .name = names[i],
                                              .name_len = strlen(names[i]), .digest = child->digest,
                                              .size = child->size };
        return mkdir_nodes(nodes, n);
}

static void put_one(struct cas_dir_service *s, struct cas_directory *d) {
        CHECK_OK(cas_dir_put(s, &d, 1, 0, NULL));
}

static void check_get(struct cas_dir_service *s, const struct cas_directory *want) {
        _cleanup_(cas_directory_freep) struct cas_directory *got = NULL;
        uint64_t size;

        CHECK_OK(cas_dir_get(s, &want->digest, &got));
        CHECK(cas_digest_equal(&got->digest, &want->digest));
        CHECK_EQ(got->n_entries, want->n_entries);
        CHECK_EQ(got->size, want->size);
        for (size_t i = 0; i < got->n_entries; i++)
                CHECK_STREQ(got->entries[i].name, want->entries[i].name);
        CHECK_OK(cas_dir_stat(s, &want->digest, &size));
        CHECK_EQ(size, want->size);
}

/* ---- backends ---- */

struct backend {
        struct cas_dir_service *s;
        struct cas_lmdb *db; /* LMDB only */
        struct cas_pg *pg;   /* PostgreSQL only */
        char path[300];
};

static void open_memory(struct backend *b) {
        CHECK_OK(cas_dir_memory_new(&b->s));
}

static int lmdb_counter;

static void open_lmdb_at(struct backend *b, unsigned flags) {
        CHECK_OK(cas_lmdb_open(b->path, flags, &b->db));
        CHECK_OK(cas_dir_lmdb_new(b->db, &b->s));
}

static void open_lmdb(struct backend *b) {
        snprintf(b->path, sizeof(b->path), "%s/meta%d", tmp_root, lmdb_counter++);
        open_lmdb_at(b, CAS_STORE_CREATE);
}

/* PostgreSQL ($CASTORE_TEST_PG), emptied first */
static void open_pg(struct backend *b) {
        test_pg_reset();
        CHECK_OK(cas_pg_open(test_pg_url(), 0, &b->pg));
        CHECK_OK(cas_dir_pg_new(b->pg, &b->s));
}

static void close_backend(struct backend *b) {
        cas_dir_service_free(b->s);
        b->s = NULL;
        cas_pg_unref(b->pg);
        b->pg = NULL;
        cas_lmdb_close(b->db);
        b->db = NULL;
}

/* ---- tests ---- */

static void test_known_digests(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *e = empty_dir(), *k = with_keep(), *c = complicated(1),
                                                            *db = dir_b();

        CHECK_STREQ(hex(&k->digest), WITH_KEEP_HEX);
        CHECK_STREQ(hex(&c->digest), COMPLICATED_HEX);
        CHECK_STREQ(hex(&db->digest), B_HEX);
        put_one(b->s, k);
        put_one(b->s, c);
        put_one(b->s, e);
        put_one(b->s, db);
        put_one(b->s, c); /* again: dedup */
        check_get(b->s, k);
        check_get(b->s, c);
        check_get(b->s, e);
        check_get(b->s, db);
        {
                _cleanup_(cas_directory_freep) struct cas_directory *c2 = complicated(2);
                CHECK_EQ(cas_dir_stat(b->s, &c2->digest, NULL), -ENOENT);
        }
}

static void test_missing_child(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *c = complicated(1), *db = dir_b();
        struct cas_directory *got;
        enum cas_verr why = CAS_VERR_NONE;

        CHECK_EQ(cas_dir_put(b->s, &c, 1, 0, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_MISSING_CHILD);
        CHECK_EQ(cas_dir_get(b->s, &c->digest, &got), -ENOENT);
        CHECK_EQ(cas_dir_put(b->s, &db, 1, 0, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_MISSING_CHILD);
}

static void test_sizes(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *k = with_keep(), *small = complicated(0),
                                                            *big = complicated(2), *exact = complicated(1);
        enum cas_verr why = CAS_VERR_NONE;

        put_one(b->s, k);
        CHECK_EQ(cas_dir_put(b->s, &small, 1, 0, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_SIZE_MISMATCH);
        CHECK_EQ(cas_dir_put(b->s, &small, 1, CAS_DECODE_STRICT_SIZE, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_SIZE_MISMATCH);
        CHECK_STREQ(hex(&big->digest), COMPLICATED2_HEX);
        CHECK_EQ(cas_dir_put(b->s, &big, 1, CAS_DECODE_STRICT_SIZE, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_SIZE_MISMATCH);
        CHECK_EQ(cas_dir_stat(b->s, &big->digest, NULL), -ENOENT);
        CHECK_OK(cas_dir_put(b->s, &big, 1, 0, &why));
        CHECK_EQ(why, CAS_VERR_NONE);
        check_get(b->s, big);
        CHECK_OK(cas_dir_put(b->s, &exact, 1, CAS_DECODE_STRICT_SIZE, &why));
        check_get(b->s, exact);
}

/* Leaves first in one call; a batch with a bad member stores nothing. */
static void test_batch(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *e = empty_dir(), *k = with_keep(), *c = complicated(1),
                                                            *db = dir_b(), *bad = complicated(0);
        struct cas_directory *wrong_order[] = { c, k };
        struct cas_directory *with_bad[] = { e, db, k, bad };
        struct cas_directory *good[] = { e, k, db, c, k };
        enum cas_verr why = CAS_VERR_NONE;

        CHECK_EQ(cas_dir_put(b->s, wrong_order, 2, 0, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_MISSING_CHILD);
        CHECK_EQ(cas_dir_stat(b->s, &k->digest, NULL), -ENOENT);
        CHECK_EQ(cas_dir_put(b->s, with_bad, 4, 0, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_SIZE_MISMATCH);
        for (size_t i = 0; i < 3; i++)
                CHECK_EQ(cas_dir_stat(b->s, &with_bad[i]->digest, NULL), -ENOENT);
        CHECK_OK(cas_dir_put(b->s, good, 5, 0, &why));
        CHECK_EQ(why, CAS_VERR_NONE);
        for (size_t i = 0; i < 5; i++)
                check_get(b->s, good[i]);
        CHECK_OK(cas_dir_put(b->s, NULL, 0, 0, NULL));
}

struct walk_state {
        struct cas_digest seen[16];
        size_t n;
};

static int walk_cb(void *userdata, const struct cas_directory *d) {
        struct walk_state *w = userdata;

        for (size_t i = 0; i < w->n; i++)
                CHECK(!cas_digest_equal(&w->seen[i], &d->digest));
        CHECK(w->n < 16);
        w->seen[w->n++] = d->digest;
        return 0;
}

static size_t index_of(const struct walk_state *w, const struct cas_digest *d) {
        for (size_t i = 0; i < w->n; i++)
                if (cas_digest_equal(&w->seen[i], d))
                        return i;
        CHECK(!"digest not walked");
        return 0;
}

/* root -> {x -> complicated -> with_keep, y -> complicated, z -> B -> empty},
 * so complicated and with_keep are reachable twice. */
static void test_recursive(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *e = empty_dir(), *k = with_keep(), *c = complicated(1),
                                                            *db = dir_b(), *x = NULL, *z = NULL, *root = NULL;
        static const char *const xy[] = { "x", "y" }, *const zz[] = { "z" };
        struct walk_state w = {};

        x = parent_of(c, xy, 2);
        z = parent_of(db, zz, 1);
        {
                struct cas_node n[3] = {
                        { .kind = CAS_NODE_DIRECTORY, N("x"), .digest = x->digest, .size = x->size },
                        { .kind = CAS_NODE_DIRECTORY, N("y"), .digest = c->digest, .size = c->size },
                        { .kind = CAS_NODE_DIRECTORY, N("z"), .digest = z->digest, .size = z->size },
                };
                root = mkdir_nodes(n, 3);
        }
        struct cas_directory *all[] = { e, k, c, db, x, z, root };
        CHECK_OK(cas_dir_put(b->s, all, ELEMENTSOF(all), CAS_DECODE_STRICT_SIZE, NULL));

        CHECK_OK(cas_dir_get_recursive(b->s, &root->digest, walk_cb, &w));
        CHECK_EQ(w.n, 7);
        CHECK(cas_digest_equal(&w.seen[0], &root->digest));
        /* each directory comes after the parent that reached it first */
        CHECK(index_of(&w, &x->digest) < index_of(&w, &k->digest));
        CHECK(index_of(&w, &root->digest) < index_of(&w, &c->digest));
        CHECK(index_of(&w, &c->digest) < index_of(&w, &k->digest));
        CHECK(index_of(&w, &z->digest) < index_of(&w, &db->digest));
        CHECK(index_of(&w, &db->digest) < index_of(&w, &e->digest));

        w.n = 0;
        CHECK_OK(cas_dir_get_recursive(b->s, &e->digest, walk_cb, &w));
        CHECK_EQ(w.n, 1);

        /* a missing root or descendant is -ENOENT */
        {
                _cleanup_(cas_directory_freep) struct cas_directory *kk = complicated(7);
                w.n = 0;
                CHECK_EQ(cas_dir_get_recursive(b->s, &kk->digest, walk_cb, &w), -ENOENT);
                CHECK_EQ(w.n, 0);
        }
}

static int stop_cb(void *userdata, const struct cas_directory *d) {
        return -ECANCELED;
}

static void test_walk_stop(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *e = empty_dir(), *db = dir_b();
        struct cas_directory *all[] = { e, db };

        CHECK_OK(cas_dir_put(b->s, all, 2, 0, NULL));
        CHECK_EQ(cas_dir_get_recursive(b->s, &db->digest, stop_cb, NULL), -ECANCELED);
}

struct list_state {
        size_t n;
        bool saw_keep;
};

static int list_cb(void *userdata, const struct cas_digest *d, const void *data, size_t len) {
        struct list_state *st = userdata;
        struct cas_directory *dir;

        CHECK_OK(cas_directory_decode(data, len, 0, &dir, NULL));
        CHECK(cas_digest_equal(&dir->digest, d));
        if (strcmp(hex(d), WITH_KEEP_HEX) == 0) {
                CHECK_EQ(len, 43);
                st->saw_keep = true;
        }
        cas_directory_free(dir);
        st->n++;
        return 0;
}

static void test_list(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *e = empty_dir(), *k = with_keep(), *c = complicated(1);
        struct cas_directory *all[] = { e, k, c };
        struct list_state st = {};

        CHECK_OK(cas_dir_list(b->s, list_cb, &st));
        CHECK_EQ(st.n, 0);
        CHECK_OK(cas_dir_put(b->s, all, 3, 0, NULL));
        CHECK_OK(cas_dir_list(b->s, list_cb, &st));
        CHECK_EQ(st.n, 3);
        CHECK(st.saw_keep);
}

/* remove: a batch at once, absent digests skipped, a reader's decoded
 * copy unaffected */
static void test_remove(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *e = empty_dir(), *k = with_keep(), *c = complicated(1);
        _cleanup_(cas_directory_freep) struct cas_directory *got = NULL;
        struct cas_directory *all[] = { e, k, c };
        struct cas_digest gone[3] = { k->digest, c->digest, {} };
        struct list_state st = {};

        CHECK_OK(cas_dir_put(b->s, all, 3, 0, NULL));
        CHECK_OK(cas_dir_get(b->s, &c->digest, &got));
        memset(&gone[2], 0x5a, sizeof(gone[2])); /* never stored */
        CHECK_OK(cas_dir_remove(b->s, gone, 3));
        CHECK_OK(cas_dir_remove(b->s, gone, 0));
        CHECK_EQ(cas_dir_remove(b->s, NULL, 1), -EINVAL);
        CHECK_EQ(cas_dir_stat(b->s, &k->digest, NULL), -ENOENT);
        CHECK_EQ(cas_dir_get(b->s, &c->digest, &all[0]), -ENOENT);
        CHECK_OK(cas_dir_stat(b->s, &e->digest, NULL));
        CHECK_OK(cas_dir_list(b->s, list_cb, &st));
        CHECK_EQ(st.n, 1);
        CHECK(cas_digest_equal(&got->digest, &c->digest));
        /* stored again after removal */
        CHECK_OK(cas_dir_put(b->s, all + 1, 2, 0, NULL));
        CHECK_OK(cas_dir_stat(b->s, &c->digest, NULL));
}

static void test_check_children_args(struct backend *b) {
        _cleanup_(cas_directory_freep) struct cas_directory *k = with_keep();
        enum cas_verr why;

        CHECK_EQ(cas_dir_put(NULL, &k, 1, 0, NULL), -EINVAL);
        CHECK_EQ(cas_dir_get(b->s, NULL, &k), -EINVAL);
        CHECK_EQ(cas_dir_check_children(k, 0, NULL, NULL, &why), -EINVAL);
}

/* ---- LMDB only ---- */

/* Overwrites the stored value of d with raw bytes. */
static void poke(struct backend *b, const struct cas_digest *d, const void *data, size_t len) {
        MDB_dbi dbi;

        CHECK_OK(cas_lmdb_dbi(b->db, "directories", &dbi));
        CHECK_OK(cas_lmdb_put(b->db, dbi, d->b, CAS_DIGEST_LEN, data, len));
}

static int count_list(void *userdata, const struct cas_digest *d, const void *data, size_t len) {
        (*(int *) userdata)++;
        return 0;
}

static void test_lmdb_corrupt(void) {
        _cleanup_(cas_directory_freep) struct cas_directory *k = with_keep(), *c = complicated(1),
                                                            *db = dir_b();
        struct backend b = {};
        struct cas_directory *got;
        uint8_t *enc;
        uint8_t val[8 + 64];
        size_t len;
        uint64_t size;
        int n = 0;

        open_lmdb(&b);
        struct cas_directory *all[] = { k, c };
        CHECK_OK(cas_dir_put(b.s, all, 2, 0, NULL));
        CHECK_OK(cas_directory_encode(k, &enc, &len));
        CHECK(len + 8 <= sizeof(val));

        /* a flipped byte in the encoding */
        memcpy(val, "\x01\0\0\0\0\0\0\0", 8);
        memcpy(val + 8, enc, len);
        val[8 + 5] ^= 1;
        poke(&b, &k->digest, val, 8 + len);
        CHECK_EQ(cas_dir_get(b.s, &k->digest, &got), -EBADMSG);
        /* unparseable protobuf */
        memset(val + 8, 0xff, len);
        poke(&b, &k->digest, val, 8 + len);
        CHECK_EQ(cas_dir_get(b.s, &k->digest, &got), -EBADMSG);
        /* a valid Directory, but not the one its key names */
        poke(&b, &k->digest, "\0\0\0\0\0\0\0\0", 8);
        CHECK_EQ(cas_dir_get(b.s, &k->digest, &got), -EBADMSG);
        /* right encoding, wrong stored size */
        memcpy(val, "\x05\0\0\0\0\0\0\0", 8);
        memcpy(val + 8, enc, len);
        poke(&b, &k->digest, val, 8 + len);
        CHECK_EQ(cas_dir_get(b.s, &k->digest, &got), -EBADMSG);
        /* too short to hold the size */
        poke(&b, &k->digest, "\x01", 1);
        CHECK_EQ(cas_dir_get(b.s, &k->digest, &got), -EBADMSG);
        CHECK_EQ(cas_dir_stat(b.s, &k->digest, &size), -EBADMSG);
        {
                /* another malformed record, sorting first: the walk goes on
                 * past both, so a checker sees every other record */
                static const struct cas_digest zero;
                poke(&b, &zero, "\x01", 1);
                CHECK_EQ(cas_dir_list(b.s, count_list, &n), -EBADMSG);
                CHECK_EQ(n, 1);
        }
        /* the walk reports it too */
        CHECK_EQ(cas_dir_get_recursive(b.s, &c->digest, stop_cb, NULL), -ECANCELED);
        /* a put that needs it as a child fails without storing anything */
        {
                static const char *const names[] = { "sub" };
                _cleanup_(cas_directory_freep) struct cas_directory *p = parent_of(k, names, 1);
                CHECK_EQ(cas_dir_put(b.s, &p, 1, 0, NULL), -EBADMSG);
                CHECK_EQ(cas_dir_stat(b.s, &p->digest, NULL), -ENOENT);
        }
        /* putting the directory again repairs its record (a re-import
         * fixes what verify reports), also as part of a batch */
        memcpy(val, "\x01\0\0\0\0\0\0\0", 8);
        memcpy(val + 8, enc, len);
        val[8 + 5] ^= 1;
        poke(&b, &k->digest, val, 8 + len);
        CHECK_EQ(cas_dir_get(b.s, &k->digest, &got), -EBADMSG);
        CHECK_OK(cas_dir_put(b.s, &k, 1, 0, NULL));
        check_get(b.s, k);
        poke(&b, &k->digest, "\x01", 1);
        CHECK_OK(cas_dir_put(b.s, all, 2, 0, NULL));
        check_get(b.s, k);
        check_get(b.s, c);
        /* repaired by hand, all is well again */
        memcpy(val, "\x01\0\0\0\0\0\0\0", 8);
        memcpy(val + 8, enc, len);
        poke(&b, &k->digest, val, 8 + len);
        check_get(b.s, k);
        {
                enum cas_verr why;
                CHECK_EQ(cas_dir_put(b.s, &db, 1, 0, &why), -EBADMSG); /* B's child is not stored */
                CHECK_EQ(why, CAS_VERR_MISSING_CHILD);
        }
        free(enc);
        close_backend(&b);
}

static void test_lmdb_persistence(void) {
        _cleanup_(cas_directory_freep) struct cas_directory *e = empty_dir(), *k = with_keep(), *c = complicated(2),
                                                            *db = dir_b();
        struct cas_directory *all[] = { e, k, c, db };
        struct backend b = {};
        struct walk_state w = {};
        enum cas_verr why;

        open_lmdb(&b);
        CHECK_OK(cas_dir_put(b.s, all, 4, 0, NULL));
        close_backend(&b);

        open_lmdb_at(&b, 0);
        for (size_t i = 0; i < 4; i++)
                check_get(b.s, all[i]);
        CHECK_OK(cas_dir_get_recursive(b.s, &c->digest, walk_cb, &w));
        CHECK_EQ(w.n, 2);
        close_backend(&b);

        /* read-only: reads work, writes are refused */
        open_lmdb_at(&b, CAS_STORE_READONLY);
        check_get(b.s, c);
        CHECK_EQ(cas_dir_put(b.s, &k, 1, 0, &why), -EROFS);
        close_backend(&b);

        /* a missing env is not created without CAS_STORE_CREATE */
        snprintf(b.path, sizeof(b.path), "%s/nonexistent", tmp_root);
        CHECK_EQ(cas_lmdb_open(b.path, 0, &b.db), -ENOENT);
        CHECK_EQ(cas_lmdb_open(b.path, CAS_STORE_READONLY, &b.db), -ENOENT);
}

/* Resident kB of this process's mappings of path (smaps: a mapping's
 * header line names the file, its Rss line follows). */
static long mapped_rss_kb(const char *path) {
        FILE *f = fopen("/proc/self/smaps", "re");
        char line[1024];
        bool in = false;
        long kb = 0, v;

        CHECK(f != NULL);
        while (fgets(line, sizeof(line), f)) {
                if (strstr(line, path))
                        in = true;
                else if (in && sscanf(line, "Rss: %ld kB", &v) == 1) {
                        kb += v;
                        in = false;
                }
        }
        fclose(f);
        return kb;
}

/* Pages that reads made resident in the process go back on request
 * (they stay in the page cache), and later reads still work. */
static void test_lmdb_release_memory(void) {
        static struct cas_node n[200];
        static char names[200][8];
        struct cas_directory *dirs[64];
        struct backend b = {};
        char data[PATH_MAX];

        open_lmdb(&b);
        for (size_t d = 0; d < ELEMENTSOF(dirs); d++) {
                for (size_t i = 0; i < ELEMENTSOF(n); i++) {
                        snprintf(names[i], sizeof(names[i]), "%03zu%03zu", d, i);
                        n[i] = (struct cas_node){ .kind = CAS_NODE_FILE, .name = names[i], .name_len = 6,
                                                  .digest = cas_digest_empty };
                }
                dirs[d] = mkdir_nodes(n, ELEMENTSOF(n));
        }
        CHECK_OK(cas_dir_put(b.s, dirs, ELEMENTSOF(dirs), 0, NULL));
        snprintf(data, sizeof(data), "%s/data.mdb", b.path);
        for (size_t d = 0; d < ELEMENTSOF(dirs); d++)
                check_get(b.s, dirs[d]);
        long before = mapped_rss_kb(data);
        CHECK(before >= 4 * 64); /* 64 Directories of about 8 KiB */
        cas_dir_release_memory(b.s);
        CHECK(mapped_rss_kb(data) < before / 4);
        for (size_t d = 0; d < ELEMENTSOF(dirs); d++) {
                check_get(b.s, dirs[d]);
                cas_directory_free(dirs[d]);
        }
        CHECK(mapped_rss_kb(data) > 0);
        close_backend(&b);
        /* a memory backend has nothing to give back */
        cas_dir_release_memory(NULL);
}

/* The disk fills up (here: the file size limit) during a batch: the put
 * fails as a whole, nothing of it is stored, and once there is room again
 * the same env takes the batch (a long-lived writer need not reopen). */
static void test_lmdb_disk_full(void) {
        struct backend b = {};
        struct cas_directory *dirs[2000];
        struct rlimit old, lim;
        struct stat st;
        char data[600];
        enum cas_verr why;
        int r;

        open_lmdb(&b);
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                struct cas_node n = { .kind = CAS_NODE_SYMLINK, .name = "l", .name_len = 1 };
                char target[200];

                n.target_len = (uint16_t) snprintf(target, sizeof(target), "%0190zu", i);
                n.target = target;
                dirs[i] = mkdir_nodes(&n, 1);
        }
        put_one(b.s, dirs[0]);
        snprintf(data, sizeof(data), "%s/data.mdb", b.path);
        CHECK_OK(stat(data, &st));
        CHECK_OK(getrlimit(RLIMIT_FSIZE, &old));
        lim = (struct rlimit){ st.st_size + 64 * 1024, old.rlim_max };
        signal(SIGXFSZ, SIG_IGN);
        CHECK_OK(setrlimit(RLIMIT_FSIZE, &lim));
        r = cas_dir_put(b.s, dirs + 1, ELEMENTSOF(dirs) - 1, 0, &why);
        CHECK_OK(setrlimit(RLIMIT_FSIZE, &old));
        signal(SIGXFSZ, SIG_DFL);
        /* LMDB reports a short write as EIO ("filesystem full?") */
        CHECK(r == -EFBIG || r == -ENOSPC || r == -EIO);
        for (size_t i = 1; i < ELEMENTSOF(dirs); i++)
                CHECK_EQ(cas_dir_stat(b.s, &dirs[i]->digest, NULL), -ENOENT);
        check_get(b.s, dirs[0]);
        CHECK_OK(cas_dir_put(b.s, dirs + 1, ELEMENTSOF(dirs) - 1, 0, &why));
        close_backend(&b);
        open_lmdb_at(&b, 0);
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                check_get(b.s, dirs[i]);
                cas_directory_free(dirs[i]);
        }
        close_backend(&b);
}

static void test_lmdb_errno(void) {
        CHECK_EQ(cas_lmdb_errno(0), 0);
        CHECK_EQ(cas_lmdb_errno(MDB_NOTFOUND), -ENOENT);
        CHECK_EQ(cas_lmdb_errno(MDB_MAP_FULL), -ENOSPC);
        CHECK_EQ(cas_lmdb_errno(MDB_CORRUPTED), -EBADMSG);
        CHECK_EQ(cas_lmdb_errno(MDB_KEYEXIST), -EEXIST);
        CHECK_EQ(cas_lmdb_errno(EACCES), -EACCES);
}

static int copy_value(void *userdata, const MDB_val *k, const MDB_val *v) {
        (void) k;
        CHECK(v->mv_size < 16);
        memcpy(userdata, v->mv_data, v->mv_size);
        ((char *) userdata)[v->mv_size] = 0;
        return 0;
}

/* puts one record, then fails: the write must leave nothing behind */
static int put_then_fail(void *userdata, MDB_txn *txn) {
        MDB_dbi *dbi = userdata;

        CHECK_OK(cas_lmdb_errno(mdb_put(txn, *dbi, &(MDB_val){ 1, "b" }, &(MDB_val){ 3, "two" }, 0)));
        return -EIO;
}

static void test_lmdb_txn_helpers(void) {
        struct backend b = {};
        MDB_dbi dbi;
        char got[16];

        open_lmdb(&b);
        CHECK_OK(cas_lmdb_dbi(b.db, "scratch", &dbi));
        CHECK_EQ(cas_lmdb_get(b.db, dbi, "a", 1, copy_value, got), -ENOENT);
        CHECK_OK(cas_lmdb_put(b.db, dbi, "a", 1, "one", 3));
        CHECK_OK(cas_lmdb_get(b.db, dbi, "a", 1, copy_value, got));
        CHECK_STREQ(got, "one");
        CHECK_EQ(cas_lmdb_write(b.db, put_then_fail, &dbi), -EIO);
        CHECK_EQ(cas_lmdb_get(b.db, dbi, "b", 1, copy_value, got), -ENOENT);
        CHECK_OK(cas_lmdb_del(b.db, dbi, "a", 1));
        CHECK_EQ(cas_lmdb_del(b.db, dbi, "a", 1), -ENOENT);
        CHECK_EQ(cas_lmdb_get(b.db, dbi, "a", 1, copy_value, got), -ENOENT);
        CHECK_OK(cas_lmdb_put(b.db, dbi, "c", 1, "three", 5));
        close_backend(&b);

        /* read-only: reads work, every write is -EROFS */
        open_lmdb_at(&b, CAS_STORE_READONLY);
        CHECK_OK(cas_lmdb_dbi(b.db, "scratch", &dbi));
        CHECK_OK(cas_lmdb_get(b.db, dbi, "c", 1, copy_value, got));
        CHECK_STREQ(got, "three");
        CHECK_EQ(cas_lmdb_put(b.db, dbi, "d", 1, "four", 4), -EROFS);
        CHECK_EQ(cas_lmdb_del(b.db, dbi, "c", 1), -EROFS);
        CHECK_EQ(cas_lmdb_write(b.db, put_then_fail, &dbi), -EROFS);
        close_backend(&b);
}

typedef void (*backend_test)(struct backend *b);

static const struct {
        const char *name;
        void (*open)(struct backend *b);
} backends[] = {
        { "memory", open_memory },
        { "lmdb", open_lmdb },
        { "postgresql", open_pg }, /* with $CASTORE_TEST_PG only */
};

static void run_all(const char *name, backend_test t) {
        for (size_t i = 0; i < ELEMENTSOF(backends); i++) {
                struct backend b = {};

                if (backends[i].open == open_pg && !test_pg_url())
                        continue;

                fprintf(stderr, "  %s (%s)\n", name, backends[i].name);
                backends[i].open(&b);
                t(&b);
                close_backend(&b);
        }
}

#define RUN_ALL(t) run_all(#t, t)

int main(void) {
        test_tmp_root("test-dirsvc", tmp_root, sizeof(tmp_root));
        if (!test_pg_url())
                fprintf(stderr, "  (the postgresql backend runs with $CASTORE_TEST_PG: test-postgres.sh sets it)\n");

        RUN_ALL(test_known_digests);
        RUN_ALL(test_missing_child);
        RUN_ALL(test_sizes);
        RUN_ALL(test_batch);
        RUN_ALL(test_recursive);
        RUN_ALL(test_walk_stop);
        RUN_ALL(test_list);
        RUN_ALL(test_remove);
        RUN_ALL(test_check_children_args);
        RUN(test_lmdb_corrupt);
        RUN(test_lmdb_persistence);
        RUN(test_lmdb_release_memory);
        RUN(test_lmdb_disk_full);
        RUN(test_lmdb_errno);
        RUN(test_lmdb_txn_helpers);

        remove_tree(tmp_root);
        return 0;
}
