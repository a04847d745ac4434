/* LMDB PathInfo backend.  Database "pathinfo" in the local store's
 * environment: key = the 20-byte store path digest, value = the encoded
 * PathInfo, validated again on every read. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "castore/lmdb.h"
#include "util/log.h"
#include "store/pathinfosvc.h"

/* A read-only env may not have the database yet: another process (an
 * import) can create it at any time, so it is looked up again until found,
 * then published once (dbi written before the release store of ready). */
struct pathinfo_lmdb {
        struct nix_pathinfo_service base;
        struct cas_lmdb *db; /* not owned; immutable */
        atomic_uint dbi;     /* valid once ready; racing lookups store the same handle */
        atomic_bool ready;   /* the database exists and dbi is set */
};

/* 0 with the dbi, or -ENOENT while the database does not exist. */
static int pathinfo_dbi(struct pathinfo_lmdb *l, MDB_dbi *ret) {
        MDB_dbi dbi;
        int r;

        if (atomic_load_explicit(&l->ready, memory_order_acquire)) {
                *ret = atomic_load_explicit(&l->dbi, memory_order_relaxed);
                return 0;
        }
        r = cas_lmdb_dbi(l->db, "pathinfo", &dbi);
        if (r < 0)
                return r;
        /* cas_lmdb_dbi gives the same handle to every caller */
        atomic_store_explicit(&l->dbi, dbi, memory_order_relaxed);
        atomic_store_explicit(&l->ready, true, memory_order_release);
        *ret = dbi;
        return 0;
}

/* Decodes a stored value (copying it out of the map) and checks that the
 * key is its store path digest. */
static int decode(const MDB_val *k, const MDB_val *v, struct nix_pathinfo **ret) {
        return nix_pathinfo_decode_stored(k->mv_data, k->mv_size, v->mv_data, v->mv_size, ret);
}

static int get_record(void *userdata, const MDB_val *k, const MDB_val *v) {
        return decode(k, v, userdata);
}

static int lmdb_get(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN], struct nix_pathinfo **ret) {
        struct pathinfo_lmdb *l = (struct pathinfo_lmdb *) s;
        MDB_dbi dbi;
        int r;

        r = pathinfo_dbi(l, &dbi);
        if (r < 0)
                return r; /* -ENOENT: nothing registered yet */
        return cas_lmdb_get(l->db, dbi, digest, NIX_DIGEST_LEN, get_record, ret);
}

static int lmdb_put(struct nix_pathinfo_service *s, const struct nix_pathinfo *pi) {
        struct pathinfo_lmdb *l = (struct pathinfo_lmdb *) s;
        _cleanup_free_ uint8_t *buf = NULL;
        MDB_dbi dbi;
        size_t len;
        int r;

        r = pathinfo_dbi(l, &dbi);
        if (r < 0)
                return r == -ENOENT ? -EROFS : r;
        r = nix_pathinfo_encode(pi, &buf, &len);
        if (r < 0)
                return r;
        return cas_lmdb_put(l->db, dbi, pi->path.digest, NIX_DIGEST_LEN, buf, len);
}

static int lmdb_remove(struct nix_pathinfo_service *s, const uint8_t digest[NIX_DIGEST_LEN]) {
        struct pathinfo_lmdb *l = (struct pathinfo_lmdb *) s;
        MDB_dbi dbi;
        int r;

        r = pathinfo_dbi(l, &dbi);
        if (r < 0)
                return r; /* -ENOENT: nothing registered yet */
        return cas_lmdb_del(l->db, dbi, digest, NIX_DIGEST_LEN);
}

struct list_ctx {
        nix_pathinfo_list_cb cb;
        void *userdata;
};

static int list_one(void *userdata, const MDB_val *k, const MDB_val *v) {
        struct list_ctx *c = userdata;
        struct nix_pathinfo *pi;
        int r;

        r = decode(k, v, &pi);
        if (r < 0)
                return r;
        r = c->cb(c->userdata, pi);
        nix_pathinfo_free(pi);
        return r;
}

/* One read transaction for the walk, in digest order; each PathInfo is
 * decoded into its own memory before cb sees it.  A corrupt record is
 * logged and skipped; the walk goes on and returns -EBADMSG at its end. */
static int lmdb_list(struct nix_pathinfo_service *s, nix_pathinfo_list_cb cb, void *userdata) {
        struct pathinfo_lmdb *l = (struct pathinfo_lmdb *) s;
        struct list_ctx c = { cb, userdata };
        MDB_dbi dbi;
        int r;

        r = pathinfo_dbi(l, &dbi);
        if (r == -ENOENT)
                return 0; /* nothing registered yet */
        if (r < 0)
                return r;
        return cas_lmdb_scan(l->db, dbi, list_one, &c);
}

static void lmdb_free(struct nix_pathinfo_service *s) {
        free(s);
}

static const struct nix_pathinfo_ops pathinfo_lmdb_ops = {
        .name = "lmdb",
        .get = lmdb_get,
        .put = lmdb_put,
        .remove = lmdb_remove,
        .list = lmdb_list,
        .free = lmdb_free,
};

int nix_pathinfo_lmdb_new(struct cas_lmdb *db, struct nix_pathinfo_service **ret) {
        struct pathinfo_lmdb *l;
        MDB_dbi dbi = 0;
        int r;

        if (!db || !ret)
                return -EINVAL;
        /* writable: create it now; read-only: it may come later */
        r = cas_lmdb_dbi(db, "pathinfo", &dbi);
        if (r < 0 && !(r == -ENOENT && db->readonly))
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *l = (struct pathinfo_lmdb){ .base.ops = &pathinfo_lmdb_ops, .db = db };
        atomic_init(&l->dbi, dbi);
        atomic_init(&l->ready, r >= 0);
        *ret = &l->base;
        return 0;
}
