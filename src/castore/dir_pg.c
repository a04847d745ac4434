/* PostgreSQL directory backend: table directories (digest, recursive
 * size, canonical encoding) and directory_edges (parent, child), so a
 * recursive get is one query.  Same rules as the LMDB backend: every get
 * decoded, validated and re-hashed; a put of a closure validated and
 * committed in one transaction; listings skip and report corrupt rows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/dirsvc.h"
#include "castore/pg.h"
#include "util/hashmap.h"
#include "util/log.h"

struct dir_pg {
        struct cas_dir_service base;
        struct cas_pg *pg; /* a reference; immutable */
};

static const struct cas_pg_stmt st_get = { "castore_dir_get",
                                           "SELECT size, data FROM directories WHERE digest = $1" };
static const struct cas_pg_stmt st_stat = { "castore_dir_stat", "SELECT size FROM directories WHERE digest = $1" };
/* the children a batch needs from the database, kept until commit */
static const struct cas_pg_stmt st_sizes = {
        "castore_dir_sizes",
        "SELECT digest, size FROM directories WHERE digest = ANY($1::bytea[]) FOR KEY SHARE",
};
/* new rows inserted, a differing (damaged) row replaced, equal rows left
 * alone; RETURNING names the replaced ones */
static const struct cas_pg_stmt st_insert = {
        "castore_dir_insert",
        "INSERT INTO directories AS d (digest, size, data) "
        "SELECT * FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) "
        "ON CONFLICT (digest) DO UPDATE SET size = EXCLUDED.size, data = EXCLUDED.data "
        "WHERE d.size <> EXCLUDED.size OR d.data <> EXCLUDED.data "
        "RETURNING digest, xmax::text <> '0'",
};
static const struct cas_pg_stmt st_closure = {
        "castore_dir_closure",
        "WITH RECURSIVE closure(digest) AS (SELECT $1::bytea UNION "
        "SELECT e.child FROM directory_edges e JOIN closure c ON e.parent = c.digest) "
        "SELECT c.digest, d.size, d.data FROM closure c LEFT JOIN directories d ON d.digest = c.digest",
};
static const struct cas_pg_stmt st_list = { "castore_dir_list",
                                            "SELECT digest, data FROM directories ORDER BY digest" };
static const struct cas_pg_stmt st_remove = { "castore_dir_remove",
                                              "DELETE FROM directories WHERE digest = ANY($1::bytea[])" };

static struct dir_pg *to_pg(struct cas_dir_service *s) {
        return (struct dir_pg *) s;
}

static int run_in_transaction(struct cas_pg_conn *c, int (*body)(struct cas_pg_conn *c, void *userdata),
                              void *userdata) {
        int r = cas_pg_exec(c, "BEGIN");

        if (r >= 0)
                r = body(c, userdata);
        if (r >= 0)
                r = cas_pg_exec(c, "COMMIT");
        return r; /* on failure cas_pg_run rolls back */
}

/* ---- get, stat ---- */

/* A stored row turned into a validated directory: -EBADMSG (logged) if
 * it does not decode, hash to d or carry its size. */
static int decode_row(const PGresult *res, int row, int size_col, const struct cas_digest *d,
                      struct cas_directory **ret) {
        _cleanup_(cas_directory_freep) struct cas_directory *dir = NULL;
        const uint8_t *data;
        size_t len;
        int64_t size;

        if (cas_pg_get_int8(res, row, size_col, &size) < 0 || cas_pg_bytes(res, row, size_col + 1, &data, &len) < 0 ||
            cas_directory_decode(data, len, 0, &dir, NULL) < 0 || !cas_digest_equal(&dir->digest, d) ||
            dir->size != (uint64_t) size)
                return log_error_errno(-EBADMSG, "Stored directory %s is corrupt", CAS_DIGEST_B3(d));
        *ret = TAKE_PTR(dir);
        return 0;
}

struct get_ctx {
        const struct cas_pg_stmt *st;
        const struct cas_digest *d;
        PGresult *res;
};

