/* Unit tests for the garbage collector (castore/gc.h, store/gc.h): the
 * store lock; random trees, roots, PathInfos and removals, after which gc
 * keeps exactly what is reachable and every remaining root renders the
 * same NAR (memory and local stores, fixed seeds); --dry-run counts the
 * same and removes nothing; stale temporaries and orphan outboards; gc in
 * a loop beside imports of overlapping trees. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/gc.h"
#include "castore/export.h"
#include "store/check.h"
#include "store/gc.h"
#include "store/nar.h"
#include "store/nix_import.h"
#include "test.h"

static char tmp_root[256];
static int store_counter;

/* ---- a small deterministic generator ---- */

static uint64_t rng_state;

static uint64_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static size_t rnd_below(size_t n) {
        return n ? rnd() % n : 0;
}

static void store_open(const char *kind, struct cas_store **ret, struct nix_pathinfo_service **ret_pis,
                       char *path, size_t size) {
        if (strcmp(kind, "memory") == 0)
                snprintf(path, size, "memory://");
        else
                snprintf(path, size, "%s/store%d", tmp_root, store_counter++);
        CHECK_OK(cas_store_open(path, CAS_STORE_CREATE, ret));
        CHECK_OK(nix_pathinfo_open_store(*ret, ret_pis));
}

/* ---- the lock ---- */

static void test_lock_on(const char *kind) {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct cas_store_lock *a, *b, *x;
        char path[300];

        store_open(kind, &store, &pis, path, sizeof(path));
        CHECK_OK(cas_store_lock(store, false, false, &a));
        CHECK_OK(cas_store_lock(store, false, false, &b)); /* shared holds nest */
        CHECK_EQ(cas_store_lock(store, true, false, &x), -EBUSY);
        cas_store_unlock(a);
        CHECK_EQ(cas_store_lock(store, true, false, &x), -EBUSY);
        cas_store_unlock(b);
        CHECK_OK(cas_store_lock(store, true, false, &x));
        CHECK_EQ(cas_store_lock(store, false, false, &a), -EBUSY);
        CHECK_EQ(cas_store_lock(store, true, false, &a), -EBUSY);
        cas_store_unlock(x);
        CHECK_OK(cas_store_lock(store, true, false, &x));
        cas_store_unlock(x);
        nix_pathinfo_service_free(pis);
        cas_store_free(store);
}

static void test_lock(void) {
        test_lock_on("memory");
        test_lock_on("local");
}

/* ---- the property test: a model of what is stored and what reaches it ---- */

#define MAX_BLOBS 40
#define MAX_DIRS 30
#define MAX_ENTRIES 6
#define MAX_ROOTS 24

struct root {
        bool is_dir, named, alive;
        size_t idx;
        char name[64];
        struct nix_store_path sp; /* !named: the PathInfo's */
        uint8_t nar_sha[NIX_SHA256_LEN];
        struct cas_node node;
};

struct model {
        size_t n_blobs, n_dirs, n_roots;
        struct cas_digest blob[MAX_BLOBS];
        uint64_t blob_size[MAX_BLOBS];
        struct cas_digest dir[MAX_DIRS];
        uint64_t dir_size[MAX_DIRS];
        size_t dir_bytes[MAX_DIRS];
        size_t child_dir[MAX_DIRS][MAX_ENTRIES], n_child_dirs[MAX_DIRS];
        size_t child_blob[MAX_DIRS][MAX_ENTRIES], n_child_blobs[MAX_DIRS];
        struct root roots[MAX_ROOTS];
};

/* A set of digests small enough to search linearly. */
struct dset {
        size_t n;
        struct cas_digest d[MAX_BLOBS + MAX_DIRS + 8];
};

static bool dset_has(const struct dset *s, const struct cas_digest *d) {
        for (size_t i = 0; i < s->n; i++)
                if (cas_digest_equal(&s->d[i], d))
                        return true;
        return false;
}

static bool dset_add(struct dset *s, const struct cas_digest *d) {
        if (dset_has(s, d))
                return false;
        CHECK(s->n < sizeof(s->d) / sizeof(s->d[0]));
        s->d[s->n++] = *d;
        return true;
}

