/* PostgreSQL connections for the directory and PathInfo backends: the
 * pool, the schema migrations, statements with binary parameters, retries
 * with backoff and the mapping of libpq/SQLSTATE failures to errno (see
 * pg.h).  No other file includes libpq's calls but through this one. */
#include "castore/pg.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "castore/directory.h"
#include "util/log.h"

#define POOL_IDLE_MAX 4   /* connections kept open between calls */
#define MAX_ATTEMPTS 7    /* backoff 50 ms doubling: about 3 s of retries */
#define MAX_PREPARED 32   /* statements a connection remembers */
#define CONNECT_TIMEOUT "5" /* seconds, unless the URL says otherwise */

/* The pool.  Lock order: only lock, held for list operations, never
 * during I/O. */
struct cas_pg {
        atomic_uint refs;
        char *url;       /* immutable; may hold the password: never logged */
        char *endpoint;  /* immutable; url with the password masked */
        unsigned timeout_ms; /* immutable */
        /* The options of the first connection, resolved by libpq (user
         * name, socket directory, ...): later connections use them, so a
         * reconnect inside a daemon's sandbox looks nothing up.  Immutable
         * once cas_pg_open returns. */
        const char **keywords, **values;
        PQconninfoOption *resolved;
        pthread_mutex_t lock;
        struct cas_pg_conn *idle; /* lock */
        size_t n_idle;            /* lock */
};

/* One connection; owned by the pool while idle, by one thread while
 * borrowed (nothing in it is shared then). */
struct cas_pg_conn {
        struct cas_pg *pg;
        PGconn *conn;
        struct cas_pg_conn *next; /* pg->lock, while idle */
        const char *prepared[MAX_PREPARED]; /* statement names prepared on conn */
        size_t n_prepared;
        bool broken; /* drop it when returned */
        bool reused; /* came from the idle list */
        char err[320]; /* the last server or connection error, for the log */
};

bool cas_pg_url_is(const char *url) {
        return url && (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0);
}

/* The URL with the password of its user part and any password=
 * parameter replaced by "***". */
char *cas_pg_url_masked(const char *url) {
        const char *rest = strstr(url, "://") + 3;
        size_t auth_end = strcspn(rest, "/?#");
        const char *at = memrchr(rest, '@', auth_end);
        const char *colon = at ? memchr(rest, ':', at - rest) : NULL;
        char *out = malloc(2 * strlen(url) + 16), *o = out; /* each "***" replaces >= 0 bytes */
        const char *p = url;

        if (!out)
                return NULL;
        if (colon) {
                o = mempcpy(o, p, colon + 1 - p);
                o = stpcpy(o, "***");
                p = at;
        }
        while (*p) {
                const char *q = strstr(p, "password=");
                if (!q) {
                        o = stpcpy(o, p);
                        break;
                }
                o = mempcpy(o, p, q + 9 - p);
                p = q + 9;
                if (q < rest + auth_end || (q[-1] != '?' && q[-1] != '&'))
                        continue; /* not a parameter of that name */
                o = stpcpy(o, "***");
                p += strcspn(p, "&#");
        }
        *o = 0;
        return out;
}

const char *cas_pg_endpoint(const struct cas_pg *pg) {
        return pg->endpoint;
}

/* ---- errors ---- */