static int get_in(struct cas_pg_conn *c, void *userdata) {
        struct get_ctx *g = userdata;
        const char *vals[1] = { (const char *) g->d->b };
        int lens[1] = { CAS_DIGEST_LEN };

        PQclear(g->res);
        g->res = NULL;
        return cas_pg_query(c, g->st, 1, vals, lens, &g->res);
}

/* The row of d by st (get or stat): *ret to PQclear, -ENOENT if none. */
static int fetch_row(struct dir_pg *s, const struct cas_pg_stmt *st, const struct cas_digest *d, PGresult **ret) {
        struct get_ctx g = { .st = st, .d = d };
        int r = cas_pg_run(s->pg, get_in, &g);

        if (r >= 0 && PQntuples(g.res) == 0)
                r = -ENOENT;
        if (r < 0) {
                PQclear(g.res);
                return r;
        }
        *ret = g.res;
        return 0;
}

static int pg_get(struct cas_dir_service *ds, const struct cas_digest *d, struct cas_directory **ret) {
        PGresult *res = NULL;
        int r = fetch_row(to_pg(ds), &st_get, d, &res);

        if (r < 0)
                return r;
        r = decode_row(res, 0, 0, d, ret);
        PQclear(res);
        return r;
}

static int pg_stat(struct cas_dir_service *ds, const struct cas_digest *d, uint64_t *ret_size) {
        PGresult *res = NULL;
        int64_t size;
        int r = fetch_row(to_pg(ds), &st_stat, d, &res);

        if (r < 0)
                return r;
        r = cas_pg_get_int8(res, 0, 0, &size);
        PQclear(res);
        if (r < 0 || size < 0)
                return log_error_errno(-EBADMSG, "Stored directory %s is corrupt", CAS_DIGEST_B3(d));
        *ret_size = (uint64_t) size;
        return 0;
}

/* ---- put ---- */

/* A digest with a size: the batch's directories and the children found
 * in the database, in hash maps keyed by digest. */
struct sized {
        struct cas_digest digest;
        uint64_t size;
        size_t index; /* in the batch; SIZE_MAX for a stored child */
};

static bool sized_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct sized *) entry)->digest, key);
}

static bool digest_eq(const void *entry, const void *key) {
        return cas_digest_equal(entry, key);
}

struct put_ctx {
        struct cas_directory *const *dirs;
        size_t n;
        unsigned flags;
        enum cas_verr *ret_why;
        size_t *order;   /* batch indexes to write: first occurrences, by digest */
        size_t n_order;
        struct sized *mine; /* [n]: each batch directory */
        struct hashmap batch;  /* digest -> first struct sized in mine */
        struct hashmap stored; /* digest -> struct sized (malloc) found in the database */
        size_t checking;       /* the batch index being checked */
};

/* Sees the batch's earlier directories and the stored ones, as the LMDB
 * backend's transaction does. */
static int child_size(void *userdata, const struct cas_digest *d, uint64_t *ret_size) {
        struct put_ctx *p = userdata;
        uint64_t h = cas_digest_hash(d);
        struct sized *e = hashmap_get(&p->batch, h, d);

        if (!e || e->index >= p->checking)
                e = hashmap_get(&p->stored, h, d);
        if (!e)
                return -ENOENT;
        *ret_size = e->size;
        return 0;
}

static int stored_row(struct put_ctx *p, const PGresult *res, int row) {
        const uint8_t *key;
        size_t len;
        int64_t size;
        struct sized *e;

        if (cas_pg_bytes(res, row, 0, &key, &len) < 0 || len != CAS_DIGEST_LEN ||
            cas_pg_get_int8(res, row, 1, &size) < 0 || size < 0)
                return -EBADMSG;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        memcpy(e->digest.b, key, CAS_DIGEST_LEN);
        e->size = (uint64_t) size;
        e->index = SIZE_MAX;
        if (hashmap_get(&p->stored, cas_digest_hash(&e->digest), &e->digest)) {
                free(e);
                return 0;
        }
        int r = hashmap_put(&p->stored, cas_digest_hash(&e->digest), e);
        if (r < 0)
                free(e);
        return r;
}