static void make_blobs(struct model *m, struct cas_store *store, int round) {
        m->n_blobs = 10 + rnd_below(MAX_BLOBS - 10);
        for (size_t i = 0; i < m->n_blobs; i++) {
                /* some over 16 KiB, so the local store keeps an outboard */
                size_t len = rnd_below(4) == 0 ? 16384 + rnd_below(30000) : 16 + rnd_below(2000);
                uint8_t *buf = malloc(len);

                CHECK(buf);
                for (size_t k = 0; k < len; k++)
                        buf[k] = (uint8_t) rnd();
                char tag[64];

                snprintf(tag, sizeof(tag), "b%d.%zu", round, i); /* unique content */
                memcpy(buf, tag, MIN(strlen(tag), len));
                CHECK_OK(cas_blob_put(store->blobs, buf, len, 0, &m->blob[i]));
                m->blob_size[i] = len;
                free(buf);
        }
}

/* Directory i: files from the blob pool, earlier directories (shared
 * subtrees), a symlink now and then. */
static void make_dir(struct model *m, struct cas_store *store, size_t i) {
        struct cas_node e[MAX_ENTRIES];
        char names[MAX_ENTRIES][24]; /* "e" and any size_t */
        size_t n = 1 + rnd_below(MAX_ENTRIES);
        struct cas_directory *d;
        uint8_t *enc;

        m->n_child_dirs[i] = m->n_child_blobs[i] = 0;
        for (size_t k = 0; k < n; k++) {
                size_t what = rnd_below(8);

                snprintf(names[k], sizeof(names[k]), "e%zu", k);
                e[k] = (struct cas_node){ .name = names[k], .name_len = strlen(names[k]) };
                if (what < 3 && i > 0) {
                        size_t c = rnd_below(i);

                        e[k].kind = CAS_NODE_DIRECTORY;
                        e[k].digest = m->dir[c];
                        e[k].size = m->dir_size[c];
                        m->child_dir[i][m->n_child_dirs[i]++] = c;
                } else if (what == 7) {
                        e[k].kind = CAS_NODE_SYMLINK;
                        e[k].target = "target";
                        e[k].target_len = 6;
                } else {
                        size_t b = rnd_below(m->n_blobs);

                        e[k].kind = CAS_NODE_FILE;
                        e[k].digest = m->blob[b];
                        e[k].size = m->blob_size[b];
                        e[k].executable = rnd_below(2);
                        m->child_blob[i][m->n_child_blobs[i]++] = b;
                }
        }
        CHECK_OK(cas_directory_new(e, n, &d, NULL));
        CHECK_OK(cas_dir_put(store->dirs, &d, 1, 0, NULL));
        m->dir[i] = d->digest;
        m->dir_size[i] = d->size;
        CHECK_OK(cas_directory_encode(d, &enc, &m->dir_bytes[i]));
        free(enc);
        cas_directory_free(d);
}

static void make_roots(struct model *m, struct cas_store *store, struct nix_pathinfo_service *pis, int round) {
        m->n_roots = 1 + rnd_below(MAX_ROOTS);
        for (size_t i = 0; i < m->n_roots; i++) {
                struct root *r = &m->roots[i];
                uint64_t nar_size;

                r->is_dir = rnd_below(5) != 0;
                r->idx = r->is_dir ? rnd_below(m->n_dirs) : rnd_below(m->n_blobs);
                r->named = rnd_below(2);
                r->alive = true;
                snprintf(r->name, sizeof(r->name), "r%d-%zu", round, i);
                r->node = (struct cas_node){
                        .kind = r->is_dir ? CAS_NODE_DIRECTORY : CAS_NODE_FILE,
                        .name = r->name,
                        .name_len = strlen(r->name),
                        .digest = r->is_dir ? m->dir[r->idx] : m->blob[r->idx],
                        .size = r->is_dir ? m->dir_size[r->idx] : m->blob_size[r->idx],
                };
                CHECK_OK(nar_render(store->blobs, store->dirs, &r->node, 0, NULL, NULL, &nar_size, r->nar_sha));
                if (r->named)
                        CHECK_OK(cas_root_put(store->roots, &r->node));
                else
                        CHECK_OK(nix_register_nar(pis, &r->node, r->name, nar_size, r->nar_sha, &r->sp));
        }
}