static void set_err(struct cas_pg_conn *c, const char *msg) {
        size_t n;

        snprintf(c->err, sizeof(c->err), "%s", msg && *msg ? msg : "unknown error");
        n = strlen(c->err);
        while (n > 0 && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
                c->err[--n] = 0;
        /* one line: libpq's messages have newlines and tabs */
        char *o = c->err;
        for (const char *p = c->err; *p; p++) {
                char ch = *p == '\n' || *p == '\t' ? ' ' : *p;
                if (ch != ' ' || (o > c->err && o[-1] != ' '))
                        *o++ = ch;
        }
        *o = 0;
}

/* The one mapping of a failed statement to errno (SQLSTATE classes). */
static int sqlstate_errno(const char *st) {
        if (!st || strlen(st) != 5)
                return -EIO;
        if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
            strcmp(st, "57P03") == 0)
                return -ECONNRESET; /* connection gone, server shutting down or starting */
        if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "53300") == 0)
                return -EAGAIN; /* serialization failure, deadlock, too many connections */
        if (strncmp(st, "28", 2) == 0 || strcmp(st, "42501") == 0)
                return -EACCES;
        if (strcmp(st, "53100") == 0)
                return -ENOSPC;
        if (strcmp(st, "25006") == 0)
                return -EROFS;
        if (strcmp(st, "57014") == 0)
                return -ETIMEDOUT;
        return -EIO;
}

static bool retriable(int r) {
        return r == -ECONNREFUSED || r == -ECONNRESET || r == -EAGAIN;
}

/* The connection failed under us: say so and drop it. */
static int conn_failed(struct cas_pg_conn *c) {
        set_err(c, PQerrorMessage(c->conn));
        c->broken = true;
        return -ECONNRESET;
}

static int result_errno(struct cas_pg_conn *c, const PGresult *res) {
        ExecStatusType st = PQresultStatus(res);
        int r;

        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_SINGLE_TUPLE)
                return 0;
        set_err(c, PQresultErrorMessage(res));
        r = sqlstate_errno(PQresultErrorField(res, PG_DIAG_SQLSTATE));
        if (PQstatus(c->conn) != CONNECTION_OK) {
                c->broken = true;
                r = -ECONNRESET;
        }
        return r;
}

/* ---- statements ---- */

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until a result can be read without blocking, at most the pool's
 * timeout: a server that stops answering is -ETIMEDOUT, not a hang. */
static int await(struct cas_pg_conn *c) {
        uint64_t deadline = now_ms() + c->pg->timeout_ms;

        while (PQisBusy(c->conn)) {
                struct pollfd p = { .fd = PQsocket(c->conn), .events = POLLIN };
                uint64_t now = now_ms();
                int n;

                if (p.fd < 0)
                        return conn_failed(c);
                if (now >= deadline) {
                        snprintf(c->err, sizeof(c->err), "no answer within %u ms", c->pg->timeout_ms);
                        c->broken = true;
                        return -ETIMEDOUT;
                }
                n = poll(&p, 1, (int) (deadline - now));
                if (n < 0 && errno != EINTR)
                        return conn_failed(c);
                if (n > 0 && !PQconsumeInput(c->conn))
                        return conn_failed(c);
        }
        return 0;
}

/* Sends what libpq queued (the connection is non-blocking, so a big
 * batch to a server that stopped reading cannot block us either), within
 * the same deadline as answers. */
static int flush_out(struct cas_pg_conn *c) {
        uint64_t deadline = now_ms() + c->pg->timeout_ms;
        int r;

        while ((r = PQflush(c->conn)) == 1) {
                struct pollfd p = { .fd = PQsocket(c->conn), .events = POLLIN | POLLOUT };
                uint64_t now = now_ms();
                int n;

                if (now >= deadline) {
                        snprintf(c->err, sizeof(c->err), "could not send within %u ms", c->pg->timeout_ms);
                        c->broken = true;
                        return -ETIMEDOUT;
                }
                n = poll(&p, 1, (int) (deadline - now));
                if (n < 0 && errno != EINTR)
                        return conn_failed(c);
                if (n > 0 && (p.revents & POLLIN) && !PQconsumeInput(c->conn))
                        return conn_failed(c);
        }
        return r < 0 ? conn_failed(c) : 0;
}

/* Reads every result of the command sent; *ret (optional) gets the
 * first successful one. */
