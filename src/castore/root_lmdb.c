/* LMDB root backend.  Database "roots": key = the root's name bytes, value
 * = cas_node_encode() of its node (whose name repeats the key).  LMDB's
 * default key order is bytewise, which is the name order list promises. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "castore/lmdb.h"
#include "castore/rootsvc.h"

struct root_lmdb {
        struct cas_root_service base;
        struct cas_lmdb *db; /* not owned; immutable */
        MDB_dbi dbi;         /* immutable */
};

/* Decodes a stored value and checks it is the node its key names. */
static int decode(const MDB_val *k, const MDB_val *v, struct cas_node *ret, void **ret_mem) {
        void *mem = NULL;
        int r;

        r = cas_node_decode(v->mv_data, v->mv_size, 0, ret, &mem, NULL);
        if (r == -EBADMSG || (r >= 0 && (ret->name_len != k->mv_size || memcmp(ret->name, k->mv_data, k->mv_size))))
                r = log_error_errno(-EBADMSG, "Stored root %.*s is corrupt", (int) MIN(k->mv_size, (size_t) 255),
                                    (const char *) k->mv_data);
        if (r < 0) {
                free(mem);
                return r;
        }
        *ret_mem = mem;
        return 0;
}

struct get_ctx {
        struct cas_node *node;
        void **mem;
};

static int get_record(void *userdata, const MDB_val *k, const MDB_val *v) {
        struct get_ctx *c = userdata;

        return decode(k, v, c->node, c->mem); /* copies out of the map */
}

static int lmdb_get(struct cas_root_service *s, const char *name, size_t len, struct cas_node *ret, void **ret_mem) {
        struct root_lmdb *l = (struct root_lmdb *) s;
        struct get_ctx c = { ret, ret_mem };

        return cas_lmdb_get(l->db, l->dbi, name, len, get_record, &c);
}

static int lmdb_put(struct cas_root_service *s, const struct cas_node *n) {
        struct root_lmdb *l = (struct root_lmdb *) s;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = cas_node_encode(n, &buf, &len);
        if (r < 0)
                return r;
        return cas_lmdb_put(l->db, l->dbi, n->name, n->name_len, buf, len);
}

static int lmdb_remove(struct cas_root_service *s, const char *name, size_t len) {
        struct root_lmdb *l = (struct root_lmdb *) s;

        return cas_lmdb_del(l->db, l->dbi, name, len);
}

struct list_ctx {
        cas_root_list_cb cb;
        void *userdata;
};

static int list_one(void *userdata, const MDB_val *k, const MDB_val *v) {
        struct list_ctx *c = userdata;
        struct cas_node n;
        void *mem;
        int r;

        r = decode(k, v, &n, &mem);
        if (r < 0)
                return r;
        r = c->cb(c->userdata, &n);
        free(mem);
        return r;
}

/* One read transaction for the walk; each node is decoded into its own
 * memory before cb sees it.  A corrupt record is logged and skipped; the
 * walk goes on and returns -EBADMSG at its end. */
static int lmdb_list(struct cas_root_service *s, cas_root_list_cb cb, void *userdata) {
        struct root_lmdb *l = (struct root_lmdb *) s;
        struct list_ctx c = { cb, userdata };

        return cas_lmdb_scan(l->db, l->dbi, list_one, &c);
}

static void lmdb_free(struct cas_root_service *s) {
        free(s);
}

static const struct cas_root_ops root_lmdb_ops = {
        .name = "lmdb",
        .get = lmdb_get,
        .put = lmdb_put,
        .remove = lmdb_remove,
        .list = lmdb_list,
        .free = lmdb_free,
};

int cas_root_lmdb_new(struct cas_lmdb *db, struct cas_root_service **ret) {
        struct root_lmdb *l;
        MDB_dbi dbi;
        int r;

        if (!db || !ret)
                return -EINVAL;
        r = cas_lmdb_dbi(db, "roots", &dbi);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *l = (struct root_lmdb){ .base.ops = &root_lmdb_ops, .db = db, .dbi = dbi };
        *ret = &l->base;
        return 0;
}
