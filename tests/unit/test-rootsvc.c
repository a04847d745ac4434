/* Unit tests for the named-root services (memory:// and LMDB): put, get,
 * replace, remove, listing in name order, name validation, persistence. */
#include <stdio.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/lmdb.h"
#include "castore/rootsvc.h"
#include "castore/store.h"
#include "test.h"

static char tmp_root[256];

struct backend {
        struct cas_root_service *s;
        struct cas_lmdb *db; /* LMDB only */
        char path[300];
};

static void open_memory(struct backend *b) {
        CHECK_OK(cas_root_memory_new(&b->s));
}

static int lmdb_counter;

static void open_lmdb_at(struct backend *b, unsigned flags) {
        CHECK_OK(cas_lmdb_open(b->path, flags, &b->db));
        CHECK_OK(cas_root_lmdb_new(b->db, &b->s));
}

static void open_lmdb(struct backend *b) {
        snprintf(b->path, sizeof(b->path), "%s/meta%d", tmp_root, lmdb_counter++);
        open_lmdb_at(b, CAS_STORE_CREATE);
}

static void close_backend(struct backend *b) {
        cas_root_service_free(b->s);
        b->s = NULL;
        cas_lmdb_close(b->db);
        b->db = NULL;
}

static struct cas_node file_node(const char *name, uint64_t size) {
        return (struct cas_node){ .kind = CAS_NODE_FILE, .name = name, .name_len = strlen(name),
                                  .digest = cas_digest_empty, .size = size, .executable = true };
}

static void test_put_get(struct backend *b) {
        struct cas_node n = file_node("hello", 0), got;
        struct cas_node sl = { .kind = CAS_NODE_SYMLINK, .name = "link", .name_len = 4, .target = "/x/y",
                               .target_len = 4 };
        struct cas_node dn = { .kind = CAS_NODE_DIRECTORY, .name = "tree", .name_len = 4,
                               .digest = cas_digest_empty, .size = 0 };
        void *mem;

        CHECK_EQ(cas_root_get(b->s, "hello", 5, &got, &mem), -ENOENT);
        CHECK_OK(cas_root_put(b->s, &n));
        CHECK_OK(cas_root_put(b->s, &sl));
        CHECK_OK(cas_root_put(b->s, &dn));
        CHECK_OK(cas_root_get(b->s, "hello", 5, &got, &mem));
        CHECK_EQ(got.kind, CAS_NODE_FILE);
        CHECK_EQ(got.name_len, 5);
        CHECK(memcmp(got.name, "hello", 5) == 0);
        CHECK(got.executable);
        CHECK(cas_digest_equal(&got.digest, &cas_digest_empty));
        free(mem);
        CHECK_OK(cas_root_get(b->s, "link", 4, &got, &mem));
        CHECK_EQ(got.kind, CAS_NODE_SYMLINK);
        CHECK_STREQ(got.target, "/x/y");
        free(mem);
        CHECK_OK(cas_root_get(b->s, "tree", 4, &got, &mem));
        CHECK_EQ(got.kind, CAS_NODE_DIRECTORY);
        free(mem);
        /* exact match only */
        CHECK_EQ(cas_root_get(b->s, "hell", 4, &got, &mem), -ENOENT);
        CHECK_EQ(cas_root_get(b->s, "hello!", 6, &got, &mem), -ENOENT);

        /* replace */
        n = file_node("hello", 42);
        n.executable = false;
        CHECK_OK(cas_root_put(b->s, &n));
        CHECK_OK(cas_root_get(b->s, "hello", 5, &got, &mem));
        CHECK_EQ(got.size, 42);
        CHECK(!got.executable);
        free(mem);

        /* remove */
        CHECK_OK(cas_root_remove(b->s, "hello", 5));
        CHECK_EQ(cas_root_remove(b->s, "hello", 5), -ENOENT);
        CHECK_EQ(cas_root_get(b->s, "hello", 5, &got, &mem), -ENOENT);
}

static void test_invalid(struct backend *b) {
        struct cas_node n = file_node("a/b", 0), got;
        void *mem;

        CHECK_EQ(cas_root_put(b->s, &n), -EINVAL);
        n = file_node("..", 0);
        CHECK_EQ(cas_root_put(b->s, &n), -EINVAL);
        n = file_node("", 0);
        CHECK_EQ(cas_root_put(b->s, &n), -EINVAL);
        CHECK_EQ(cas_root_get(b->s, "", 0, &got, &mem), -ENOENT);
        CHECK_EQ(cas_root_get(b->s, "a/b", 3, &got, &mem), -ENOENT);
        CHECK_EQ(cas_root_get(b->s, "a\0b", 3, &got, &mem), -ENOENT);
        CHECK_EQ(cas_root_remove(b->s, ".", 1), -ENOENT);
        /* control characters could rewrite a terminal's listing */
        n = file_node("evil\x1b[2J", 0);
        CHECK_EQ(cas_root_put(b->s, &n), -EINVAL);
        n = file_node("new\nline", 0);
        CHECK_EQ(cas_root_put(b->s, &n), -EINVAL);
        n = file_node("del\x7f", 0);
        CHECK_EQ(cas_root_put(b->s, &n), -EINVAL);
        CHECK_EQ(cas_root_get(b->s, "tab\t", 4, &got, &mem), -ENOENT);
        n = file_node("caf\xc3\xa9 ok", 0); /* UTF-8 and spaces are fine */
        CHECK_OK(cas_root_put(b->s, &n));
        CHECK_OK(cas_root_remove(b->s, n.name, n.name_len));
        CHECK_EQ(cas_root_put(NULL, &n), -EINVAL);
}

struct list_state {
        char names[8][8];
        int n, stop_after;
};