static int collect(struct cas_pg_conn *c, PGresult **ret) {
        PGresult *keep = NULL, *res;
        int r = 0, e;

        for (;;) {
                e = await(c);
                if (e < 0) {
                        PQclear(keep);
                        return e;
                }
                res = PQgetResult(c->conn);
                if (!res)
                        break;
                e = result_errno(c, res);
                if (e < 0 && r >= 0)
                        r = e;
                if (e >= 0 && ret && !keep)
                        keep = res;
                else
                        PQclear(res);
                if (c->broken)
                        break;
        }
        if (r < 0) {
                PQclear(keep);
                return r;
        }
        if (ret)
                *ret = keep;
        else
                PQclear(keep);
        return 0;
}

static int prepare(struct cas_pg_conn *c, const struct cas_pg_stmt *st) {
        int r;

        for (size_t i = 0; i < c->n_prepared; i++)
                if (strcmp(c->prepared[i], st->name) == 0)
                        return 0;
        if (!PQsendPrepare(c->conn, st->name, st->sql, 0, NULL))
                return conn_failed(c);
        r = flush_out(c);
        if (r >= 0)
                r = collect(c, NULL);
        if (r < 0)
                return r;
        assert(c->n_prepared < MAX_PREPARED);
        c->prepared[c->n_prepared++] = st->name;
        return 0;
}

/* single_row: rows are read one by one (set before anything else happens
 * on the connection, as libpq requires). */
static int send_prepared(struct cas_pg_conn *c, const struct cas_pg_stmt *st, int n, const char *const *vals,
                         const int *lens, bool single_row) {
        int formats[8];
        int r;

        assert(n <= (int) ELEMENTSOF(formats));
        for (int i = 0; i < n; i++)
                formats[i] = 1;
        r = prepare(c, st);
        if (r < 0)
                return r;
        if (!PQsendQueryPrepared(c->conn, st->name, n, vals, lens, formats, 1))
                return conn_failed(c);
        if (single_row && !PQsetSingleRowMode(c->conn))
                return conn_failed(c);
        return flush_out(c);
}

int cas_pg_query(struct cas_pg_conn *c, const struct cas_pg_stmt *st, int n, const char *const *vals,
                 const int *lens, PGresult **ret) {
        int r = send_prepared(c, st, n, vals, lens, false);

        if (r < 0)
                return r;
        return collect(c, ret);
}

/* The rows of the answer, one by one: the first error (of the server, the
 * connection or row) ends the walk. */
static int read_rows(struct cas_pg_conn *c, int (*row)(void *userdata, const PGresult *res), void *userdata,
                     size_t *delivered) {
        for (;;) {
                PGresult *res;
                int r = await(c);

                if (r < 0)
                        return r;
                res = PQgetResult(c->conn);
                if (!res)
                        return 0;
                r = result_errno(c, res);
                if (r >= 0 && PQresultStatus(res) == PGRES_SINGLE_TUPLE) {
                        r = row(userdata, res);
                        (*delivered)++;
                }
                PQclear(res);
                if (r < 0)
                        return r;
        }
}

int cas_pg_query_rows(struct cas_pg_conn *c, const struct cas_pg_stmt *st, int n, const char *const *vals,
                      const int *lens, int (*row)(void *userdata, const PGresult *res), void *userdata) {
        size_t delivered = 0;
        int r = send_prepared(c, st, n, vals, lens, true);

        if (r >= 0)
                r = read_rows(c, row, userdata, &delivered);
        if (r < 0)
                c->broken = true; /* the rest of the answer cannot be skipped: dropped with the connection */
        if (r == -ECONNRESET && delivered > 0)
                r = -ECONNABORTED; /* a retry would deliver the rows again */
        return r;
}

struct list_ctx {
        const struct cas_pg_stmt *st;
        int (*row)(void *userdata, const PGresult *res);
        void *userdata;
        bool corrupt;
};

static int list_row(void *userdata, const PGresult *res) {
        struct list_ctx *l = userdata;
        int r = l->row(l->userdata, res);

        if (r > 0) {
                l->corrupt = true; /* logged; the walk goes on */
                return 0;
        }
        return r;
}