static void remove_some_roots(struct model *m, struct cas_store *store, struct nix_pathinfo_service *pis) {
        for (size_t i = 0; i < m->n_roots; i++) {
                struct root *r = &m->roots[i];

                if (rnd_below(3) != 0)
                        continue;
                if (r->named)
                        CHECK_OK(cas_root_remove(store->roots, r->name, strlen(r->name)));
                else
                        CHECK_OK(nix_pathinfo_remove(pis, r->sp.digest));
                r->alive = false;
        }
}

/* What the model says is reachable, and what that leaves as garbage. */
static void expected(const struct model *m, struct dset *dirs, struct dset *blobs, struct cas_gc_stats *ret) {
        struct dset all_dirs = {}, all_blobs = {};
        size_t stack[MAX_DIRS * MAX_ENTRIES + MAX_ROOTS], n = 0;

        *dirs = (struct dset){};
        *blobs = (struct dset){};
        for (size_t i = 0; i < m->n_roots; i++) {
                if (!m->roots[i].alive)
                        continue;
                if (!m->roots[i].is_dir)
                        dset_add(blobs, &m->blob[m->roots[i].idx]);
                else if (dset_add(dirs, &m->dir[m->roots[i].idx]))
                        stack[n++] = m->roots[i].idx;
        }
        while (n > 0) {
                size_t d = stack[--n];

                for (size_t k = 0; k < m->n_child_blobs[d]; k++)
                        dset_add(blobs, &m->blob[m->child_blob[d][k]]);
                for (size_t k = 0; k < m->n_child_dirs[d]; k++)
                        if (dset_add(dirs, &m->dir[m->child_dir[d][k]]))
                                stack[n++] = m->child_dir[d][k];
        }
        *ret = (struct cas_gc_stats){ .live_directories = dirs->n, .live_blobs = blobs->n };
        for (size_t i = 0; i < m->n_dirs; i++)
                if (dset_add(&all_dirs, &m->dir[i]) && !dset_has(dirs, &m->dir[i])) {
                        ret->directories++;
                        ret->directory_bytes += m->dir_bytes[i];
                }
        for (size_t i = 0; i < m->n_blobs; i++)
                if (dset_add(&all_blobs, &m->blob[i]) && !dset_has(blobs, &m->blob[i])) {
                        ret->blobs++;
                        ret->blob_bytes += m->blob_size[i];
                }
}

static int list_dir(void *userdata, const struct cas_digest *d, const void *data, size_t len) {
        (void) data;
        (void) len;
        CHECK(dset_add(userdata, d));
        return 0;
}

static int list_blob(void *userdata, const struct cas_digest *d) {
        CHECK(dset_add(userdata, d));
        return 0;
}

static void stored(struct cas_store *store, struct dset *dirs, struct dset *blobs) {
        *dirs = (struct dset){};
        *blobs = (struct dset){};
        CHECK_OK(cas_dir_list(store->dirs, list_dir, dirs));
        CHECK_OK(cas_blob_list(store->blobs, list_blob, blobs));
}

static bool dset_same(const struct dset *a, const struct dset *b) {
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!dset_has(b, &a->d[i]))
                        return false;
        return true;
}

static void check_stats(const struct cas_gc_stats *got, const struct cas_gc_stats *want) {
        CHECK_EQ(got->live_directories, want->live_directories);
        CHECK_EQ(got->live_blobs, want->live_blobs);
        CHECK_EQ(got->directories, want->directories);
        CHECK_EQ(got->directory_bytes, want->directory_bytes);
        CHECK_EQ(got->blobs, want->blobs);
        CHECK_EQ(got->blob_bytes, want->blob_bytes);
}

