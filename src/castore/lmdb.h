/* The local store's LMDB environment: one env with named databases
 * (directories, roots, and those of upper layers such as pathinfo).
 * Maps LMDB result codes to -errno in one place (cas_lmdb_errno). */
#pragma once

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>

#include "util/macro.h"

/* Address space reserved for the map.  LMDB (without MDB_WRITEMAP) grows
 * data.mdb only as pages are written, so this costs virtual addresses, not
 * disk: it is the largest the metadata may ever grow to. */
#define CAS_LMDB_MAP_SIZE (1ULL << 40) /* 1 TiB */
#define CAS_LMDB_MAX_DBS 16
#define CAS_LMDB_MAX_READERS 512

/* The env is opened with MDB_NOTLS: a read transaction is not tied to a
 * thread, and one thread may hold several (a callback of a list may look
 * things up).  Read transactions are snapshots: begin a fresh one per
 * lookup to see what other processes committed since. */
struct cas_lmdb {
        MDB_env *env;
        bool readonly;            /* immutable */
        pthread_mutex_t dbi_lock; /* serialises mdb_dbi_open (LMDB requires it) */
        /* immutable: where LMDB mapped data.mdb (found in /proc/self/maps
         * when the env is opened; LMDB does not tell), or NULL */
        void *map;
        size_t map_len;
};

/* Opens the env in dir.  flags: CAS_STORE_CREATE creates dir and the env
 * if missing (otherwise a missing env is -ENOENT); CAS_STORE_READONLY opens
 * it read-only (write transactions then fail with -EROFS). */
int cas_lmdb_open(const char *dir, unsigned flags, struct cas_lmdb **ret);
void cas_lmdb_close(struct cas_lmdb *db);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_lmdb *, cas_lmdb_close);

/* Unmaps the pages of the map that reads made resident in this process:
 * they stay in the page cache (the map is shared and never written
 * through), and the next read of one faults it in again.  What a burst of
 * lookups added to the process's RSS goes back.  Thread-safe. */
void cas_lmdb_release_pages(struct cas_lmdb *db);

/* Opens a named database, creating it unless the env is read-only (then a
 * missing one is -ENOENT).  dbi handles stay valid for the env's life and
 * may be used from any thread.  Thread-safe. */
int cas_lmdb_dbi(struct cas_lmdb *db, const char *name, MDB_dbi *ret);

/* mdb_txn_begin with errors mapped; flags: 0 (write) or MDB_RDONLY.  A
 * write transaction on a read-only env is -EROFS.  A write transaction
 * must be committed or aborted by the thread that began it. */
int cas_lmdb_txn_begin(struct cas_lmdb *db, unsigned flags, MDB_txn **ret);

/* Ends txn, which is gone afterwards: commits it if r >= 0 and returns
 * the commit's result (mapped), else aborts it and returns r.  Every
 * begin is paired with this one call (or with mdb_txn_abort for a read
 * transaction nothing is learnt from). */
int cas_lmdb_txn_end(MDB_txn *txn, int r);

/* MDB_* codes and system errors -> -errno (MDB_NOTFOUND -> -ENOENT,
 * MDB_MAP_FULL -> -ENOSPC, corruption -> -EBADMSG, ...).  0 stays 0. */
int cas_lmdb_errno(int rc);

/* Work done inside a transaction: >= 0 or -errno. */
typedef int (*cas_lmdb_txn_fn)(void *userdata, MDB_txn *txn);

/* Runs fn in a fresh read transaction (a snapshot of what is committed
 * now), then aborts it: fn copies out what it keeps, since pointers into
 * the map die with the transaction.  Returns fn's result. */
int cas_lmdb_read(struct cas_lmdb *db, cas_lmdb_txn_fn fn, void *userdata);

/* Runs fn in a write transaction, committed if fn returns >= 0 and
 * aborted otherwise: all of fn's writes or none.  Writers are serialised
 * by LMDB (this blocks while another one runs); -EROFS on a read-only
 * env.  Returns fn's result or the commit's error. */
int cas_lmdb_write(struct cas_lmdb *db, cas_lmdb_txn_fn fn, void *userdata);

/* Called with one record, key and value pointing into the map (valid only
 * during the call). */
typedef int (*cas_lmdb_record_fn)(void *userdata, const MDB_val *key, const MDB_val *val);

/* Looks key up in dbi in a fresh read transaction and hands the record to
 * fn, which copies out what it keeps.  -ENOENT if absent (fn not called),
 * else fn's result. */
int cas_lmdb_get(struct cas_lmdb *db, MDB_dbi dbi, const void *key, size_t key_len, cas_lmdb_record_fn fn,
                 void *userdata);

/* Stores (replacing) or deletes one record, each in its own write
 * transaction.  del: -ENOENT if absent. */
int cas_lmdb_put(struct cas_lmdb *db, MDB_dbi dbi, const void *key, size_t key_len, const void *val,
                 size_t val_len);
int cas_lmdb_del(struct cas_lmdb *db, MDB_dbi dbi, const void *key, size_t key_len);

/* Walks database dbi in key order inside one read transaction, calling fn
 * for each record.  fn returns < 0 to stop the scan with that error,
 * except -EBADMSG: the record is skipped as corrupt and the scan goes on.
 * Returns the first error of fn, or -EBADMSG at the end if any record was
 * skipped as corrupt (so a checker sees every other record), else 0. */
int cas_lmdb_scan(struct cas_lmdb *db, MDB_dbi dbi, cas_lmdb_record_fn fn, void *userdata);