static int list_in(struct cas_pg_conn *c, void *userdata) {
        struct list_ctx *l = userdata;

        return cas_pg_query_rows(c, l->st, 0, NULL, NULL, list_row, l);
}

int cas_pg_list(struct cas_pg *pg, const struct cas_pg_stmt *st, int (*row)(void *userdata, const PGresult *res),
                void *userdata) {
        struct list_ctx l = { .st = st, .row = row, .userdata = userdata };
        int r = cas_pg_run(pg, list_in, &l);

        if (r >= 0 && l.corrupt)
                r = -EBADMSG;
        return r;
}

int cas_pg_exec(struct cas_pg_conn *c, const char *sql) {
        int r;

        if (!PQsendQuery(c->conn, sql))
                return conn_failed(c);
        r = flush_out(c);
        return r < 0 ? r : collect(c, NULL);
}

/* ---- binary values ---- */

void cas_pg_int8(int64_t v, char ret[8]) {
        uint64_t be = htobe64((uint64_t) v);
        memcpy(ret, &be, 8);
}

int cas_pg_bytes(const PGresult *res, int row, int col, const uint8_t **ret, size_t *ret_len) {
        if (row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col))
                return -EBADMSG;
        *ret = (const uint8_t *) PQgetvalue(res, row, col);
        *ret_len = (size_t) PQgetlength(res, row, col);
        return 0;
}

int cas_pg_get_int8(const PGresult *res, int row, int col, int64_t *ret) {
        const uint8_t *p;
        size_t len;
        uint64_t be;

        if (cas_pg_bytes(res, row, col, &p, &len) < 0 || len != 8)
                return -EBADMSG;
        memcpy(&be, p, 8);
        *ret = (int64_t) be64toh(be);
        return 0;
}

/* Layout (PostgreSQL's array_send): ndim, has-nulls flag, element type
 * OID, then per dimension its length and lower bound (1), then each
 * element as a 4-byte length and its bytes; all big-endian.  An empty
 * array has ndim 0 and nothing after the OID. */
#define ARRAY_HEADER 20

static void array_put(struct cas_pg_array *a, const void *p, size_t len) {
        if (a->oom)
                return;
        if (a->len + len > a->cap) {
                size_t cap = MAX(a->cap * 2, a->len + len + 256);
                uint8_t *b = realloc(a->buf, cap);
                if (!b) {
                        a->oom = true;
                        return;
                }
                a->buf = b;
                a->cap = cap;
        }
        memcpy(a->buf + a->len, p, len);
        a->len += len;
}

void cas_pg_array_reset(struct cas_pg_array *a, uint32_t elem_oid) {
        uint8_t zero[ARRAY_HEADER] = { 0 };

        a->len = 0;
        a->n = 0;
        a->elem_oid = elem_oid;
        array_put(a, zero, sizeof(zero));
}

void cas_pg_array_init(struct cas_pg_array *a, uint32_t elem_oid) {
        *a = (struct cas_pg_array){};
        cas_pg_array_reset(a, elem_oid);
}

void cas_pg_array_add(struct cas_pg_array *a, const void *p, size_t len) {
        uint32_t be = htobe32((uint32_t) len);

        array_put(a, &be, 4);
        array_put(a, p, len);
        a->n++;
}

void cas_pg_array_add_int8(struct cas_pg_array *a, int64_t v) {
        char b[8];

        cas_pg_int8(v, b);
        cas_pg_array_add(a, b, 8);
}

int cas_pg_array_finish(struct cas_pg_array *a) {
        uint32_t h[5] = { htobe32(1), 0, htobe32(a->elem_oid), htobe32(a->n), htobe32(1) };

        if (a->oom)
                return -ENOMEM;
        if (a->n == 0) {
                h[0] = 0;
                memcpy(a->buf, h, 12);
                a->len = 12;
                return 0;
        }
        memcpy(a->buf, h, sizeof(h));
        return 0;
}