static void property_round(const char *kind, int round) {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct model *m = calloc(1, sizeof(*m));
        struct dset want_dirs, want_blobs, have_dirs, have_blobs, before_dirs, before_blobs;
        struct cas_gc_stats want, dry, st;
        struct cas_gc_opts dry_run = { .dry_run = true };
        char path[300];

        CHECK(m);
        store_open(kind, &store, &pis, path, sizeof(path));
        make_blobs(m, store, round);
        m->n_dirs = 1 + rnd_below(MAX_DIRS);
        for (size_t i = 0; i < m->n_dirs; i++)
                make_dir(m, store, i);
        make_roots(m, store, pis, round);
        remove_some_roots(m, store, pis);
        expected(m, &want_dirs, &want_blobs, &want);

        /* a dry run counts what the real one removes, and removes nothing */
        stored(store, &before_dirs, &before_blobs);
        CHECK_OK(nix_gc_store(store, pis, &dry_run, &dry));
        check_stats(&dry, &want);
        stored(store, &have_dirs, &have_blobs);
        CHECK(dset_same(&have_dirs, &before_dirs));
        CHECK(dset_same(&have_blobs, &before_blobs));

        CHECK_OK(nix_gc_store(store, pis, NULL, &st));
        check_stats(&st, &want);
        CHECK_EQ(st.temporaries, 0);
        stored(store, &have_dirs, &have_blobs);
        CHECK(dset_same(&have_dirs, &want_dirs));
        CHECK(dset_same(&have_blobs, &want_blobs));

        /* every remaining root renders the NAR it did (every byte verified) */
        for (size_t i = 0; i < m->n_roots; i++) {
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t size;

                if (!m->roots[i].alive)
                        continue;
                CHECK_OK(nar_render(store->blobs, store->dirs, &m->roots[i].node, 0, NULL, NULL, &size, sha));
                CHECK(memcmp(sha, m->roots[i].nar_sha, NIX_SHA256_LEN) == 0);
        }
        /* a second collection finds nothing */
        CHECK_OK(nix_gc_store(store, pis, NULL, &st));
        CHECK_EQ(st.directories + st.blobs + st.temporaries, 0);

        nix_pathinfo_service_free(pis);
        cas_store_free(store);
        free(m);
}

static void test_property(void) {
        rng_state = 0x9e3779b97f4a7c15ULL;
        for (int round = 0; round < 50; round++)
                property_round("memory", round);
        for (int round = 50; round < 60; round++)
                property_round("local", round);
}

/* ---- stale temporaries and orphan outboards (local store) ---- */

static void write_file(const char *path, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        char buf[256] = { 0 };

        CHECK(fd >= 0);
        CHECK(len <= sizeof(buf));
        CHECK_EQ(write(fd, buf, len), (ssize_t) len);
        close(fd);
}

static bool exists(const char *path) {
        return access(path, F_OK) == 0;
}

static void test_temporaries(void) {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct cas_blob_service *other;
        struct cas_gc_stats dry, st;
        struct cas_gc_opts dry_run = { .dry_run = true };
        struct cas_digest big, kept, orphan, pending;
        char path[300], p[4][600], ob[600], blobs[400], tmp[400], hex[CAS_DIGEST_HEX_LEN + 1];
        static uint8_t buf[20000];
        uint64_t size;

        store_open("local", &store, &pis, path, sizeof(path));
        memset(buf, 'x', sizeof(buf));
        CHECK_OK(cas_blob_put(store->blobs, buf, sizeof(buf), 0, &big)); /* garbage with an outboard */
        CHECK_OK(cas_blob_put(store->blobs, "kept", 4, 0, &kept));
        struct cas_node root = { .kind = CAS_NODE_FILE, .name = "k", .name_len = 1, .digest = kept, .size = 4 };
        CHECK_OK(cas_root_put(store->roots, &root));

        /* a live writer's deferred blob: its temporary is not touched
         * (written first: a writer cleans up after dead ones itself) */
        snprintf(blobs, sizeof(blobs), "%s/blobs", path);
        snprintf(tmp, sizeof(tmp), "%s/tmp", path);
        CHECK_OK(cas_blob_local_new(blobs, tmp, &other));
        CHECK_OK(cas_blob_put(other, "pending", 7, CAS_BLOB_DEFER_SYNC, &pending));

        /* a dead writer without a lock file, one whose lock nobody holds */
        snprintf(p[0], sizeof(p[0]), "%s/tmp/123-0123456789abcdef.0", path);
        snprintf(p[1], sizeof(p[1]), "%s/tmp/124-00000000000000aa.lock", path);
        snprintf(p[2], sizeof(p[2]), "%s/tmp/124-00000000000000aa.3", path);
        write_file(p[0], 100);
        write_file(p[1], 0);
        write_file(p[2], 50);
        /* an outboard whose blob never arrived */
        cas_digest_of("never stored", 12, &orphan);
        cas_digest_to_hex(&orphan, hex);
        snprintf(p[3], sizeof(p[3]), "%s/blobs/%.2s", path, hex);
        (void) mkdir(p[3], 0755);
        snprintf(p[3], sizeof(p[3]), "%s/blobs/%.2s/%s.ob", path, hex, hex);
        write_file(p[3], 64);
        cas_digest_to_hex(&big, hex);
        snprintf(ob, sizeof(ob), "%s/blobs/%.2s/%s.ob", path, hex, hex);
        CHECK(exists(ob));


        CHECK_OK(nix_gc_store(store, pis, &dry_run, &dry));
        CHECK_EQ(dry.blobs, 1);
        CHECK_EQ(dry.blob_bytes, sizeof(buf));
        CHECK_EQ(dry.temporaries, 4);
        CHECK_EQ(dry.temporary_bytes, 100 + 50 + 64);
        for (int i = 0; i < 4; i++)
                CHECK(exists(p[i]));
        CHECK_OK(cas_blob_stat(store->blobs, &big, &size));

        CHECK_OK(nix_gc_store(store, pis, NULL, &st));
        CHECK_EQ(st.blobs, dry.blobs);
        CHECK_EQ(st.blob_bytes, dry.blob_bytes);
        CHECK_EQ(st.temporaries, dry.temporaries);
        CHECK_EQ(st.temporary_bytes, dry.temporary_bytes);
        for (int i = 0; i < 4; i++)
                CHECK(!exists(p[i]));
        CHECK(!exists(ob));
        CHECK_EQ(cas_blob_stat(store->blobs, &big, &size), -ENOENT);
        CHECK_OK(cas_blob_stat(store->blobs, &kept, &size));

        /* the live writer's blob arrives whole */
        CHECK_OK(cas_blob_sync(other));
        CHECK_OK(cas_blob_stat(store->blobs, &pending, &size));
        CHECK_EQ(size, 7);
        cas_blob_service_free(other);
        nix_pathinfo_service_free(pis);
        cas_store_free(store);
}