/* Looks up, in one query, the children no earlier batch entry provides. */
static int fetch_stored_children(struct cas_pg_conn *c, struct put_ctx *p) {
        struct cas_pg_array want;
        struct hashmap asked;
        PGresult *res = NULL;
        int r = 0;

        hashmap_init(&asked, digest_eq);
        cas_pg_array_init(&want, CAS_PG_OID_BYTEA);
        for (size_t i = 0; i < p->n && r >= 0; i++)
                for (size_t j = 0; j < p->dirs[i]->n_entries && r >= 0; j++) {
                        const struct cas_node *e = &p->dirs[i]->entries[j];
                        struct sized *b;
                        uint64_t h;

                        if (e->kind != CAS_NODE_DIRECTORY)
                                continue;
                        h = cas_digest_hash(&e->digest);
                        b = hashmap_get(&p->batch, h, &e->digest);
                        if ((b && b->index < i) || hashmap_get(&asked, h, &e->digest))
                                continue;
                        r = hashmap_put(&asked, h, (void *) &e->digest);
                        cas_pg_array_add(&want, e->digest.b, CAS_DIGEST_LEN);
                }
        hashmap_done(&asked);
        if (r >= 0)
                r = cas_pg_array_finish(&want);
        if (r >= 0 && want.n > 0) {
                const char *vals[1] = { (const char *) want.buf };
                int lens[1] = { (int) want.len };
                r = cas_pg_query(c, &st_sizes, 1, vals, lens, &res);
        }
        for (int i = 0; r >= 0 && res && i < PQntuples(res); i++)
                r = stored_row(p, res, i);
        PQclear(res);
        cas_pg_array_done(&want);
        return r;
}

static int insert_dirs(struct cas_pg_conn *c, struct put_ctx *p, size_t from, size_t to) {
        struct cas_pg_array keys, sizes, datas;
        PGresult *res = NULL;
        int r = 0;

        cas_pg_array_init(&keys, CAS_PG_OID_BYTEA);
        cas_pg_array_init(&sizes, CAS_PG_OID_INT8);
        cas_pg_array_init(&datas, CAS_PG_OID_BYTEA);
        for (size_t k = from; k < to && r >= 0; k++) {
                const struct cas_directory *d = p->dirs[p->order[k]];
                _cleanup_free_ uint8_t *buf = NULL;
                size_t len;

                r = cas_directory_encode(d, &buf, &len);
                if (r < 0)
                        break;
                cas_pg_array_add(&keys, d->digest.b, CAS_DIGEST_LEN);
                cas_pg_array_add_int8(&sizes, (int64_t) d->size);
                cas_pg_array_add(&datas, buf, len);
        }
        if (r >= 0)
                r = cas_pg_array_finish(&keys);
        if (r >= 0)
                r = cas_pg_array_finish(&sizes);
        if (r >= 0)
                r = cas_pg_array_finish(&datas);
        if (r >= 0) {
                const char *vals[3] = { (char *) keys.buf, (char *) sizes.buf, (char *) datas.buf };
                int lens[3] = { (int) keys.len, (int) sizes.len, (int) datas.len };
                r = cas_pg_query(c, &st_insert, 3, vals, lens, &res);
        }
        for (int i = 0; r >= 0 && i < PQntuples(res); i++) {
                const uint8_t *key, *upd;
                size_t len, ulen;
                struct cas_digest d;

                if (cas_pg_bytes(res, i, 0, &key, &len) < 0 || len != CAS_DIGEST_LEN ||
                    cas_pg_bytes(res, i, 1, &upd, &ulen) < 0 || ulen != 1 || !upd[0])
                        continue;
                memcpy(d.b, key, CAS_DIGEST_LEN);
                log_warning("Replacing the corrupt record of directory %s", CAS_DIGEST_B3(&d));
        }
        PQclear(res);
        cas_pg_array_done(&keys);
        cas_pg_array_done(&sizes);
        cas_pg_array_done(&datas);
        return r;
}

