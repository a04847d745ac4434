/* The local blob backend's private header: its layout constants, its
 * state with the lock rules, and what its two files share. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "castore/blobsvc.h"

/* Deferred blobs waiting for cas_blob_sync(); past this many, the
 * committing thread flushes them itself, which bounds both the work lost
 * by a crash and the files left in tmp/.  Tunable per service. */
#define PENDING_FLUSH_AT 4096
/* Writers keep this much in memory before creating their temporary: a
 * small blob that already exists costs no file I/O at all. */
#define WRITER_BUF (64 * 1024)
#define SHARD_NAME_LEN 2
#define BLOB_PATH_LEN (SHARD_NAME_LEN + 1 + CAS_DIGEST_HEX_LEN) /* "ab/ab12..." */
#define OUTBOARD_PATH_LEN (BLOB_PATH_LEN + 3)                   /* "ab/ab12....ob" */
#define OUTBOARD_MAX (256u << 20)                               /* that of a 128 GiB blob */
#define PREFIX_MAX 40                                           /* "<pid>-<16 hex>" */
#define TMP_NAME_MAX (PREFIX_MAX + 1 + 20 + 1)

struct pending {
        uint64_t seq; /* temporary <prefix>.<seq> */
        struct cas_digest digest;
};

/* Temporary files are named <prefix>.<seq>, where prefix = "<pid>-<random>"
 * is this service's; tmp/<prefix>.lock is held with flock() for the
 * service's life.  A temporary whose prefix has no lock file, or whose
 * lock file can be locked, belongs to a dead process and is removed before
 * this service writes for the first time.
 *
 * Lock order: flush_lock, then pending_lock; init_lock alone. */
struct blob_local {
        struct cas_blob_service base;
        int blobs_fd; /* immutable */
        int tmp_fd;   /* immutable */
        int noatime;  /* atomic: 0 once O_NOATIME was refused */

        pthread_mutex_t init_lock;
        bool write_ready;          /* init_lock for writing; read with acquire */
        int lock_fd;               /* init_lock; immutable once write_ready */
        char prefix[PREFIX_MAX];   /* init_lock; immutable once write_ready */
        uint64_t next_seq;         /* atomic */

        /* atomic: a deferred put or commit found its blob in place.  That
         * file may have been renamed there by another writer (maybe one
         * killed since) whose final syncfs has not run: the next sync
         * runs one even if nothing of ours is pending, since the caller is
         * about to record a reference to the blob. */
        bool dedup_unsynced;

        pthread_mutex_t pending_lock;
        size_t flush_at;         /* pending_lock */
        struct pending *pending; /* pending_lock */
        size_t n_pending;        /* pending_lock */
        size_t cap_pending;      /* pending_lock */

        /* Serialises flushes and is held across their I/O on purpose: a
         * flush takes blobs out of the list, so cas_blob_sync() must wait
         * for one in progress before it may report that all is durable.
         * Writers never block on it (they only try it). */
        pthread_mutex_t flush_lock;
};

/* ---- paths ---- */


static inline void blob_path(const struct cas_digest *d, char ret[BLOB_PATH_LEN + 1]) {
        char hex[CAS_DIGEST_HEX_LEN + 1];

        cas_digest_to_hex(d, hex);
        memcpy(ret, hex, SHARD_NAME_LEN);
        ret[SHARD_NAME_LEN] = '/';
        memcpy(ret + SHARD_NAME_LEN + 1, hex, CAS_DIGEST_HEX_LEN + 1);
}

static inline void outboard_path(const struct cas_digest *d, char ret[OUTBOARD_PATH_LEN + 1]) {
        blob_path(d, ret);
        memcpy(ret + BLOB_PATH_LEN, ".ob", 4);
}

/* ---- temporaries (blob_local_tmp.c) ---- */

/* tmp/<prefix>.<seq> into ret. */
void blob_local_tmp_name(const struct blob_local *l, uint64_t seq, char ret[TMP_NAME_MAX]);
void blob_local_unlink_tmp(struct blob_local *l, uint64_t seq);
/* Called before every write: takes the prefix and cleans up after dead
 * writers, once.  0 or -errno. */
int blob_local_ensure_writable(struct blob_local *l);
/* Removes (dry_run: counts) the temporaries and lock files of dead
 * services, adding them to the counters.  Call with init_lock held. */
void blob_local_clean_stale(struct blob_local *l, bool dry_run, uint64_t *ret_files, uint64_t *ret_bytes);
/* Creates temporary <prefix>.<seq>: the fd, or -errno. */
int blob_local_tmp_create(struct blob_local *l, uint64_t *ret_seq);