void cas_pg_array_done(struct cas_pg_array *a) {
        free(a->buf);
        *a = (struct cas_pg_array){};
}

/* ---- connections ---- */

static void notice_quiet(void *arg, const char *msg) {
        (void) arg;
        log_debug("PostgreSQL: %.*s", (int) strcspn(msg, "\n"), msg);
}

static void conn_free(struct cas_pg_conn *c) {
        if (!c)
                return;
        PQfinish(c->conn);
        free(c);
}

static int conn_new(struct cas_pg *pg, char *err, size_t errlen, struct cas_pg_conn **ret) {
        static const char *const first_kw[] = { "connect_timeout", "fallback_application_name", "dbname", NULL };
        const char *first_val[] = { CONNECT_TIMEOUT, "castore", pg->url, NULL };
        struct cas_pg_conn *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->pg = pg;
        if (pg->keywords)
                c->conn = PQconnectdbParams(pg->keywords, pg->values, 0);
        else
                c->conn = PQconnectdbParams(first_kw, first_val, 1);
        if (!c->conn) {
                free(c);
                return -ENOMEM;
        }
        if (PQstatus(c->conn) != CONNECTION_OK) {
                set_err(c, PQerrorMessage(c->conn));
                snprintf(err, errlen, "%s", c->err);
                conn_free(c);
                return -ECONNREFUSED;
        }
        PQsetNoticeProcessor(c->conn, notice_quiet, NULL);
        if (PQsetnonblocking(c->conn, 1) < 0) {
                set_err(c, PQerrorMessage(c->conn));
                snprintf(err, errlen, "%s", c->err);
                conn_free(c);
                return -ECONNRESET;
        }
        *ret = c;
        return 0;
}

/* Keeps the options libpq resolved for c (see struct cas_pg). */
static int remember_options(struct cas_pg *pg, struct cas_pg_conn *c) {
        size_t n = 0, i = 0;

        pg->resolved = PQconninfo(c->conn);
        if (!pg->resolved)
                return -ENOMEM;
        for (PQconninfoOption *o = pg->resolved; o->keyword; o++)
                n++;
        pg->keywords = calloc(n + 1, sizeof(char *));
        pg->values = calloc(n + 1, sizeof(char *));
        if (!pg->keywords || !pg->values)
                return -ENOMEM;
        for (PQconninfoOption *o = pg->resolved; o->keyword; o++)
                if (o->val && *o->val) {
                        pg->keywords[i] = o->keyword;
                        pg->values[i++] = o->val;
                }
        return 0;
}

static void pool_drop_idle(struct cas_pg *pg) {
        struct cas_pg_conn *list;

        pthread_mutex_lock(&pg->lock);
        list = pg->idle;
        pg->idle = NULL;
        pg->n_idle = 0;
        pthread_mutex_unlock(&pg->lock);
        while (list) {
                struct cas_pg_conn *next = list->next;
                conn_free(list);
                list = next;
        }
}

static int pool_get(struct cas_pg *pg, char *err, size_t errlen, struct cas_pg_conn **ret) {
        struct cas_pg_conn *c;

        pthread_mutex_lock(&pg->lock);
        c = pg->idle;
        if (c) {
                pg->idle = c->next;
                pg->n_idle--;
        }
        pthread_mutex_unlock(&pg->lock);
        if (c && PQstatus(c->conn) != CONNECTION_OK) {
                conn_free(c);
                c = NULL;
        }
        if (c) {
                c->reused = true;
                c->next = NULL;
                *ret = c;
                return 0;
        }
        return conn_new(pg, err, errlen, ret);
}

/* Back to the pool: rolled back if fn left a transaction open, dropped
 * if broken or beyond the idle limit. */