/* A directory a root refers to is missing: nothing is removed. */
static void test_refuses_broken_store(void) {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        struct cas_gc_stats st;
        struct cas_digest garbage, missing;
        char path[300];
        uint64_t size;

        store_open("memory", &store, &pis, path, sizeof(path));
        CHECK_OK(cas_blob_put(store->blobs, "garbage", 7, 0, &garbage));
        cas_digest_of("no such directory", 17, &missing);
        struct cas_node root = { .kind = CAS_NODE_DIRECTORY, .name = "x", .name_len = 1, .digest = missing, .size = 1 };
        CHECK_OK(cas_root_put(store->roots, &root));
        CHECK_EQ(nix_gc_store(store, pis, NULL, &st), -ENOENT);
        CHECK_OK(cas_blob_stat(store->blobs, &garbage, &size));
        nix_pathinfo_service_free(pis);
        cas_store_free(store);
}

/* ---- gc in a loop beside imports of overlapping trees ---- */

#define SRC_FILES 24

static void make_source(const char *dir, int which) {
        char p[1200], sub[1024];

        CHECK_EQ(mkdir(dir, 0755), 0);
        snprintf(sub, sizeof(sub), "%s/sub", dir);
        CHECK_EQ(mkdir(sub, 0755), 0);
        for (int i = 0; i < SRC_FILES; i++) {
                /* half the files and all of sub/ are the same in both trees */
                bool shared = i % 2 == 0;
                size_t len = i % 6 == 0 ? 100000 + i : 100 + 37 * i;
                char *buf = malloc(len);
                int fd;

                CHECK(buf);
                for (size_t k = 0; k < len; k++)
                        buf[k] = (char) (k * 31 + i + (shared ? 0 : 7 * (which + 1)));
                snprintf(p, sizeof(p), "%s/f%d", dir, i);
                fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
                CHECK(fd >= 0);
                CHECK_EQ(write(fd, buf, len), (ssize_t) len);
                close(fd);
                snprintf(p, sizeof(p), "%s/f%d", sub, i);
                fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
                CHECK(fd >= 0);
                CHECK_EQ(write(fd, buf, len / 2 + 1), (ssize_t) (len / 2 + 1));
                close(fd);
                free(buf);
        }
}

struct race {
        struct cas_store *store;
        struct nix_pathinfo_service *pis;
        atomic_bool done;
        unsigned gc_runs;
        uint64_t freed;
};

static void print_problem(void *userdata, const struct cas_problem *p) {
        (void) userdata;
        fprintf(stderr, "    problem: %s\n", p->message);
}

