/* Directory service: stores validated Directory messages under their
 * digest, closed under children (a directory is only accepted when all of
 * its child directories are present, with acceptable claimed sizes).
 * Backends: memory:// and LMDB in the local store.  Thread-safe. */
#pragma once

#include "util/macro.h"
#include "castore/directory.h"

struct cas_dir_service;

/* Called by list() with each stored digest and its stored bytes (valid
 * only during the call). */
typedef int (*cas_dir_list_cb)(void *userdata, const struct cas_digest *d, const void *data, size_t len);

struct cas_dir_ops {
        const char *name;
        /* A validated copy owned by the caller; -ENOENT if absent; -EBADMSG
         * if the stored bytes do not decode or do not hash to d. */
        int (*get)(struct cas_dir_service *s, const struct cas_digest *d, struct cas_directory **ret);
        /* 0 and the directory's size (recursive entry count), or -ENOENT. */
        int (*stat)(struct cas_dir_service *s, const struct cas_digest *d, uint64_t *ret_size);
        /* Stores dirs[0..n) in order, atomically where the backend can: each
         * one's child directories must be stored already or come earlier in
         * the array (leaves first).  -EBADMSG with *ret_why
         * (CAS_VERR_MISSING_CHILD / CAS_VERR_SIZE_MISMATCH) otherwise.
         * A persistent backend replaces a stored record that is damaged,
         * so putting a directory again repairs it.
         * flags: CAS_DECODE_STRICT_SIZE. */
        int (*put)(struct cas_dir_service *s, struct cas_directory *const *dirs, size_t n, unsigned flags,
                   enum cas_verr *ret_why);
        int (*list)(struct cas_dir_service *s, cas_dir_list_cb cb, void *userdata);
        /* Removes digests[0..n) at once (all or nothing where the backend
         * can); absent ones are skipped.  For the garbage collector, which
         * removes only directories nothing stored refers to any more: the
         * service does not check that no parent remains. */
        int (*remove)(struct cas_dir_service *s, const struct cas_digest *digests, size_t n);
        /* Optional: cas_dir_get_recursive in one request (remote
         * backends); NULL: the wrapper walks with get. */
        int (*get_recursive)(struct cas_dir_service *s, const struct cas_digest *root,
                             int (*cb)(void *userdata, const struct cas_directory *d), void *userdata);
        /* Optional: gives back memory that reads left resident in this
         * process and that the next reads can bring back (an LMDB map's
         * pages, which stay in the page cache).  NULL: nothing to give. */
        void (*release_memory)(struct cas_dir_service *s);
        void (*free)(struct cas_dir_service *s);
};

struct cas_dir_service {
        const struct cas_dir_ops *ops;
};

int cas_dir_get(struct cas_dir_service *s, const struct cas_digest *d, struct cas_directory **ret);
int cas_dir_stat(struct cas_dir_service *s, const struct cas_digest *d, uint64_t *ret_size);
int cas_dir_put(struct cas_dir_service *s, struct cas_directory *const *dirs, size_t n, unsigned flags,
                enum cas_verr *ret_why);
int cas_dir_list(struct cas_dir_service *s, cas_dir_list_cb cb, void *userdata);
int cas_dir_remove(struct cas_dir_service *s, const struct cas_digest *digests, size_t n);
/* For a long-running reader after a burst of reads (a mount whose kernel
 * forgot many inodes): the ops' release_memory, if any.  Thread-safe as
 * get is. */
void cas_dir_release_memory(struct cas_dir_service *s);
void cas_dir_service_free(struct cas_dir_service *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_dir_service *, cas_dir_service_free);

/* Recursive get: calls cb for root and every directory below it, parents
 * before children, each digest once.  -ENOENT if any is missing.  cb gets a
 * borrowed directory (valid during the call). */
typedef int (*cas_dir_walk_cb)(void *userdata, const struct cas_directory *d);
int cas_dir_get_recursive(struct cas_dir_service *s, const struct cas_digest *root, cas_dir_walk_cb cb,
                          void *userdata);

/* Checks one directory against the sizes of its children as a backend's
 * put must: child_size(userdata, digest, &size) gives 0 or -ENOENT. */
typedef int (*cas_dir_child_size_fn)(void *userdata, const struct cas_digest *d, uint64_t *ret_size);
int cas_dir_check_children(const struct cas_directory *d, unsigned flags, cas_dir_child_size_fn child_size,
                           void *userdata, enum cas_verr *ret_why);

int cas_dir_memory_new(struct cas_dir_service **ret);
struct cas_lmdb;
int cas_dir_lmdb_new(struct cas_lmdb *db, struct cas_dir_service **ret);
/* PostgreSQL (castore/pg.h): takes a reference on pg. */
struct cas_pg;
int cas_dir_pg_new(struct cas_pg *pg, struct cas_dir_service **ret);
