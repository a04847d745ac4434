/* The local store's LMDB environment: opening with the store's settings,
 * named databases, the transaction pattern every backend uses (read,
 * write, get, put, del, scan), and the one mapping of LMDB result codes
 * to -errno. */
#include "castore/lmdb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "util/log.h"
#include "castore/store.h"

int cas_lmdb_errno(int rc) {
        switch (rc) {
        case MDB_SUCCESS:
                return 0;
        case MDB_NOTFOUND:
                return -ENOENT;
        case MDB_KEYEXIST:
                return -EEXIST;
        case MDB_MAP_FULL:
        case MDB_DBS_FULL:
        case MDB_TXN_FULL:
        case MDB_CURSOR_FULL:
        case MDB_PAGE_FULL:
                return -ENOSPC;
        case MDB_READERS_FULL:
        case MDB_MAP_RESIZED:
                return -EAGAIN;
        case MDB_PAGE_NOTFOUND:
        case MDB_CORRUPTED:
        case MDB_INVALID:
        case MDB_VERSION_MISMATCH:
                return -EBADMSG;
        case MDB_PANIC:
        case MDB_TLS_FULL:
                return -EIO;
        case MDB_INCOMPATIBLE:
        case MDB_BAD_RSLOT:
        case MDB_BAD_TXN:
        case MDB_BAD_VALSIZE:
        case MDB_BAD_DBI:
                return -EINVAL;
        default:
                /* LMDB passes system errors through as positive errno values. */
                return rc > 0 ? -rc : -EIO;
        }
}

/* Finds the mapping of data.mdb (the env's file) in /proc/self/maps: LMDB
 * keeps its address to itself unless the map is fixed.  Not found (no
 * /proc): db->map stays NULL and cas_lmdb_release_pages does nothing. */
static void map_find(struct cas_lmdb *db) {
        unsigned long start, end, off, ino, maj, min;
        char line[512];
        struct stat st;
        FILE *f;
        int fd;

        if (mdb_env_get_fd(db->env, &fd) != MDB_SUCCESS || fstat(fd, &st) < 0)
                return;
        f = fopen("/proc/self/maps", "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%lx-%lx %*s %lx %lx:%lx %lu", &start, &end, &off, &maj, &min, &ino) == 6 &&
                    off == 0 && ino == st.st_ino && maj == major(st.st_dev) && min == minor(st.st_dev)) {
                        db->map = (void *) start;
                        db->map_len = end - start;
                        break;
                }
        fclose(f);
}

/* A new env opened with flags; an env whose open failed is discarded. */
static int env_open(struct cas_lmdb *db, const char *dir, unsigned flags) {
        int rc;

        if (db->env)
                mdb_env_close(db->env);
        db->env = NULL;
        rc = mdb_env_create(&db->env);
        if (rc == 0)
                rc = mdb_env_set_maxdbs(db->env, CAS_LMDB_MAX_DBS);
        if (rc == 0)
                rc = mdb_env_set_maxreaders(db->env, CAS_LMDB_MAX_READERS);
        if (rc == 0)
                rc = mdb_env_set_mapsize(db->env, CAS_LMDB_MAP_SIZE);
        if (rc == 0)
                rc = mdb_env_open(db->env, dir, flags, 0664); /* the umask decides: a group may share a store */
        return rc;
}