static void pool_put(struct cas_pg *pg, struct cas_pg_conn *c) {
        PGTransactionStatusType ts = PQtransactionStatus(c->conn);

        if (!c->broken && (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) && cas_pg_exec(c, "ROLLBACK") < 0)
                c->broken = true;
        if (!c->broken && (PQstatus(c->conn) != CONNECTION_OK || PQtransactionStatus(c->conn) != PQTRANS_IDLE))
                c->broken = true;
        c->err[0] = 0;
        if (!c->broken) {
                pthread_mutex_lock(&pg->lock);
                if (pg->n_idle < POOL_IDLE_MAX) {
                        c->next = pg->idle;
                        pg->idle = c;
                        pg->n_idle++;
                        c = NULL;
                }
                pthread_mutex_unlock(&pg->lock);
        }
        conn_free(c);
}

int cas_pg_run(struct cas_pg *pg, cas_pg_fn fn, void *userdata) {
        char err[sizeof(((struct cas_pg_conn *) 0)->err)] = "";
        unsigned delay_ms = 50;
        int attempt, r;

        for (attempt = 1;; attempt++) {
                struct cas_pg_conn *c = NULL;
                bool reused = false;

                err[0] = 0;
                r = pool_get(pg, err, sizeof(err), &c);
                if (r >= 0) {
                        reused = c->reused;
                        r = fn(c, userdata);
                        if (c->err[0])
                                memcpy(err, c->err, sizeof(err));
                        pool_put(pg, c);
                }
                if (!retriable(r) || attempt == MAX_ATTEMPTS)
                        break;
                if (r == -ECONNRESET)
                        pool_drop_idle(pg); /* they went with the same server */
                log_debug("PostgreSQL at %s: %s; retrying", pg->endpoint, err);
                if (reused && r == -ECONNRESET)
                        continue; /* a stale pooled connection: try a fresh one at once */
                nanosleep(&(struct timespec){ .tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000L },
                          NULL);
                delay_ms *= 2;
        }
        if (r < 0 && err[0]) {
                if (retriable(r))
                        log_error("PostgreSQL at %s: %s (gave up after %d attempts)", pg->endpoint, err, attempt);
                else
                        log_error("PostgreSQL at %s: %s", pg->endpoint, err);
        }
        return r;
}

/* ---- directory edges: the index behind the recursive get ---- */

static const struct cas_pg_stmt insert_edges = {
        "castore_insert_edges",
        "INSERT INTO directory_edges (parent, child) SELECT * FROM unnest($1::bytea[], $2::bytea[]) "
        "ON CONFLICT DO NOTHING",
};

