/* LMDB directory backend.  Database "directories": key = the 32-byte
 * digest; value = the directory's recursive size as 8 bytes little-endian,
 * then its canonical encoding.  The size prefix lets put check a child's
 * claimed size with one lookup and no decoding. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "castore/dirsvc.h"
#include "castore/lmdb.h"
#include "util/hex.h"

#define SIZE_PREFIX 8

struct dir_lmdb {
        struct cas_dir_service base;
        struct cas_lmdb *db; /* not owned; immutable */
        MDB_dbi dbi;         /* immutable */
};

/* Hex of the first (up to) 16 bytes of a key, for messages. */
static void key_hex(const void *data, size_t len, char ret[2 * 16 + 1]) {
        hex_encode(data, MIN(len, (size_t) 16), ret);
}

static int value_size(const MDB_val *v, uint64_t *ret_size) {
        uint64_t le;

        if (v->mv_size < SIZE_PREFIX)
                return -EBADMSG;
        memcpy(&le, v->mv_data, SIZE_PREFIX);
        *ret_size = le64toh(le);
        return 0;
}

static int lookup(struct dir_lmdb *l, MDB_txn *txn, const struct cas_digest *d, MDB_val *ret) {
        MDB_val key = { CAS_DIGEST_LEN, (void *) d->b };

        return cas_lmdb_errno(mdb_get(txn, l->dbi, &key, ret));
}

struct get_ctx {
        struct cas_directory *dir;
        uint64_t size;
};

/* decode copies what it keeps: the map goes with the transaction */
static int get_record(void *userdata, const MDB_val *k, const MDB_val *v) {
        struct get_ctx *c = userdata;
        int r;

        (void) k;
        r = value_size(v, &c->size);
        if (r < 0)
                return r;
        return cas_directory_decode((const uint8_t *) v->mv_data + SIZE_PREFIX, v->mv_size - SIZE_PREFIX, 0,
                                    &c->dir, NULL);
}

static int lmdb_get(struct cas_dir_service *s, const struct cas_digest *d, struct cas_directory **ret) {
        struct dir_lmdb *l = (struct dir_lmdb *) s;
        _cleanup_(cas_directory_freep) struct cas_directory *dir = NULL;
        struct get_ctx c = {};
        int r;

        r = cas_lmdb_get(l->db, l->dbi, d->b, CAS_DIGEST_LEN, get_record, &c);
        dir = c.dir;
        if (r == -EBADMSG || (r >= 0 && (!cas_digest_equal(&dir->digest, d) || dir->size != c.size)))
                return log_error_errno(-EBADMSG, "Stored directory %s is corrupt", CAS_DIGEST_B3(d));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(dir);
        return 0;
}

static int stat_record(void *userdata, const MDB_val *k, const MDB_val *v) {
        (void) k;
        return value_size(v, userdata);
}

static int lmdb_stat(struct cas_dir_service *s, const struct cas_digest *d, uint64_t *ret_size) {
        struct dir_lmdb *l = (struct dir_lmdb *) s;

        return cas_lmdb_get(l->db, l->dbi, d->b, CAS_DIGEST_LEN, stat_record, ret_size);
}

struct put_ctx {
        struct dir_lmdb *l;
        MDB_txn *txn;
        struct cas_directory *const *dirs;
        uint8_t **vals; /* the records to store: size prefix + encoding */
        size_t *lens;
        size_t n;
        unsigned flags;
        enum cas_verr *ret_why;
};

/* Sees the stored directories and those this transaction already put. */
static int txn_child_size(void *userdata, const struct cas_digest *d, uint64_t *ret_size) {
        struct put_ctx *c = userdata;
        MDB_val v;
        int r;

        r = lookup(c->l, c->txn, d, &v);
        if (r < 0)
                return r;
        return value_size(&v, ret_size);
}