int cas_lmdb_open(const char *dir, unsigned flags, struct cas_lmdb **ret) {
        struct cas_lmdb *db;
        bool ro = flags & CAS_STORE_READONLY;
        int rc, dead = 0;

        if (!dir || !ret)
                return -EINVAL;
        if ((flags & CAS_STORE_CREATE) && !ro && mkdir(dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(negative_errno(), "Cannot create %s: %m", dir);
        if (!(flags & CAS_STORE_CREATE)) {
                /* mdb_env_open would create an empty env: refuse instead. */
                _cleanup_free_ char *data = NULL;
                struct stat st;

                if (asprintf(&data, "%s/data.mdb", dir) < 0)
                        return -ENOMEM;
                if (stat(data, &st) < 0)
                        return log_error_errno(negative_errno(), "Cannot open metadata database %s: %m", data);
        }

        db = calloc(1, sizeof(*db));
        if (!db)
                return -ENOMEM;
        db->readonly = ro;
        pthread_mutex_init(&db->dbi_lock, NULL);
        rc = env_open(db, dir, MDB_NOTLS | (ro ? MDB_RDONLY : 0));
        if (rc == EACCES && !ro && !(flags & CAS_STORE_CREATE)) {
                /* a user who may read the store but not write it: reads
                 * work, writes fail with -EROFS */
                log_debug("No write access to %s: opening it read-only", dir);
                db->readonly = ro = true;
                rc = env_open(db, dir, MDB_NOTLS | MDB_RDONLY);
        }
        if (rc == EACCES && ro) {
                /* A reader without write access to lock.mdb (a store shared
                 * read-only with other users): no reader slot.  LMDB then
                 * cannot keep a writer from reusing pages this reader
                 * still walks, so such a reader is safe while no import
                 * runs; with imports, give readers the lock file (a group
                 * with write access to it: docs/SYSTEM.md).  Each read is
                 * one short transaction, and directories are re-hashed on
                 * every get, so a torn read shows as an error. */
                log_debug("No write access to %s/lock.mdb: reading without LMDB's lock", dir);
                rc = env_open(db, dir, MDB_NOTLS | MDB_RDONLY | MDB_NOLOCK);
        }
        if (rc == 0)
                /* Free the reader slots of processes that died in a transaction. */
                rc = mdb_reader_check(db->env, &dead);
        if (rc != 0) {
                int r = cas_lmdb_errno(rc);
                log_error_errno(r, "Cannot open metadata database in %s: %s", dir, mdb_strerror(rc));
                cas_lmdb_close(db);
                return r;
        }
        if (dead > 0)
                log_debug("Cleared %d stale LMDB reader slots", dead);
        map_find(db);
        *ret = db;
        return 0;
}

void cas_lmdb_close(struct cas_lmdb *db) {
        if (!db)
                return;
        if (db->env)
                mdb_env_close(db->env);
        pthread_mutex_destroy(&db->dbi_lock);
        free(db);
}

void cas_lmdb_release_pages(struct cas_lmdb *db) {
        MDB_envinfo info;
        MDB_stat st;

        if (!db || !db->map || mdb_env_info(db->env, &info) != MDB_SUCCESS ||
            mdb_env_stat(db->env, &st) != MDB_SUCCESS)
                return;
        /* the pages in use, not the whole reservation; advice only: a
         * failure leaves the pages mapped, which is harmless */
        (void) madvise(db->map, MIN((info.me_last_pgno + 1) * (size_t) st.ms_psize, db->map_len), MADV_DONTNEED);
}

int cas_lmdb_txn_begin(struct cas_lmdb *db, unsigned flags, MDB_txn **ret) {
        if (!db || !ret)
                return -EINVAL;
        if (!(flags & MDB_RDONLY) && db->readonly)
                return -EROFS;
        return cas_lmdb_errno(mdb_txn_begin(db->env, NULL, flags, ret));
}

int cas_lmdb_txn_end(MDB_txn *txn, int r) {
        if (r < 0) {
                mdb_txn_abort(txn);
                return r;
        }
        return cas_lmdb_errno(mdb_txn_commit(txn));
}

int cas_lmdb_read(struct cas_lmdb *db, cas_lmdb_txn_fn fn, void *userdata) {
        MDB_txn *txn;
        int r;

        if (!fn)
                return -EINVAL;
        r = cas_lmdb_txn_begin(db, MDB_RDONLY, &txn);
        if (r < 0)
                return r;
        r = fn(userdata, txn);
        mdb_txn_abort(txn);
        return r;
}

int cas_lmdb_write(struct cas_lmdb *db, cas_lmdb_txn_fn fn, void *userdata) {
        MDB_txn *txn;
        int r;

        if (!fn)
                return -EINVAL;
        r = cas_lmdb_txn_begin(db, 0, &txn);
        if (r < 0)
                return r;
        return cas_lmdb_txn_end(txn, fn(userdata, txn));
}

struct record_op {
        MDB_dbi dbi;
        MDB_val key, val;
        cas_lmdb_record_fn fn;
        void *userdata;
};

static int get_in(void *userdata, MDB_txn *txn) {
        struct record_op *op = userdata;
        int r;

        r = cas_lmdb_errno(mdb_get(txn, op->dbi, &op->key, &op->val));
        if (r < 0)
                return r;
        return op->fn(op->userdata, &op->key, &op->val);
}

int cas_lmdb_get(struct cas_lmdb *db, MDB_dbi dbi, const void *key, size_t key_len, cas_lmdb_record_fn fn,
                 void *userdata) {
        struct record_op op = { .dbi = dbi, .key = { key_len, (void *) key }, .fn = fn, .userdata = userdata };

        if (!key || !fn)
                return -EINVAL;
        return cas_lmdb_read(db, get_in, &op);
}

static int put_in(void *userdata, MDB_txn *txn) {
        struct record_op *op = userdata;

        return cas_lmdb_errno(mdb_put(txn, op->dbi, &op->key, &op->val, 0));
}

int cas_lmdb_put(struct cas_lmdb *db, MDB_dbi dbi, const void *key, size_t key_len, const void *val,
                 size_t val_len) {
        struct record_op op = { .dbi = dbi, .key = { key_len, (void *) key }, .val = { val_len, (void *) val } };

        if (!key || (!val && val_len > 0))
                return -EINVAL;
        return cas_lmdb_write(db, put_in, &op);
}

static int del_in(void *userdata, MDB_txn *txn) {
        struct record_op *op = userdata;

        return cas_lmdb_errno(mdb_del(txn, op->dbi, &op->key, NULL));
}

int cas_lmdb_del(struct cas_lmdb *db, MDB_dbi dbi, const void *key, size_t key_len) {
        struct record_op op = { .dbi = dbi, .key = { key_len, (void *) key } };

        if (!key)
                return -EINVAL;
        return cas_lmdb_write(db, del_in, &op);
}

int cas_lmdb_dbi(struct cas_lmdb *db, const char *name, MDB_dbi *ret) {
        MDB_txn *txn;
        MDB_dbi dbi;
        int r;

        if (!db || !name || !ret)
                return -EINVAL;
        /* The handle becomes visible to other transactions when this one
         * commits (also for a read-only one). */
        pthread_mutex_lock(&db->dbi_lock);
        r = cas_lmdb_txn_begin(db, db->readonly ? MDB_RDONLY : 0, &txn);
        if (r >= 0) {
                r = cas_lmdb_errno(mdb_dbi_open(txn, name, db->readonly ? 0 : MDB_CREATE, &dbi));
                r = cas_lmdb_txn_end(txn, r);
        }
        pthread_mutex_unlock(&db->dbi_lock);
        if (r < 0)
                return log_debug_errno(r, "Cannot open database %s: %m", name);
        *ret = dbi;
        return 0;
}

struct scan {
        MDB_dbi dbi;
        cas_lmdb_record_fn fn;
        void *userdata;
};

static int scan_in(void *userdata, MDB_txn *txn) {
        struct scan *sc = userdata;
        MDB_cursor *cur;
        MDB_val k, v;
        bool corrupt = false;
        int r, rc;

        r = cas_lmdb_errno(mdb_cursor_open(txn, sc->dbi, &cur));
        if (r < 0)
                return r;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r >= 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                r = sc->fn(sc->userdata, &k, &v);
                if (r == -EBADMSG) {
                        corrupt = true;
                        r = 0;
                }
        }
        if (r >= 0 && rc != MDB_NOTFOUND)
                r = cas_lmdb_errno(rc);
        mdb_cursor_close(cur);
        if (r >= 0 && corrupt)
                r = -EBADMSG;
        return r < 0 ? r : 0;
}

int cas_lmdb_scan(struct cas_lmdb *db, MDB_dbi dbi, cas_lmdb_record_fn fn, void *userdata) {
        struct scan sc = { dbi, fn, userdata };

        if (!fn)
                return -EINVAL;
        return cas_lmdb_read(db, scan_in, &sc);
}
