/* Unit tests of castore/pg.c and the PostgreSQL directory backend beyond
 * the contract that test-dirsvc and test-pathinfo run on every backend:
 * password masking and binary arrays (always), and against the database
 * of $CASTORE_TEST_PG: damaged rows, a lost edge, the schema version
 * check, concurrent puts of overlapping closures, an unreachable server. */
#include <pthread.h>
#include <time.h>

#include "castore/dirsvc.h"
#include "test-pg.h"

static struct cas_directory *mkdir_nodes(const struct cas_node *n, size_t count) {
        struct cas_directory *d = NULL;
        CHECK_OK(cas_directory_new(n, count, &d, NULL));
        return d;
}

static struct cas_directory *leaf(const char *name) {
        struct cas_node n = { .kind = CAS_NODE_SYMLINK, .name = name, .name_len = strlen(name), .target = "t",
                              .target_len = 1 };
        return mkdir_nodes(&n, 1);
}

static struct cas_directory *parent(const struct cas_directory *a, const struct cas_directory *b) {
        struct cas_node n[2] = {
                { .kind = CAS_NODE_DIRECTORY, .name = "a", .name_len = 1, .digest = a->digest, .size = a->size },
        };
        if (b)
                n[1] = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .name = "b", .name_len = 1,
                                          .digest = b->digest, .size = b->size };
        return mkdir_nodes(n, b ? 2 : 1);
}

