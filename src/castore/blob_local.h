/* The local blob backend's private header: its layout constants, its
 * state with the lock rules, and what its files share. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "castore/blobsvc.h"
#include "castore/outboard.h"
#include "util/hashmap.h"

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

/* Packs (blob_local_pack.c, blob_local_pack_write.c): blobs put with
 * CAS_BLOB_PACK and CAS_BLOB_DEFER_SYNC of 1..PACK_BLOB_MAX bytes are
 * appended to one pack per flush, each followed by its outboard if it has
 * more than one group (no .ob file; packs of version 1 have none, and a
 * verified reader of such a blob builds it when opened, from at most four
 * groups).  A pack is also flushed once it holds PACK_BYTES_MAX bytes or
 * flush_at blobs. */
#define PACK_BLOB_MAX (1u << 20)
#define PACK_BYTES_MAX (64u << 20)
#define PACKS_DIR "packs"
#define PACK_ID_LEN 32 /* hex of the first 16 bytes of the index's BLAKE3 */

struct pack;
struct pack_writer;

/* The digest map of the published packs (blob_local_pack_map.c): open
 * addressing with linear probing over 8-byte slots, each a 32-bit
 * fingerprint of the digest (its bytes 8..11) above 1 + the entry's
 * ordinal (a pack's entries are numbered from its base); 0 is an empty
 * slot.  The digests themselves stay in the mapped indexes. */
struct pack_map {
        uint64_t *slots;
        size_t cap;         /* a power of two, or 0 */
        size_t count;       /* slots in use */
        uint32_t next_base; /* the ordinal a pack added next starts at */
};

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
 * Lock order: flush_lock, then scan_lock, then packs_lock, then pack_lock;
 * flush_lock, then pending_lock; init_lock alone. */
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

        /* The pack being written.  Writers reserve their range under
         * pack_lock and pwrite() outside it; a flush detaches the pack and
         * waits on pack_idle until no write to it is in flight. */
        pthread_mutex_t pack_lock;
        pthread_cond_t pack_idle;   /* with pack_lock */
        struct pack_writer *wpack;  /* pack_lock; NULL until the first packed put */

        /* The published packs of blobs/packs/, loaded from their indexes.
         * A lookup takes packs_lock shared and a reference on the pack,
         * then reads outside the lock.  scan_lock serialises rescans of
         * the directory and is held across their I/O on purpose (it only
         * ever waits for another rescan); packs_lock is taken exclusive
         * only to swap the result in, never across I/O. */
        pthread_mutex_t scan_lock;
        struct timespec packs_mtime; /* scan_lock: of blobs/packs/ when last scanned */
        bool packs_scanned;          /* scan_lock */
        /* scan_lock: that mtime was too recent to trust (a change in the
         * same clock tick leaves it as it was), and when that scan ran
         * (CLOCK_MONOTONIC) */
        bool packs_racy;
        struct timespec packs_scan_time;
        pthread_rwlock_t packs_lock;
        struct pack **packs;         /* packs_lock: each holds a reference */
        size_t n_packs;              /* packs_lock */
        struct pack_map pack_map;    /* packs_lock: ordered like packs, by base */
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

/* ---- packs (blob_local_pack.c: published packs, reading;
 * blob_local_pack_write.c: writing, removal, the flush) ---- */

void blob_local_packs_init(struct blob_local *l);
/* Frees the tables; the pack being written must have been flushed. */
void blob_local_packs_done(struct blob_local *l);
/* Size of a packed blob: 0, or -ENOENT.  rescan: on a miss, reload
 * blobs/packs/ if it changed since the last scan and look again. */
int blob_local_pack_stat(struct blob_local *l, const struct cas_digest *d, bool rescan, uint64_t *ret_size);
/* The bytes a packed blob takes in its pack, outboard included: 0, or
 * -ENOENT (rescan as above). */
int blob_local_pack_bytes(struct blob_local *l, const struct cas_digest *d, bool rescan, uint64_t *ret_bytes);
/* Is d in the pack being written (durable at the next flush)? */
bool blob_local_pack_pending(struct blob_local *l, const struct cas_digest *d);
/* Opens a packed blob: a reader of its range of the pack file (fd -1,
 * unverified); -ENOENT if it is in no pack (after a rescan if the
 * directory changed). */
int blob_local_pack_open(struct blob_local *l, const struct cas_digest *d, struct cas_blob_reader **ret);
/* Appends a blob, and its outboard (ob_len bytes, 0 for a blob of one
 * group), to the pack being written: 0, 1 if the flush is due, or -errno. */
int blob_local_pack_put(struct blob_local *l, const struct cas_digest *d, const void *data, size_t len,
                        const uint8_t *ob, size_t ob_len);
/* The outboard stored with a packed blob: 0 (*ret malloc'd), -ENOENT if
 * the blob is in no pack or was packed without one. */
int blob_local_pack_outboard(struct blob_local *l, const struct cas_digest *d, uint8_t **ret, size_t *ret_len);
/* Calls cb for each live packed digest (once each, whatever the number of
 * packs holding it), without a lock held. */
int blob_local_pack_list(struct blob_local *l, cas_blob_list_cb cb, void *userdata);
/* Marks a packed blob removed (every copy); its packs are rewritten
 * without it at the next flush.  0, or -ENOENT if it is in no pack. */
int blob_local_pack_remove(struct blob_local *l, const struct cas_digest *d);
/* Marks the packs smaller than below for rewriting (merged into one at
 * the next flush) if there are at least two: the number marked.  With
 * dry_run only counts.  Adds the packs holding removed blobs to the count. */
size_t blob_local_pack_mark_merge(struct blob_local *l, uint64_t below, bool dry_run);
/* Removes (dry_run: counts) packs without an index and indexes without a
 * pack: leftovers of a crash between the two renames of a flush. */
void blob_local_pack_reclaim(struct blob_local *l, bool dry_run, uint64_t *files, uint64_t *bytes);

/* The flush, with flush_lock held.  prepare copies the live blobs of the
 * packs to rewrite into the pack being written, detaches it, waits for its
 * writes and writes its index as a temporary: *ret is NULL when there is
 * nothing to do.  After the first syncfs, publish renames pack and index
 * (index last) into blobs/packs/.  After the second syncfs, finish (ok:
 * everything above succeeded) removes the rewritten packs and loads the
 * new one, or on failure drops the temporaries; it frees w. */
int blob_local_pack_prepare(struct blob_local *l, struct pack_writer **ret);
int blob_local_pack_publish(struct blob_local *l, struct pack_writer *w);
void blob_local_pack_finish(struct blob_local *l, struct pack_writer *w, bool ok);
