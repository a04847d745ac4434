/* The local store's LMDB environment: one env with named databases
 * (directories, roots, and those of upper layers such as pathinfo).
 * Maps LMDB result codes to -errno in one place (cas_lmdb_errno). */
#pragma once

#include <lmdb.h>

#include "../util/macro.h"

struct cas_lmdb {
        MDB_env *env;
};

/* Opens (creating if flags has CAS_STORE_CREATE) the env in dir. */
int cas_lmdb_open(const char *dir, unsigned flags, struct cas_lmdb **ret);
void cas_lmdb_close(struct cas_lmdb *db);

/* Opens or creates a named database; dbi handles stay valid for the env's
 * life and may be used from any thread. */
int cas_lmdb_dbi(struct cas_lmdb *db, const char *name, MDB_dbi *ret);

/* MDB_* codes and system errors -> -errno (MDB_NOTFOUND -> -ENOENT,
 * MDB_MAP_FULL -> -ENOSPC, corruption -> -EBADMSG, ...). */
int cas_lmdb_errno(int rc);