static int insert_edges(struct cas_pg_conn *c, struct put_ctx *p) {
        struct cas_pg_edges e = {};
        int r = 0;

        for (size_t k = 0; k < p->n_order && r >= 0; k++)
                r = cas_pg_edges_add(&e, p->dirs[p->order[k]]);
        if (r >= 0)
                r = cas_pg_edges_insert(c, &e);
        cas_pg_edges_done(&e);
        return r;
}

static bool free_entry(void *entry, void *userdata) {
        (void) userdata;
        free(entry);
        return true;
}

static int put_body(struct cas_pg_conn *c, void *userdata) {
        struct put_ctx *p = userdata;
        int r;

        hashmap_foreach(&p->stored, free_entry, NULL);
        hashmap_done(&p->stored);
        hashmap_init(&p->stored, sized_eq);
        r = fetch_stored_children(c, p);
        if (r < 0)
                return r;
        /* validated before anything is written */
        for (size_t i = 0; i < p->n; i++) {
                p->checking = i;
                r = cas_dir_check_children(p->dirs[i], p->flags, child_size, p, p->ret_why);
                if (r < 0)
                        return r;
        }
        for (size_t k = 0; k < p->n_order && r >= 0; k += CAS_PG_ROWS_PER_STATEMENT)
                r = insert_dirs(c, p, k, MIN(p->n_order, k + CAS_PG_ROWS_PER_STATEMENT));
        if (r >= 0)
                r = insert_edges(c, p);
        return r;
}

static int put_in(struct cas_pg_conn *c, void *userdata) {
        return run_in_transaction(c, put_body, userdata);
}

static int order_cmp(const void *a, const void *b, void *userdata) {
        struct cas_directory *const *dirs = userdata;

        return memcmp(dirs[*(const size_t *) a]->digest.b, dirs[*(const size_t *) b]->digest.b, CAS_DIGEST_LEN);
}

/* The batch's maps and the write order: each digest once, by digest. */
static int put_prepare(struct put_ctx *p) {
        p->mine = calloc(p->n, sizeof(*p->mine));
        p->order = calloc(p->n, sizeof(*p->order));
        if (!p->mine || !p->order)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
                const struct cas_digest *d = &p->dirs[i]->digest;
                uint64_t h = cas_digest_hash(d);

                if (hashmap_get(&p->batch, h, d))
                        continue;
                p->mine[i] = (struct sized){ .digest = *d, .size = p->dirs[i]->size, .index = i };
                if (hashmap_put(&p->batch, h, &p->mine[i]) < 0)
                        return -ENOMEM;
                p->order[p->n_order++] = i;
        }
        qsort_r(p->order, p->n_order, sizeof(*p->order), order_cmp, (void *) p->dirs);
        return 0;
}

static int pg_put(struct cas_dir_service *ds, struct cas_directory *const *dirs, size_t n, unsigned flags,
                  enum cas_verr *ret_why) {
        struct dir_pg *s = to_pg(ds);
        struct put_ctx p = { .dirs = dirs, .n = n, .flags = flags, .ret_why = ret_why };
        int r;

        hashmap_init(&p.batch, sized_eq);
        hashmap_init(&p.stored, sized_eq);
        r = put_prepare(&p);
        if (r >= 0)
                r = cas_pg_run(s->pg, put_in, &p); /* all or nothing */
        hashmap_foreach(&p.stored, free_entry, NULL);
        hashmap_done(&p.stored);
        hashmap_done(&p.batch);
        free(p.mine);
        free(p.order);
        if (r < 0 && r != -EBADMSG)
                log_error_errno(r, "Cannot store directories: %m");
        return r < 0 ? r : 0;
}

/* ---- get_recursive ---- */

struct closure_ctx {
        const struct cas_digest *root;
        PGresult *res;
};