static void test_mask(void) {
        static const char *const cases[][2] = {
                { "postgresql://u:secret@host/db", "postgresql://u:***@host/db" },
                { "postgres://u@host/db?password=secret&sslmode=disable",
                  "postgres://u@host/db?password=***&sslmode=disable" },
                { "postgresql:///db?host=/run/pg&xpassword=1&password=s", "postgresql:///db?host=/run/pg&xpassword=1&password=***" },
                { "postgresql://u:@h", "postgresql://u:***@h" },
                { "postgresql://h:5432/db", "postgresql://h:5432/db" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *m = cas_pg_url_masked(cases[i][0]);
                CHECK_STREQ(m, cases[i][1]);
                free(m);
        }
        CHECK(cas_pg_url_is("postgres://x"));
        CHECK(cas_pg_url_is("postgresql://x"));
        CHECK(!cas_pg_url_is("postgresqlx://x"));
        CHECK(!cas_pg_url_is(NULL));
}

static void test_array(void) {
        static const uint8_t want[] = { 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 2, 0, 0, 0, 1,
                                        0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0 };
        struct cas_pg_array a;

        cas_pg_array_init(&a, CAS_PG_OID_BYTEA);
        cas_pg_array_add(&a, "ab", 2);
        cas_pg_array_add(&a, "", 0);
        CHECK_OK(cas_pg_array_finish(&a));
        CHECK_EQ(a.len, sizeof(want));
        CHECK(memcmp(a.buf, want, sizeof(want)) == 0);
        cas_pg_array_reset(&a, CAS_PG_OID_INT8);
        CHECK_OK(cas_pg_array_finish(&a));
        CHECK_EQ(a.len, 12); /* empty: no dimensions */
        CHECK_EQ(a.buf[11], 20);
        cas_pg_array_done(&a);
}

static void test_bad_url(void) {
        struct cas_pg *pg = NULL;
        CHECK_EQ(cas_pg_open("postgresql://h/db?nosuchoption=1", 0, &pg), -EINVAL);
        CHECK_EQ(cas_pg_open("grpc+unix:///x", 0, &pg), -EINVAL);
}

/* No server there: refused after the bounded retries, in seconds. */
static void test_unreachable(void) {
        struct cas_pg *pg = NULL;
        struct timespec t0, t1;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_EQ(cas_pg_open("postgresql://u:pw@/db?host=/nonexistent-castore-dir", 0, &pg), -ECONNREFUSED);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK(t1.tv_sec - t0.tv_sec < 15);
}

static char *hex_of(const struct cas_digest *d, char buf[2 * CAS_DIGEST_LEN + 1]) {
        for (size_t i = 0; i < CAS_DIGEST_LEN; i++)
                sprintf(buf + 2 * i, "%02x", d->b[i]);
        return buf;
}

/* Runs before || '\x<hex of d>' || after. */
static void sql_on(const char *before, const struct cas_digest *d, const char *after) {
        char hex[2 * CAS_DIGEST_LEN + 1], sql[512];
        snprintf(sql, sizeof(sql), "%s'\\x%s'%s", before, hex_of(d, hex), after);
        test_pg_sql(sql);
}

static int count_cb(void *userdata, const struct cas_directory *d) {
        (*(int *) userdata)++;
        return 0;
}

static int count_list(void *userdata, const struct cas_digest *d, const void *data, size_t len) {
        (*(int *) userdata)++;
        return 0;
}

static void test_damaged_rows(void) {
        _cleanup_(cas_directory_freep) struct cas_directory *a = leaf("x"), *b = leaf("y"), *p = parent(a, b),
                                                            *top = parent(p, NULL), *got = NULL;
        struct cas_directory *all[] = { a, b, p, top };
        struct cas_dir_service *s;
        struct cas_pg *pg;
        uint64_t size;
        enum cas_verr why;
        int n = 0;

        test_pg_reset();
        CHECK_OK(cas_pg_open(test_pg_url(), 0, &pg));
        CHECK_OK(cas_dir_pg_new(pg, &s));
        cas_pg_unref(pg);
        CHECK_OK(cas_dir_put(s, all, 4, 0, NULL));
        CHECK_OK(cas_dir_get_recursive(s, &top->digest, count_cb, &n));
        CHECK_EQ(n, 4);

        /* a flipped byte, a wrong size, a row under another key */
        sql_on("UPDATE directories SET data = overlay(data placing '\\xff' from 3 for 1) WHERE digest = ",
               &a->digest, "");
        CHECK_EQ(cas_dir_get(s, &a->digest, &got), -EBADMSG);
        n = 0;
        CHECK_EQ(cas_dir_get_recursive(s, &top->digest, count_cb, &n), -EBADMSG);
        CHECK_OK(cas_dir_put(s, &a, 1, 0, NULL)); /* repaired */
        CHECK_OK(cas_dir_get(s, &a->digest, &got));
        cas_directory_free(TAKE_PTR(got));
        sql_on("UPDATE directories SET size = 7 WHERE digest = ", &b->digest, "");
        CHECK_EQ(cas_dir_get(s, &b->digest, &got), -EBADMSG);
        CHECK_OK(cas_dir_stat(s, &b->digest, &size));
        CHECK_EQ(size, 7);
        CHECK_OK(cas_dir_put(s, all, 4, 0, NULL)); /* a batch repairs too */
        CHECK_OK(cas_dir_get(s, &b->digest, &got));
        cas_directory_free(TAKE_PTR(got));
        {
                char hex[2 * CAS_DIGEST_LEN + 1], sql[512];
                snprintf(sql, sizeof(sql), "UPDATE directories SET data = (SELECT data FROM directories WHERE "
                         "digest = '\\x%s') WHERE digest = '\\x", hex_of(&a->digest, hex));
                strcat(sql, hex_of(&top->digest, hex));
                strcat(sql, "'");
                test_pg_sql(sql);
        }
        CHECK_EQ(cas_dir_get(s, &top->digest, &got), -EBADMSG); /* valid, but another directory */
        CHECK_OK(cas_dir_put(s, all, 4, 0, NULL));

        /* a row whose key cannot be a digest: listings skip it and report */
        test_pg_sql("INSERT INTO directories VALUES ('\\x0102', 1, '\\x')");
        n = 0;
        CHECK_EQ(cas_dir_list(s, count_list, &n), -EBADMSG);
        CHECK_EQ(n, 4);
        test_pg_sql("DELETE FROM directories WHERE length(digest) <> 32");
        CHECK_OK(cas_dir_put(s, all, 4, 0, NULL));

        /* edges lost: the recursive get still finds every directory */
        test_pg_sql("DELETE FROM directory_edges");
        n = 0;
        CHECK_OK(cas_dir_get_recursive(s, &top->digest, count_cb, &n));
        CHECK_EQ(n, 4);

        /* a missing child: nothing of the batch is stored */
        _cleanup_(cas_directory_freep) struct cas_directory *c = leaf("z"), *pc = parent(c, NULL),
                                                            *ppc = parent(pc, NULL);
        struct cas_directory *orphans[] = { pc, ppc };
        CHECK_EQ(cas_dir_put(s, orphans, 2, 0, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_MISSING_CHILD);
        CHECK_EQ(cas_dir_stat(s, &pc->digest, NULL), -ENOENT);
        /* a child later in the batch is not "earlier" */
        struct cas_directory *backwards[] = { pc, c };
        CHECK_EQ(cas_dir_put(s, backwards, 2, 0, &why), -EBADMSG);
        CHECK_EQ(cas_dir_stat(s, &c->digest, NULL), -ENOENT);
        /* the same directory twice in one batch */
        struct cas_directory *twice[] = { c, c, pc };
        CHECK_OK(cas_dir_put(s, twice, 3, 0, NULL));
        /* strict sizes */
        sql_on("UPDATE directories SET size = 0 WHERE digest = ", &pc->digest, "");
        CHECK_EQ(cas_dir_put(s, &ppc, 1, CAS_DECODE_STRICT_SIZE, &why), -EBADMSG);
        CHECK_EQ(why, CAS_VERR_SIZE_MISMATCH);
        CHECK_OK(cas_dir_put(s, &ppc, 1, 0, NULL)); /* lenient: claimed >= stored */
        cas_dir_service_free(s);
}

static void test_schema_version(void) {
        struct cas_pg *pg = NULL;

        test_pg_reset();
        CHECK_OK(cas_pg_open(test_pg_url(), 0, &pg));
        cas_pg_unref(pg);
        CHECK_OK(cas_pg_open(test_pg_url(), 0, &pg)); /* again: nothing to do */
        cas_pg_unref(pg);
        test_pg_sql("UPDATE castore_schema SET version = version + 1");
        CHECK_EQ(cas_pg_open(test_pg_url(), 0, &pg), -EPROTONOSUPPORT);
        test_pg_reset();
}

/* ---- concurrent puts of overlapping closures through one pool ---- */

#define N_THREADS 6
#define N_LEAVES 200

struct worker {
        struct cas_dir_service *s;
        int id;
        int r;
};

static void *put_worker(void *arg) {
        struct worker *w = arg;
        struct cas_directory *dirs[N_LEAVES + 1];
        struct cas_node nodes[N_LEAVES + 1];
        char names[N_LEAVES + 1][16];

        /* leaves shared by all workers (put in another order by each), a
         * parent of each worker's own */
        for (int i = 0; i < N_LEAVES; i++) {
                snprintf(names[i], sizeof(names[i]), "n%d", (i + w->id * 7) % N_LEAVES);
                dirs[i] = leaf(names[i]);
                nodes[i] = (struct cas_node){ .kind = CAS_NODE_DIRECTORY, .name = names[i],
                                              .name_len = strlen(names[i]), .digest = dirs[i]->digest,
                                              .size = dirs[i]->size };
        }
        snprintf(names[N_LEAVES], sizeof(names[N_LEAVES]), "w%d", w->id); /* the worker's own parent */
        nodes[N_LEAVES] = (struct cas_node){ .kind = CAS_NODE_SYMLINK, .name = names[N_LEAVES],
                                             .name_len = strlen(names[N_LEAVES]), .target = "t", .target_len = 1 };
        dirs[N_LEAVES] = mkdir_nodes(nodes, N_LEAVES + 1);
        for (int round = 0; round < 5 && w->r >= 0; round++)
                w->r = cas_dir_put(w->s, dirs, N_LEAVES + 1, 0, NULL);
        for (int i = 0; i <= N_LEAVES; i++)
                cas_directory_free(dirs[i]);
        return NULL;
}

static void test_concurrent_puts(void) {
        struct worker w[N_THREADS];
        pthread_t t[N_THREADS];
        struct cas_dir_service *s;
        struct cas_pg *pg;
        int n = 0;

        test_pg_reset();
        CHECK_OK(cas_pg_open(test_pg_url(), 0, &pg));
        CHECK_OK(cas_dir_pg_new(pg, &s));
        cas_pg_unref(pg);
        for (int i = 0; i < N_THREADS; i++) {
                w[i] = (struct worker){ .s = s, .id = i };
                CHECK(pthread_create(&t[i], NULL, put_worker, &w[i]) == 0);
        }
        for (int i = 0; i < N_THREADS; i++) {
                CHECK(pthread_join(t[i], NULL) == 0);
                CHECK_OK(w[i].r);
        }
        CHECK_OK(cas_dir_list(s, count_list, &n));
        CHECK_EQ(n, N_LEAVES + N_THREADS);
        cas_dir_service_free(s);
}

int main(void) {
        RUN(test_mask);
        RUN(test_array);
        RUN(test_bad_url);
        RUN(test_unreachable);
        if (!test_pg_url()) {
                SKIP_PART("the tests against a server: $CASTORE_TEST_PG is not set "
                          "(tests/integration/test-postgres.sh runs them against its server)");
                return *test_exit_code();
        }
        RUN(test_damaged_rows);
        RUN(test_schema_version);
        RUN(test_concurrent_puts);
        return 0;
}
