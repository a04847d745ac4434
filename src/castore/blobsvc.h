/* Blob service: stores byte strings under their BLAKE3 digest.  One ops
 * table per backend (memory://, the local store's one-file-per-blob
 * directory, later remote ones); callers use the cas_blob_* wrappers, which
 * turn a NULL op into -EOPNOTSUPP.  All operations are thread-safe. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/macro.h"
#include "castore/digest.h"

struct cas_blob_service;
struct cas_blob_reader;
struct cas_blob_writer;

enum {
        /* put/writer: durability (fsync + rename into place) may wait for
         * the next cas_blob_sync(); until then the blob may not be visible.
         * A blob found already in place (perhaps renamed there by another
         * writer that has not synced yet) is also durable only after that
         * sync.  Importers use it to replace one fsync per file by one
         * syncfs. */
        CAS_BLOB_DEFER_SYNC = 1 << 0,
        /* put/writer: visible at once but never synced, for a cache whose
         * blobs can be fetched again: after a crash such a blob may be
         * torn, which every (verified) read notices and `verify --repair`
         * removes. */
        CAS_BLOB_NO_SYNC = 1 << 1,
        /* put, with CAS_BLOB_DEFER_SYNC: the local store may append a small
         * blob (no outboard) to a pack file in arrival order, so that a
         * tree imported together is read back mostly sequentially.  Other
         * backends ignore it.  Set by the importer. */
        CAS_BLOB_PACK = 1 << 2,
};

/* Called for each blob by list(); a negative return stops the walk and is
 * returned by list(). */
typedef int (*cas_blob_list_cb)(void *userdata, const struct cas_digest *d);

struct cas_blob_ops {
        const char *name;
        /* Writes wait on the network (an object store, a daemon, a cache in
         * front of one): importers run more of them at once than CPUs. */
        bool remote;
        /* 0 and the size, or -ENOENT. */
        int (*stat)(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size);
        /* Opens a blob for positional reads; -ENOENT if absent. */
        int (*open)(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_reader **ret);
        /* Stores a whole buffer; cheap when the blob already exists. */
        int (*put)(struct cas_blob_service *s, const void *data, size_t len, unsigned flags,
                   struct cas_digest *ret_digest);
        /* Starts a streaming write that hashes as it goes. */
        int (*writer_new)(struct cas_blob_service *s, unsigned flags, struct cas_blob_writer **ret);
        /* Makes every blob committed with CAS_BLOB_DEFER_SYNC before the
         * call durable and visible.  NULL (nothing is ever deferred): the
         * wrapper returns 0. */
        int (*sync)(struct cas_blob_service *s);
        /* Enumerates stored digests (any order). */
        int (*list)(struct cas_blob_service *s, cas_blob_list_cb cb, void *userdata);
        /* Removes a blob (and its outboard): for repairs, since a blob that
         * rotted in place keeps its size, and a writer finding it there
         * stores nothing; and for the garbage collector (castore/gc.h).
         * -ENOENT if absent.  Readers open already keep reading it. */
        int (*remove)(struct cas_blob_service *s, const struct cas_digest *d);
        /* The bytes a blob takes on disk: allocated blocks (st_blocks *
         * 512) of its file and of its outboard if it has one.  -ENOENT if
         * absent.  NULL (memory, remote): the wrapper returns -EOPNOTSUPP. */
        int (*disk_usage)(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_bytes);
        /* Outboards (src/castore/outboard.h), kept by backends that store
         * blobs where reads are not free.  get: the stored bytes, untrusted
         * (the caller checks them against the digest), malloc'ed; -ENOENT
         * if none.  put: stores one the caller verified; replaces a
         * damaged one.  NULL: the reader builds the outboard on each open. */
        int (*outboard_get)(struct cas_blob_service *s, const struct cas_digest *d, uint8_t **ret,
                            size_t *ret_len);
        int (*outboard_put)(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *ob,
                            size_t len);
        /* Optional: streams blob d's bytes into w as they arrive, without
         * keeping them (a remote fetch straight into a cache's writer);
         * the caller commits w and compares the digest.  NULL: callers
         * open and copy. */
        int (*fetch_into)(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_writer *w);
        void (*free)(struct cas_blob_service *s);
};

/* Backends embed this as their first member. */
struct cas_blob_service {
        const struct cas_blob_ops *ops;
};

/* An open blob.  pread is positional and thread-safe: one reader may be
 * shared by many threads with no lock.  The bytes are those stored; use
 * the verified reader (castore/vblob.h) for bytes that leave the store (a
 * local file can rot). */
struct cas_blob_reader_ops {
        /* Reads up to len bytes at off; returns bytes read (0 at or past the
         * end), or -errno. */
        ssize_t (*pread)(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off);
        void (*close)(struct cas_blob_reader *r);
};

struct cas_blob_reader {
        const struct cas_blob_reader_ops *ops;
        struct cas_digest digest;
        uint64_t size;
        /* >= 0 when the blob is a plain file the caller may pread or hand
         * to the kernel (FUSE passthrough); owned by the reader.
         * -1 otherwise. */
        int fd;
        /* Non-NULL when the whole blob is in memory, valid until close. */
        const uint8_t *data;
        /* The blob's outboard when the backend computed it while reading
         * the whole blob (a remote fetch), valid until close; NULL
         * otherwise.  Checked against the digest like a stored one. */
        const uint8_t *outboard;
        size_t outboard_len;
        /* Every byte was hashed to the digest when the reader was opened
         * and is held where nothing else writes (this process's memory):
         * verified reads need not hash it again. */
        bool verified;
};

