/* For unit tests of the PostgreSQL backends: the database named by
 * $CASTORE_TEST_PG (a libpq URL of a scratch database, which the tests
 * empty; tests/integration/test-postgres.sh starts a server and sets it),
 * and raw SQL on it to set up and damage rows. */
#pragma once

#include <libpq-fe.h>

#include "castore/pg.h"
#include "test.h"

static inline const char *test_pg_url(void) {
        const char *u = getenv("CASTORE_TEST_PG");
        return u && *u ? u : NULL;
}

/* Runs sql (one or more statements) on its own connection; aborts on failure. */
static inline void test_pg_sql(const char *sql) {
        PGconn *c = PQconnectdb(test_pg_url());
        PGresult *res;

        CHECK(PQstatus(c) == CONNECTION_OK);
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
                fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
                abort();
        }
        PQclear(res);
        PQfinish(c);
}

/* An empty database: the next cas_pg_open creates the schema afresh. */
static inline void test_pg_reset(void) {
        test_pg_sql("SET client_min_messages = warning; "
                    "DROP TABLE IF EXISTS directory_edges, directories, pathinfos, castore_schema");
}
