/* PostgreSQL PathInfo backend: table pathinfos, key = the 20-byte store
 * path digest, value = the encoded PathInfo, validated again on every
 * read (as the LMDB backend's).  Connections, retries and errors are
 * castore/pg.c's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "castore/pg.h"
#include "store/pathinfosvc.h"
#include "util/log.h"

struct pathinfo_pg {
        struct nix_pathinfo_service base;
        struct cas_pg *pg; /* a reference; immutable */
};

static const struct cas_pg_stmt st_get = { "castore_pi_get", "SELECT digest, data FROM pathinfos WHERE digest = $1" };
static const struct cas_pg_stmt st_put = {
        "castore_pi_put",
        "INSERT INTO pathinfos (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET data = EXCLUDED.data",
};
static const struct cas_pg_stmt st_remove = { "castore_pi_remove", "DELETE FROM pathinfos WHERE digest = $1" };
static const struct cas_pg_stmt st_list = { "castore_pi_list", "SELECT digest, data FROM pathinfos ORDER BY digest" };

static struct pathinfo_pg *to_pg(struct nix_pathinfo_service *s) {
        return (struct pathinfo_pg *) s;
}

/* Decodes row 0 of res and checks that its key is its store path
 * digest: -EBADMSG (logged) otherwise. */
static int decode_row(const PGresult *res, struct nix_pathinfo **ret) {
        const uint8_t *key, *data;
        size_t key_len, len;

        if (cas_pg_bytes(res, 0, 0, &key, &key_len) < 0 || cas_pg_bytes(res, 0, 1, &data, &len) < 0)
                return log_error_errno(-EBADMSG, "Stored PathInfo is corrupt: a NULL column");
        return nix_pathinfo_decode_stored(key, key_len, data, len, ret);
}

struct one_ctx {
        const struct cas_pg_stmt *st;
        const char *vals[2];
        int lens[2];
        int n;
        PGresult *res;
};

static int one_in(struct cas_pg_conn *c, void *userdata) {
        struct one_ctx *o = userdata;

        PQclear(o->res);
        o->res = NULL;
        return cas_pg_query(c, o->st, o->n, o->vals, o->lens, &o->res);
}

static int pg_get(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        struct one_ctx o = { .st = &st_get, .vals = { (const char *) digest }, .lens = { NIX_DIGEST_LEN }, .n = 1 };
        int r = cas_pg_run(to_pg(s)->pg, one_in, &o);

        if (r >= 0)
                r = PQntuples(o.res) == 0 ? -ENOENT : decode_row(o.res, ret);
        PQclear(o.res);
        return r;
}

static int pg_put(struct nix_pathinfo_service *s, const struct nix_pathinfo *pi) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = nix_pathinfo_encode(pi, &buf, &len);
        if (r < 0)
                return r;
        struct one_ctx o = { .st = &st_put,
                             .vals = { (const char *) pi->path.digest, (const char *) buf },
                             .lens = { NIX_DIGEST_LEN, (int) len },
                             .n = 2 };
        r = cas_pg_run(to_pg(s)->pg, one_in, &o);
        PQclear(o.res);
        return r;
}

static int pg_remove(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN]) {
        struct one_ctx o = { .st = &st_remove, .vals = { (const char *) digest }, .lens = { NIX_DIGEST_LEN }, .n = 1 };
        int r = cas_pg_run(to_pg(s)->pg, one_in, &o);

        if (r >= 0 && strcmp(PQcmdTuples(o.res), "0") == 0)
                r = -ENOENT;
        PQclear(o.res);
        return r;
}

struct list_ctx {
        nix_pathinfo_list_cb cb;
        void *userdata;
};

static int list_row(void *userdata, const PGresult *res) {
        struct list_ctx *l = userdata;
        struct nix_pathinfo *pi;
        int r;

        r = decode_row(res, &pi);
        if (r == -EBADMSG)
                return 1; /* corrupt (logged): skipped */
        if (r < 0)
                return r;
        r = l->cb(l->userdata, pi);
        nix_pathinfo_free(pi);
        return r < 0 ? r : 0; /* 1 would say corrupt */
}

/* Streamed in digest order (single row mode), each PathInfo decoded into
 * its own memory before cb sees it.  A corrupt row is logged and skipped;
 * the walk goes on and returns -EBADMSG at its end. */
static int pg_list(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata) {
        struct list_ctx l = { .cb = cb, .userdata = userdata };

        return cas_pg_list(to_pg(s)->pg, &st_list, list_row, &l);
}

static void pg_free(struct nix_pathinfo_service *s) {
        cas_pg_unref(to_pg(s)->pg);
        free(s);
}

static const struct nix_pathinfo_ops pathinfo_pg_ops = {
        .name = "postgresql",
        .get = pg_get,
        .put = pg_put,
        .remove = pg_remove,
        .list = pg_list,
        .free = pg_free,
};

int nix_pathinfo_pg_new(struct cas_pg *pg, struct nix_pathinfo_service **ret) {
        struct pathinfo_pg *s;

        if (!pg || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (struct pathinfo_pg){ .base.ops = &pathinfo_pg_ops, .pg = cas_pg_ref(pg) };
        *ret = &s->base;
        return 0;
}