struct cas_blob_writer_ops {
        int (*write)(struct cas_blob_writer *w, const void *buf, size_t len);
        /* Finishes: the blob is stored under its digest (see
         * CAS_BLOB_DEFER_SYNC).  Frees w, whatever the outcome. */
        int (*commit)(struct cas_blob_writer *w, struct cas_digest *ret_digest, uint64_t *ret_size);
        /* Drops what was written and frees w. */
        void (*abort)(struct cas_blob_writer *w);
};

struct cas_blob_writer {
        const struct cas_blob_writer_ops *ops;
};

/* Wrappers: argument checks, NULL op -> -EOPNOTSUPP. */
int cas_blob_stat(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size);
int cas_blob_open(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_reader **ret);
int cas_blob_put(struct cas_blob_service *s, const void *data, size_t len, unsigned flags,
                 struct cas_digest *ret_digest);
int cas_blob_writer_new(struct cas_blob_service *s, unsigned flags, struct cas_blob_writer **ret);
int cas_blob_sync(struct cas_blob_service *s);
int cas_blob_list(struct cas_blob_service *s, cas_blob_list_cb cb, void *userdata);
int cas_blob_remove(struct cas_blob_service *s, const struct cas_digest *d);
int cas_blob_disk_usage(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_bytes);
int cas_blob_outboard_get(struct cas_blob_service *s, const struct cas_digest *d, uint8_t **ret, size_t *ret_len);
int cas_blob_outboard_put(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *ob, size_t len);
void cas_blob_service_free(struct cas_blob_service *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_blob_service *, cas_blob_service_free);

ssize_t cas_blob_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off);
/* Reads until len bytes or the blob's end: the count, or -errno. */
ssize_t cas_blob_pread_full(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off);
void cas_blob_reader_close(struct cas_blob_reader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_blob_reader *, cas_blob_reader_close);

int cas_blob_write(struct cas_blob_writer *w, const void *buf, size_t len);
int cas_blob_commit(struct cas_blob_writer *w, struct cas_digest *ret_digest, uint64_t *ret_size);
void cas_blob_abort(struct cas_blob_writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_blob_writer *, cas_blob_abort);


/* Whether the kernel verifies every page read from this blob file itself
 * (fs-verity is enabled on it), so that it may be handed to the kernel
 * (FUSE passthrough) without giving up verification. */
bool cas_blob_fd_kernel_verified(int fd);
/* The same for a sample blob of the service (its first listed): whether
 * the store's blobs are fs-verity files.  False for an empty store. */
bool cas_blob_service_kernel_verified(struct cas_blob_service *s);

/* For backends' list(): calls cb for the digest of each entry of map (a
 * util/hashmap whose entries start with a struct cas_digest), copied out
 * under lock taken for reading, so that cb runs with no lock held (it may
 * call back into the service).  0, -ENOMEM, or cb's negative return. */
struct hashmap;
int cas_blob_list_digest_map(const struct hashmap *map, pthread_rwlock_t *lock, cas_blob_list_cb cb,
                             void *userdata);

/* Backends. */
int cas_blob_memory_new(struct cas_blob_service **ret);
/* One file per blob under dir/<2 hex>/<64 hex>, small imported blobs in
 * pack files under dir/packs/ (see CAS_BLOB_PACK); temporary files in
 * tmpdir (same filesystem, else -EXDEV).  Creates the two directories (not
 * their parents) if missing.  Temporaries of dead processes are removed
 * before the first write.  Deferred blobs still pending when the service
 * is freed are synced then. */
int cas_blob_local_new(const char *dir, const char *tmpdir, struct cas_blob_service **ret);
/* Local store only: how many CAS_BLOB_DEFER_SYNC blobs may wait before a
 * commit flushes them itself (default 4096).  -EINVAL for another backend. */
int cas_blob_local_set_flush_at(struct cas_blob_service *s, size_t n);
/* Local store only, for the garbage collector: removes the temporaries of
 * dead processes (as before a first write) and outboards whose blob is
 * gone (an outboard is stored before its blob, so a failed import can
 * leave one); with dry_run only counts them.  Adds the files and their
 * bytes to *ret_files and *ret_bytes.  -EOPNOTSUPP for another backend. */
int cas_blob_local_reclaim(struct cas_blob_service *s, bool dry_run, uint64_t *ret_files, uint64_t *ret_bytes);
/* Local store only, for the garbage collector (store lock held exclusive):
 * rewrites every pack holding removed blobs, merging packs smaller than
 * merge_below into one when there are two or more, and makes the result
 * durable (cas_blob_sync).  *ret_packs: the packs rewritten (dry_run: that
 * would be).  -EOPNOTSUPP for another backend. */
int cas_blob_local_repack(struct cas_blob_service *s, uint64_t merge_below, bool dry_run, uint64_t *ret_packs);