static int closure_in(struct cas_pg_conn *c, void *userdata) {
        struct closure_ctx *cl = userdata;
        const char *vals[1] = { (const char *) cl->root->b };
        int lens[1] = { CAS_DIGEST_LEN };

        PQclear(cl->res);
        cl->res = NULL;
        return cas_pg_query(c, &st_closure, 1, vals, lens, &cl->res);
}

/* The rows of the closure by digest; each entry is a struct sized whose
 * index is the row. */
static int index_rows(const PGresult *res, struct sized *rows, struct hashmap *ret) {
        for (int i = 0; i < PQntuples(res); i++) {
                const uint8_t *key;
                size_t len;

                if (cas_pg_bytes(res, i, 0, &key, &len) < 0 || len != CAS_DIGEST_LEN)
                        return -EBADMSG;
                memcpy(rows[i].digest.b, key, CAS_DIGEST_LEN);
                rows[i].index = (size_t) i;
                if (!hashmap_get(ret, cas_digest_hash(&rows[i].digest), &rows[i].digest) &&
                    hashmap_put(ret, cas_digest_hash(&rows[i].digest), &rows[i]) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* One directory of the walk: from the closure's rows, or (an edge the
 * index lacks) fetched on its own. */
static int walk_fetch(struct dir_pg *s, const PGresult *res, struct hashmap *rows, const struct cas_digest *d,
                      struct cas_directory **ret) {
        struct sized *e = hashmap_get(rows, cas_digest_hash(d), d);

        if (!e) {
                log_debug("Directory %s is missing from the edge index; fetching it alone", CAS_DIGEST_B3(d));
                return pg_get(&s->base, d, ret);
        }
        if (PQgetisnull(res, (int) e->index, 2))
                return -ENOENT;
        return decode_row(res, (int) e->index, 1, d, ret);
}

/* The walk's queue (digests in visiting order) and visited set (its own
 * copies, so the queue may move). */
struct bfs {
        struct cas_digest *queue;
        size_t head, count, cap;
        struct hashmap seen;
};

static int bfs_push(struct bfs *b, const struct cas_digest *d) {
        uint64_t h = cas_digest_hash(d);
        struct cas_digest *k;
        int r;

        if (hashmap_get(&b->seen, h, d))
                return 0;
        if (b->count == b->cap) {
                size_t cap = b->cap ? 2 * b->cap : 64;
                struct cas_digest *q = realloc(b->queue, cap * sizeof(*q));
                if (!q)
                        return -ENOMEM;
                b->queue = q;
                b->cap = cap;
        }
        k = malloc(sizeof(*k));
        if (!k)
                return -ENOMEM;
        *k = *d;
        r = hashmap_put(&b->seen, h, k);
        if (r < 0) {
                free(k);
                return r;
        }
        b->queue[b->count++] = *d;
        return 0;
}

/* Breadth first from the root over the fetched rows, each directory once,
 * after the parent that first reached it (as cas_dir_get_recursive). */
static int walk_closure(struct dir_pg *s, const struct cas_digest *root, const PGresult *res,
                        int (*cb)(void *userdata, const struct cas_directory *d), void *userdata) {
        int n = PQntuples(res);
        _cleanup_free_ struct sized *rows = calloc(n > 0 ? n : 1, sizeof(*rows));
        struct hashmap by_digest;
        struct bfs b = {};
        int r;

        if (!rows)
                return -ENOMEM;
        hashmap_init(&by_digest, sized_eq);
        hashmap_init(&b.seen, digest_eq);
        r = index_rows(res, rows, &by_digest);
        if (r >= 0)
                r = bfs_push(&b, root);
        while (r >= 0 && b.head < b.count) {
                _cleanup_(cas_directory_freep) struct cas_directory *d = NULL;
                struct cas_digest next = b.queue[b.head++];

                r = walk_fetch(s, res, &by_digest, &next, &d);
                if (r >= 0)
                        r = cb(userdata, d);
                for (size_t i = 0; r >= 0 && i < d->n_entries; i++)
                        if (d->entries[i].kind == CAS_NODE_DIRECTORY)
                                r = bfs_push(&b, &d->entries[i].digest);
        }
        hashmap_done_free(&b.seen);
        hashmap_done(&by_digest);
        free(b.queue);
        return r;
}

static int pg_get_recursive(struct cas_dir_service *ds, const struct cas_digest *root,
                            int (*cb)(void *userdata, const struct cas_directory *d), void *userdata) {
        struct dir_pg *s = to_pg(ds);
        struct closure_ctx cl = { .root = root };
        int r = cas_pg_run(s->pg, closure_in, &cl);

        if (r >= 0)
                r = walk_closure(s, root, cl.res, cb, userdata);
        PQclear(cl.res);
        return r;
}

/* ---- list, remove ---- */

struct list_ctx {
        cas_dir_list_cb cb;
        void *userdata;
};

static int list_row(void *userdata, const PGresult *res) {
        struct list_ctx *l = userdata;
        const uint8_t *key, *data;
        size_t len, data_len;
        struct cas_digest d;
        int r;

        if (cas_pg_bytes(res, 0, 0, &key, &len) < 0 || len != CAS_DIGEST_LEN ||
            cas_pg_bytes(res, 0, 1, &data, &data_len) < 0) {
                log_error("Malformed row in the directories table (%zu-byte key)", len);
                return 1; /* corrupt: skipped */
        }
        memcpy(d.b, key, CAS_DIGEST_LEN);
        r = l->cb(l->userdata, &d, data, data_len);
        return r < 0 ? r : 0; /* 1 would say corrupt */
}

/* Streams the table in digest order; a row that cannot be a directory's
 * is logged and skipped, and the walk returns -EBADMSG at its end. */
static int pg_list(struct cas_dir_service *ds, cas_dir_list_cb cb, void *userdata) {
        struct list_ctx l = { .cb = cb, .userdata = userdata };

        return cas_pg_list(to_pg(ds)->pg, &st_list, list_row, &l);
}

struct remove_ctx {
        const struct cas_digest *digests;
        size_t n;
};

static int remove_body(struct cas_pg_conn *c, void *userdata) {
        struct remove_ctx *rm = userdata;
        struct cas_pg_array keys;
        int r;

        cas_pg_array_init(&keys, CAS_PG_OID_BYTEA);
        for (size_t i = 0; i < rm->n; i++)
                cas_pg_array_add(&keys, rm->digests[i].b, CAS_DIGEST_LEN);
        r = cas_pg_array_finish(&keys);
        if (r >= 0) {
                const char *vals[1] = { (char *) keys.buf };
                int lens[1] = { (int) keys.len };
                r = cas_pg_query(c, &st_remove, 1, vals, lens, NULL); /* edges go with them (cascade) */
        }
        cas_pg_array_done(&keys);
        return r;
}

static int remove_in(struct cas_pg_conn *c, void *userdata) {
        return run_in_transaction(c, remove_body, userdata);
}

static int pg_remove(struct cas_dir_service *ds, const struct cas_digest *digests, size_t n) {
        struct remove_ctx rm = { digests, n };
        int r = cas_pg_run(to_pg(ds)->pg, remove_in, &rm);

        if (r < 0)
                log_error_errno(r, "Cannot remove directories: %m");
        return r < 0 ? r : 0;
}

static void pg_free(struct cas_dir_service *ds) {
        struct dir_pg *s = to_pg(ds);

        cas_pg_unref(s->pg);
        free(s);
}

static const struct cas_dir_ops dir_pg_ops = {
        .name = "postgresql",
        .get = pg_get,
        .stat = pg_stat,
        .put = pg_put,
        .list = pg_list,
        .remove = pg_remove,
        .get_recursive = pg_get_recursive,
        .free = pg_free,
};

int cas_dir_pg_new(struct cas_pg *pg, struct cas_dir_service **ret) {
        struct dir_pg *s;

        if (!pg || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (struct dir_pg){ .base.ops = &dir_pg_ops, .pg = cas_pg_ref(pg) };
        *ret = &s->base;
        return 0;
}