static int list_cb(void *userdata, const struct cas_node *n) {
        struct list_state *st = userdata;

        CHECK(st->n < 8);
        CHECK(n->name_len < 8);
        memcpy(st->names[st->n], n->name, n->name_len);
        st->names[st->n][n->name_len] = 0;
        st->n++;
        return st->stop_after && st->n == st->stop_after ? -ECANCELED : 0;
}

static void test_list(struct backend *b) {
        static const char *const names[] = { "b", "a", "\xff", "ab", "B", "a.b" };
        static const char *const sorted[] = { "B", "a", "a.b", "ab", "b", "\xff" };
        struct list_state st = {};

        CHECK_OK(cas_root_list(b->s, list_cb, &st));
        CHECK_EQ(st.n, 0);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                struct cas_node n = file_node(names[i], i);
                CHECK_OK(cas_root_put(b->s, &n));
        }
        CHECK_OK(cas_root_list(b->s, list_cb, &st));
        CHECK_EQ(st.n, 6);
        for (int i = 0; i < 6; i++)
                CHECK_STREQ(st.names[i], sorted[i]);
        st = (struct list_state){ .stop_after = 3 };
        CHECK_EQ(cas_root_list(b->s, list_cb, &st), -ECANCELED);
        CHECK_EQ(st.n, 3);
}

/* ---- LMDB only ---- */

static void test_lmdb_persistence(void) {
        struct backend b = {};
        struct cas_node n = file_node("kept", 7), got;
        void *mem;

        open_lmdb(&b);
        CHECK_OK(cas_root_put(b.s, &n));
        close_backend(&b);
        open_lmdb_at(&b, CAS_STORE_READONLY);
        CHECK_OK(cas_root_get(b.s, "kept", 4, &got, &mem));
        CHECK_EQ(got.size, 7);
        free(mem);
        CHECK_EQ(cas_root_put(b.s, &n), -EROFS);
        CHECK_EQ(cas_root_remove(b.s, "kept", 4), -EROFS);
        close_backend(&b);
}

/* A read-only opener (a mount daemon) sees roots another process adds
 * after it opened the env. */
static void test_lmdb_sees_later_roots(void) {
        struct backend b = {}, w = {};
        struct cas_node got;
        void *mem;
        pid_t pid;
        int status;

        open_lmdb(&w);
        close_backend(&w);
        snprintf(b.path, sizeof(b.path), "%s", w.path);
        open_lmdb_at(&b, CAS_STORE_READONLY);
        CHECK_EQ(cas_root_get(b.s, "later", 5, &got, &mem), -ENOENT);

        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                struct cas_node n = file_node("later", 3);
                open_lmdb_at(&w, 0);
                CHECK_OK(cas_root_put(w.s, &n));
                close_backend(&w);
                _exit(0);
        }
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_OK(cas_root_get(b.s, "later", 5, &got, &mem));
        CHECK_EQ(got.size, 3);
        free(mem);
        close_backend(&b);
}

static void test_lmdb_corrupt(void) {
        struct backend b = {};
        struct cas_node n = file_node("good", 1), got;
        MDB_txn *txn;
        MDB_dbi dbi;
        uint8_t *enc;
        size_t len;
        void *mem;

        open_lmdb(&b);
        CHECK_OK(cas_root_put(b.s, &n));
        n = file_node("zzz", 2);
        CHECK_OK(cas_root_put(b.s, &n));
        n = file_node("good", 1);
        CHECK_OK(cas_node_encode(&n, &enc, &len));
        CHECK_OK(cas_lmdb_dbi(b.db, "roots", &dbi));
        CHECK_OK(cas_lmdb_txn_begin(b.db, 0, &txn));
        /* a node stored under another name, and garbage */
        CHECK_OK(mdb_put(txn, dbi, &(MDB_val){ 5, "other" }, &(MDB_val){ len, enc }, 0));
        CHECK_OK(mdb_put(txn, dbi, &(MDB_val){ 4, "junk" }, &(MDB_val){ 3, "\xff\xff\xff" }, 0));
        CHECK_OK(mdb_txn_commit(txn));
        CHECK_EQ(cas_root_get(b.s, "other", 5, &got, &mem), -EBADMSG);
        CHECK_EQ(cas_root_get(b.s, "junk", 4, &got, &mem), -EBADMSG);
        CHECK_OK(cas_root_get(b.s, "good", 4, &got, &mem));
        free(mem);
        {
                /* corrupt records are skipped, the others still listed */
                struct list_state st = {};
                CHECK_EQ(cas_root_list(b.s, list_cb, &st), -EBADMSG);
                CHECK_EQ(st.n, 2);
                CHECK_STREQ(st.names[0], "good");
                CHECK_STREQ(st.names[1], "zzz");
        }
        free(enc);
        close_backend(&b);
}

typedef void (*backend_test)(struct backend *b);

static const struct {
        const char *name;
        void (*open)(struct backend *b);
} backends[] = {
        { "memory", open_memory },
        { "lmdb", open_lmdb },
};

static void run_all(const char *name, backend_test t) {
        for (size_t i = 0; i < ELEMENTSOF(backends); i++) {
                struct backend b = {};

                fprintf(stderr, "  %s (%s)\n", name, backends[i].name);
                backends[i].open(&b);
                t(&b);
                close_backend(&b);
        }
}

#define RUN_ALL(t) run_all(#t, t)

int main(void) {
        test_tmp_root("test-rootsvc", tmp_root, sizeof(tmp_root));

        RUN_ALL(test_put_get);
        RUN_ALL(test_invalid);
        RUN_ALL(test_list);
        RUN(test_lmdb_persistence);
        RUN(test_lmdb_sees_later_roots);
        RUN(test_lmdb_corrupt);

        remove_tree(tmp_root);
        return 0;
}