int cas_pg_edges_add(struct cas_pg_edges *e, const struct cas_directory *d) {
        for (size_t i = 0; i < d->n_entries; i++) {
                if (d->entries[i].kind != CAS_NODE_DIRECTORY)
                        continue;
                if (e->n == e->cap) {
                        size_t cap = e->cap ? 2 * e->cap : 256;
                        struct cas_pg_edge *v = realloc(e->v, cap * sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                        e->v = v;
                        e->cap = cap;
                }
                e->v[e->n++] = (struct cas_pg_edge){ d->digest, d->entries[i].digest };
        }
        return 0;
}

void cas_pg_edges_done(struct cas_pg_edges *e) {
        free(e->v);
        *e = (struct cas_pg_edges){};
}

static int edge_cmp(const void *a, const void *b) {
        const struct cas_pg_edge *x = a, *y = b;
        int c = memcmp(x->parent.b, y->parent.b, CAS_DIGEST_LEN);

        return c ? c : memcmp(x->child.b, y->child.b, CAS_DIGEST_LEN);
}

static int insert_edges_chunk(struct cas_pg_conn *c, const struct cas_pg_edge *edges, size_t n) {
        struct cas_pg_array parents, children;
        int r;

        cas_pg_array_init(&parents, CAS_PG_OID_BYTEA);
        cas_pg_array_init(&children, CAS_PG_OID_BYTEA);
        for (size_t i = 0; i < n; i++) {
                cas_pg_array_add(&parents, edges[i].parent.b, CAS_DIGEST_LEN);
                cas_pg_array_add(&children, edges[i].child.b, CAS_DIGEST_LEN);
        }
        r = cas_pg_array_finish(&parents);
        if (r >= 0)
                r = cas_pg_array_finish(&children);
        if (r >= 0) {
                const char *vals[2] = { (char *) parents.buf, (char *) children.buf };
                int lens[2] = { (int) parents.len, (int) children.len };
                r = cas_pg_query(c, &insert_edges, 2, vals, lens, NULL);
        }
        cas_pg_array_done(&parents);
        cas_pg_array_done(&children);
        return r;
}

int cas_pg_edges_insert(struct cas_pg_conn *c, struct cas_pg_edges *e) {
        int r = 0;

        if (e->n == 0)
                return 0;
        qsort(e->v, e->n, sizeof(*e->v), edge_cmp);
        for (size_t i = 0; i < e->n && r >= 0; i += CAS_PG_ROWS_PER_STATEMENT)
                r = insert_edges_chunk(c, e->v + i, MIN(e->n - i, (size_t) CAS_PG_ROWS_PER_STATEMENT));
        return r;
}

/* ---- schema ---- */

static int backfill_row(void *userdata, const PGresult *res) {
        _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
        const uint8_t *data;
        size_t len;

        if (cas_pg_bytes(res, 0, 0, &data, &len) < 0 || cas_directory_decode(data, len, 0, &d, NULL) < 0) {
                log_warning("Migration: a stored directory does not decode; it gets no edges");
                return 0;
        }
        return cas_pg_edges_add(userdata, d);
}

/* Version 2 indexes the children of every stored directory: decoded
 * here, since SQL cannot read the protobuf.  The rows stream by (only
 * the edges are kept); one that does not decode gets no edges, and the
 * recursive get fetches what the edges miss. */
static int backfill_edges(struct cas_pg_conn *c) {
        static const struct cas_pg_stmt all = { "castore_all_dirs", "SELECT data FROM directories" };
        struct cas_pg_edges e = {};
        int r;

        r = cas_pg_query_rows(c, &all, 0, NULL, NULL, backfill_row, &e);
        if (r >= 0)
                r = cas_pg_edges_insert(c, &e);
        cas_pg_edges_done(&e);
        return r;
}

/* Forward migrations: migrations[v] takes the schema from v - 1 to v. */
static const struct {
        const char *sql;
        int (*after)(struct cas_pg_conn *c);
} migrations[CAS_PG_SCHEMA_VERSION + 1] = {
        [1] = { "CREATE TABLE directories (digest bytea PRIMARY KEY, size bigint NOT NULL, data bytea NOT NULL);"
                "CREATE TABLE pathinfos (digest bytea PRIMARY KEY, data bytea NOT NULL)" },
        [2] = { "CREATE TABLE directory_edges (parent bytea NOT NULL REFERENCES directories ON DELETE CASCADE, "
                "child bytea NOT NULL, PRIMARY KEY (parent, child))",
                backfill_edges },
};

static int migrate(struct cas_pg_conn *c, void *userdata) {
        static const struct cas_pg_stmt get_version = { "castore_schema_version",
                                                        "SELECT version FROM castore_schema" };
        PGresult *res = NULL;
        int version = 0, r;
        char sql[96];

        (void) userdata;
        r = cas_pg_exec(c, "BEGIN");
        /* concurrent openers wait here for the first one's migration */
        if (r >= 0)
                r = cas_pg_exec(c, "SELECT pg_advisory_xact_lock(7161113600000000001)");
        if (r >= 0)
                r = cas_pg_exec(c, "CREATE TABLE IF NOT EXISTS castore_schema (version integer NOT NULL)");
        if (r >= 0)
                r = cas_pg_query(c, &get_version, 0, NULL, NULL, &res);
        if (r < 0)
                return r;
        if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) && PQgetlength(res, 0, 0) == 4) {
                uint32_t be;
                memcpy(&be, PQgetvalue(res, 0, 0), 4);
                version = (int) be32toh(be);
        } else if (PQntuples(res) > 0)
                version = -1;
        PQclear(res);
        if (version < 0 || version > CAS_PG_SCHEMA_VERSION)
                return log_error_errno(-EPROTONOSUPPORT,
                                       "PostgreSQL at %s has castore schema version %d; this castore knows "
                                       "versions up to %d",
                                       c->pg->endpoint, version, CAS_PG_SCHEMA_VERSION);
        if (version == CAS_PG_SCHEMA_VERSION)
                return cas_pg_exec(c, "COMMIT");
        for (int v = version + 1; v <= CAS_PG_SCHEMA_VERSION && r >= 0; v++) {
                r = cas_pg_exec(c, migrations[v].sql);
                if (r >= 0 && migrations[v].after)
                        r = migrations[v].after(c);
                if (r >= 0)
                        log_info("PostgreSQL at %s: castore schema migrated to version %d", c->pg->endpoint, v);
        }
        snprintf(sql, sizeof(sql), "%s castore_schema %s %d", version == 0 ? "INSERT INTO" : "UPDATE",
                 version == 0 ? "VALUES (" : "SET version =", CAS_PG_SCHEMA_VERSION);
        if (version == 0)
                strcat(sql, ")");
        if (r >= 0)
                r = cas_pg_exec(c, sql);
        if (r >= 0)
                r = cas_pg_exec(c, "COMMIT");
        return r;
}