static int put_in(void *userdata, MDB_txn *txn) {
        struct put_ctx *c = userdata;
        int r;

        c->txn = txn;
        for (size_t i = 0; i < c->n; i++) {
                const struct cas_digest *d = &c->dirs[i]->digest;
                MDB_val key = { CAS_DIGEST_LEN, (void *) d->b }, v = { c->lens[i], c->vals[i] };
                MDB_val old;

                r = cas_dir_check_children(c->dirs[i], c->flags, txn_child_size, c, c->ret_why);
                if (r < 0)
                        return r;
                r = lookup(c->l, txn, d, &old);
                if (r >= 0 && old.mv_size == v.mv_size && memcmp(old.mv_data, v.mv_data, v.mv_size) == 0)
                        continue; /* already stored */
                if (r < 0 && r != -ENOENT)
                        return r;
                /* Records are canonical: different bytes under this key
                 * are a damaged record, which this put repairs. */
                if (r >= 0)
                        log_warning("Replacing the corrupt record of directory %s", CAS_DIGEST_B3(d));
                r = cas_lmdb_errno(mdb_put(txn, c->l->dbi, &key, &v, 0));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int lmdb_put(struct cas_dir_service *s, struct cas_directory *const *dirs, size_t n, unsigned flags,
                    enum cas_verr *ret_why) {
        struct dir_lmdb *l = (struct dir_lmdb *) s;
        struct put_ctx c = { .l = l, .dirs = dirs, .n = n, .flags = flags, .ret_why = ret_why };
        int r = 0;

        /* Encode before the write transaction, which serialises writers. */
        c.vals = calloc(n, sizeof(*c.vals) + sizeof(*c.lens));
        if (!c.vals)
                return -ENOMEM;
        c.lens = (size_t *) (c.vals + n);
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ uint8_t *buf = NULL;
                uint64_t le = htole64(dirs[i]->size);
                size_t len;

                r = cas_directory_encode(dirs[i], &buf, &len);
                if (r < 0)
                        break;
                c.vals[i] = malloc(SIZE_PREFIX + len);
                if (!c.vals[i]) {
                        r = -ENOMEM;
                        break;
                }
                memcpy(c.vals[i], &le, SIZE_PREFIX);
                memcpy(c.vals[i] + SIZE_PREFIX, buf, len);
                c.lens[i] = SIZE_PREFIX + len;
        }

        if (r >= 0)
                r = cas_lmdb_write(l->db, put_in, &c); /* all or nothing */
        for (size_t i = 0; i < n; i++)
                free(c.vals[i]);
        free(c.vals);
        if (r < 0 && r != -EBADMSG)
                log_error_errno(r, "Cannot store directories: %m");
        return r < 0 ? r : 0;
}

struct list_ctx {
        cas_dir_list_cb cb;
        void *userdata;
};

static int list_one(void *userdata, const MDB_val *k, const MDB_val *v) {
        struct list_ctx *c = userdata;
        struct cas_digest d;

        if (k->mv_size != CAS_DIGEST_LEN || v->mv_size < SIZE_PREFIX) {
                char hex[2 * 16 + 1];

                key_hex(k->mv_data, k->mv_size, hex);
                log_error("Malformed record in the directory database (key %s%s, %zu bytes of value)", hex,
                          k->mv_size > 16 ? "..." : "", v->mv_size);
                return -EBADMSG;
        }
        memcpy(d.b, k->mv_data, CAS_DIGEST_LEN);
        return c->cb(c->userdata, &d, (const uint8_t *) v->mv_data + SIZE_PREFIX, v->mv_size - SIZE_PREFIX);
}

/* cb runs inside one read transaction and gets pointers into the map.  A
 * record that cannot be a directory's (key or value too short) is logged
 * and skipped; the walk goes on and returns -EBADMSG at its end, so that a
 * checker sees every other record. */
static int lmdb_list(struct cas_dir_service *s, cas_dir_list_cb cb, void *userdata) {
        struct dir_lmdb *l = (struct dir_lmdb *) s;
        struct list_ctx c = { cb, userdata };

        return cas_lmdb_scan(l->db, l->dbi, list_one, &c);
}

struct remove_ctx {
        struct dir_lmdb *l;
        const struct cas_digest *digests;
        size_t n;
};

static int remove_in(void *userdata, MDB_txn *txn) {
        struct remove_ctx *c = userdata;

        for (size_t i = 0; i < c->n; i++) {
                MDB_val key = { CAS_DIGEST_LEN, (void *) c->digests[i].b };
                int r = cas_lmdb_errno(mdb_del(txn, c->l->dbi, &key, NULL));

                if (r < 0 && r != -ENOENT)
                        return r;
        }
        return 0;
}

/* One write transaction: all of them or none. */
static int lmdb_remove(struct cas_dir_service *s, const struct cas_digest *digests, size_t n) {
        struct dir_lmdb *l = (struct dir_lmdb *) s;
        struct remove_ctx c = { l, digests, n };
        int r;

        r = cas_lmdb_write(l->db, remove_in, &c);
        if (r < 0)
                log_error_errno(r, "Cannot remove directories: %m");
        return r < 0 ? r : 0;
}

static void lmdb_free(struct cas_dir_service *s) {
        free(s);
}

static void lmdb_release_memory(struct cas_dir_service *s) {
        cas_lmdb_release_pages(((struct dir_lmdb *) s)->db);
}

static const struct cas_dir_ops dir_lmdb_ops = {
        .name = "lmdb",
        .get = lmdb_get,
        .stat = lmdb_stat,
        .put = lmdb_put,
        .list = lmdb_list,
        .remove = lmdb_remove,
        .release_memory = lmdb_release_memory,
        .free = lmdb_free,
};

int cas_dir_lmdb_new(struct cas_lmdb *db, struct cas_dir_service **ret) {
        struct dir_lmdb *l;
        MDB_dbi dbi;
        int r;

        if (!db || !ret)
                return -EINVAL;
        r = cas_lmdb_dbi(db, "directories", &dbi);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *l = (struct dir_lmdb){ .base.ops = &dir_lmdb_ops, .db = db, .dbi = dbi };
        *ret = &l->base;
        return 0;
}
