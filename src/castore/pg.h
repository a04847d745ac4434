/* PostgreSQL for the directory and PathInfo backends: one pool of libpq
 * connections per database, the schema and its migrations, prepared
 * statements with binary parameters and results, bounded retries, and
 * the one mapping of PostgreSQL failures to errno.  The only user of
 * libpq; docs/POSTGRES.md has the schema and the URL forms. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "castore/directory.h"
#include "util/macro.h"

/* The schema version this castore writes and reads (docs/POSTGRES.md). */
#define CAS_PG_SCHEMA_VERSION 2

struct cas_pg;
struct cas_pg_conn;

/* postgresql://... or postgres://... (libpq connection URIs). */
bool cas_pg_url_is(const char *url);

/* Connects to url (retrying as cas_pg_run does), brings the schema up to
 * CAS_PG_SCHEMA_VERSION under an advisory lock (concurrent openers wait
 * for the first), and returns a pool holding that connection.  Calls time
 * out after timeout_ms (0: 30 s).  -EPROTONOSUPPORT for a schema newer
 * than this castore knows; connection failures as cas_pg_run.  Errors are
 * logged, naming the endpoint with its password masked.  Thread-safe. */
int cas_pg_open(const char *url, unsigned timeout_ms, struct cas_pg **ret);
/* Reference counting: the directory and PathInfo services of one
 * database share a pool. */
struct cas_pg *cas_pg_ref(struct cas_pg *pg);
void cas_pg_unref(struct cas_pg *pg);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_pg *, cas_pg_unref);
/* The URL with any password replaced by "***": for messages. */
const char *cas_pg_endpoint(const struct cas_pg *pg);
/* The same for a URL (cas_pg_url_is): malloc'ed, or NULL. */
char *cas_pg_url_masked(const char *url);

/* Runs fn on a connection of the pool.  fn may run several times: when
 * the connection is lost (server restarting, unreachable) or the server
 * asks for a retry (serialization failure, deadlock, too many
 * connections), fn is run again on a fresh connection after a backoff, a
 * bounded number of times (about 3 s in all).  So fn must be idempotent:
 * a transaction from BEGIN to COMMIT, or a read.  fn returns what
 * cas_pg_query returned, or its own -errno (not retried).  A transaction
 * fn leaves open is rolled back.  Errors from the server are logged with
 * the endpoint; the results: -ECONNREFUSED (cannot connect),
 * -ECONNRESET (connection lost), -ETIMEDOUT (no answer in time),
 * -EACCES, -ENOSPC, -EROFS, -EIO (other SQL errors). */
typedef int (*cas_pg_fn)(struct cas_pg_conn *c, void *userdata);
int cas_pg_run(struct cas_pg *pg, cas_pg_fn fn, void *userdata);

/* A statement, prepared on each connection at its first use under name.
 * Parameters are sent in binary: bytea as its bytes, int8 as 8 bytes
 * big-endian (cas_pg_int8), arrays built by cas_pg_array. */
struct cas_pg_stmt {
        const char *name;
        const char *sql;
};

/* Runs st with n parameters; *ret (PQclear) holds the whole result, in
 * binary.  Errors as described at cas_pg_run. */
int cas_pg_query(struct cas_pg_conn *c, const struct cas_pg_stmt *st, int n, const char *const *vals,
                 const int *lens, PGresult **ret);
/* Runs st and calls row(userdata, res) for each row as it arrives (single
 * row mode: a big table is never held in memory); res has one row and is
 * valid during the call.  A negative return of row stops the query (the
 * connection is dropped, as the rest of the answer cannot be skipped) and
 * is returned. */
int cas_pg_query_rows(struct cas_pg_conn *c, const struct cas_pg_stmt *st, int n, const char *const *vals,
                      const int *lens, int (*row)(void *userdata, const PGresult *res), void *userdata);
/* Streams the rows of st (no parameters) on a connection of the pool
 * through row(userdata, res), as cas_pg_query_rows.  row returns 1 for a
 * row it found corrupt (and logged): the row is skipped, the walk goes on
 * and returns -EBADMSG at its end.  A negative return stops the walk. */
int cas_pg_list(struct cas_pg *pg, const struct cas_pg_stmt *st, int (*row)(void *userdata, const PGresult *res),
                void *userdata);
/* A command without parameters or rows (BEGIN, COMMIT). */
int cas_pg_exec(struct cas_pg_conn *c, const char *sql);

/* Rows a multi-row INSERT writes at most. */
#define CAS_PG_ROWS_PER_STATEMENT 4096

/* The edges (parent, child directory) of directories, for the
 * directory_edges table that serves the recursive get. */
struct cas_pg_edge {
        struct cas_digest parent, child;
};
struct cas_pg_edges {
        struct cas_pg_edge *v;
        size_t n, cap;
};
/* Appends the child directories of d: 0 or -ENOMEM. */
int cas_pg_edges_add(struct cas_pg_edges *e, const struct cas_directory *d);
/* Writes them, existing pairs skipped, sorted (so that concurrent
 * writers lock rows in one order), in multi-row INSERTs.  Within the
 * caller's transaction; errors as cas_pg_query. */
int cas_pg_edges_insert(struct cas_pg_conn *c, struct cas_pg_edges *e);
void cas_pg_edges_done(struct cas_pg_edges *e);

/* Binary parameters and results. */
void cas_pg_int8(int64_t v, char ret[8]);
/* Column col of row: a bytea's bytes (NULL: -EBADMSG), an int8. */
int cas_pg_bytes(const PGresult *res, int row, int col, const uint8_t **ret, size_t *ret_len);
int cas_pg_get_int8(const PGresult *res, int row, int col, int64_t *ret);

/* A one-dimensional array parameter in binary form, elements appended one
 * by one.  Allocation failures are remembered and reported by finish. */
struct cas_pg_array {
        uint8_t *buf;
        size_t len, cap;
        uint32_t n;
        uint32_t elem_oid;
        bool oom;
};
#define CAS_PG_OID_BYTEA 17
#define CAS_PG_OID_INT8 20
void cas_pg_array_init(struct cas_pg_array *a, uint32_t elem_oid);
void cas_pg_array_add(struct cas_pg_array *a, const void *p, size_t len);
void cas_pg_array_add_int8(struct cas_pg_array *a, int64_t v);
/* Writes the header: 0, or -ENOMEM if an add failed. */
int cas_pg_array_finish(struct cas_pg_array *a);
void cas_pg_array_reset(struct cas_pg_array *a, uint32_t elem_oid); /* empty again, buffer kept */
void cas_pg_array_done(struct cas_pg_array *a);