static void *gc_loop(void *p) {
        struct race *x = p;

        while (!atomic_load(&x->done)) {
                struct cas_gc_stats st;

                CHECK_OK(nix_gc_store(x->store, x->pis, NULL, &st));
                x->gc_runs++;
                x->freed += st.blobs + st.directories;
        }
        return NULL;
}

static void test_concurrent_on(const char *kind) {
        struct race x = {};
        struct nix_check_stats cs;
        struct cas_gc_stats st;
        char path[300], src[2][400], name[2][8], out[600], cmd[2400];
        uint8_t want_sha[2][NIX_SHA256_LEN];
        struct nix_import_result res[2] = {};
        bool have[2] = { false, false };
        pthread_t t;

        store_open(kind, &x.store, &x.pis, path, sizeof(path));
        for (int w = 0; w < 2; w++) {
                struct cas_node node;
                void *mem = NULL;
                uint64_t size;

                snprintf(src[w], sizeof(src[w]), "%s/src%d-%d", tmp_root, store_counter, w);
                snprintf(name[w], sizeof(name[w]), "t%d", w);
                make_source(src[w], w);
                CHECK_OK(nar_hash_local(src[w], false, &size, want_sha[w], &node, &mem));
                free(mem);
        }
        store_counter++;
        CHECK_EQ(pthread_create(&t, NULL, gc_loop, &x), 0);
        for (int i = 0; i < 30; i++) {
                int w = i % 2;
                struct nix_import_opts o = { .import.threads = 2 };
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t size;

                /* make both trees garbage: the import dedups against
                 * blobs and directories a collection wants to remove */
                for (int k = 0; k < 2; k++)
                        if (have[k]) {
                                CHECK_OK(cas_root_remove(x.store->roots, name[k], 2));
                                CHECK_OK(nix_pathinfo_remove(x.pis, res[k].store_path.digest));
                                free(res[k].mem);
                                have[k] = false;
                        }
                CHECK_OK(nix_import_tree(x.store, x.pis, src[w], name[w], &o, &res[w]));
                have[w] = true;
                CHECK_OK(nar_render(x.store->blobs, x.store->dirs, &res[w].root, 0, NULL, NULL, &size, sha));
                CHECK(memcmp(sha, want_sha[w], NIX_SHA256_LEN) == 0);
        }
        /* and both at the end */
        for (int w = 0; w < 2; w++)
                if (!have[w]) {
                        CHECK_OK(nix_import_tree(x.store, x.pis, src[w], name[w], NULL, &res[w]));
                        have[w] = true;
                }
        atomic_store(&x.done, true);
        pthread_join(t, NULL);
        fprintf(stderr, "    %s: %u collections beside the imports, %llu objects freed\n", kind, x.gc_runs,
                (unsigned long long) x.freed);
        CHECK(x.gc_runs > 0);

        CHECK_OK(nix_gc_store(x.store, x.pis, NULL, &st));
        CHECK_OK(nix_check_store(x.store, x.pis, NULL, print_problem, NULL, &cs));
        CHECK_EQ(cs.cas.problems, 0);
        for (int w = 0; w < 2; w++) {
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t size;

                CHECK_OK(nar_render(x.store->blobs, x.store->dirs, &res[w].root, 0, NULL, NULL, &size, sha));
                CHECK(memcmp(sha, want_sha[w], NIX_SHA256_LEN) == 0);
                snprintf(out, sizeof(out), "%s/out%d-%d", tmp_root, store_counter, w);
                CHECK_OK(cas_export_tree(x.store, &res[w].root, out, 0, NULL));
                snprintf(cmd, sizeof(cmd), "diff -r '%s' '%s' >&2", src[w], out);
                CHECK_EQ(system(cmd), 0);
                free(res[w].mem);
        }
        store_counter++;
        nix_pathinfo_service_free(x.pis);
        cas_store_free(x.store);
}

static void test_concurrent(void) {
        test_concurrent_on("memory");
        test_concurrent_on("local");
}

int main(void) {
        test_tmp_root("test-gc", tmp_root, sizeof(tmp_root));

        RUN(test_lock);
        RUN(test_property);
        RUN(test_temporaries);
        RUN(test_refuses_broken_store);
        RUN(test_concurrent);

        remove_tree(tmp_root);
        return *test_exit_code();
}