/* ---- the pool ---- */

struct cas_pg *cas_pg_ref(struct cas_pg *pg) {
        if (pg)
                atomic_fetch_add(&pg->refs, 1);
        return pg;
}

void cas_pg_unref(struct cas_pg *pg) {
        if (!pg || atomic_fetch_sub(&pg->refs, 1) != 1)
                return;
        pool_drop_idle(pg);
        PQconninfoFree(pg->resolved);
        free(pg->keywords);
        free(pg->values);
        free(pg->url);
        free(pg->endpoint);
        pthread_mutex_destroy(&pg->lock);
        free(pg);
}

/* The first connection, kept for the pool once its options are known. */
static int first_connection(struct cas_pg_conn *c, void *userdata) {
        struct cas_pg *pg = c->pg;
        int r;

        (void) userdata;
        if (pg->keywords)
                return 0;
        r = remember_options(pg, c);
        return r < 0 ? r : 0;
}

int cas_pg_open(const char *url, unsigned timeout_ms, struct cas_pg **ret) {
        _cleanup_(cas_pg_unrefp) struct cas_pg *pg = NULL;
        PQconninfoOption *opts;
        char *errmsg = NULL;
        int r;

        if (!cas_pg_url_is(url) || !ret)
                return -EINVAL;
        pg = calloc(1, sizeof(*pg));
        if (!pg)
                return -ENOMEM;
        atomic_init(&pg->refs, 1);
        pthread_mutex_init(&pg->lock, NULL);
        pg->timeout_ms = timeout_ms ? timeout_ms : 30000;
        pg->url = strdup(url);
        pg->endpoint = cas_pg_url_masked(url);
        if (!pg->url || !pg->endpoint)
                return -ENOMEM;
        /* a malformed URL is a usage error, said before any connection */
        opts = PQconninfoParse(url, &errmsg);
        if (!opts) {
                log_error("Bad PostgreSQL URL %s: %.*s", pg->endpoint,
                          errmsg ? (int) strcspn(errmsg, "\n") : 7, errmsg ? errmsg : "no memory");
                PQfreemem(errmsg);
                return -EINVAL;
        }
        PQconninfoFree(opts);
        r = cas_pg_run(pg, first_connection, NULL);
        if (r >= 0)
                r = cas_pg_run(pg, migrate, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(pg);
        return 0;
}
