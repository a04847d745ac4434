/* Private to src/fs: the structures shared by the filesystem's files (inode
 * table, root providers, readers, operations), their lock rules, and the
 * functions one file offers the others.  Nothing outside src/fs includes it. */
#pragma once

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "fs/fs.h"
#include "util/hashmap.h"
#include "util/macro.h"

/* Content below the root never changes: the kernel may cache names and
 * attributes for as long as it likes.  Root names can be added, removed
 * or re-pointed at any time, so they are revalidated every second and
 * unknown root names are never cached. */
#define TIMEOUT_IMMUTABLE (365ULL * 24 * 3600)
#define TIMEOUT_ROOT_ENTRY 1
#define TIMEOUT_ROOT_ATTR 1

/* Times of everything but the root (like a Nix store: 1, not 0, so that
 * tools treating 0 as "unknown" still compare equal). */
#define FIXED_TIME 1

#define BLKSIZE 4096

/* Readers kept open after their last use, so that reopening a file costs
 * no open(2) (and no new passthrough registration); fs_config.idle_readers
 * overrides it. */
#define IDLE_READERS_DEFAULT 1024

/* The first 8 bytes of a digest as a number: digests are uniform, so
 * this is a good hash already. */
static inline uint64_t fs_le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

/* What makes two nodes the same inode. */
struct node_key {
        uint8_t kind;                /* enum cas_node_kind */
        bool executable;             /* files */
        struct cas_digest digest;    /* dirs, files: the content digest; symlinks: BLAKE3(target) */
};

/* One inode.  ino, key_hash, key, size and the symlink target are set at
 * creation and never change: read them without the lock while the inode is
 * pinned (or held by a count below). */
struct fs_inode {
        uint64_t ino;
        uint64_t key_hash;
        struct node_key key;
        uint64_t size;               /* files: bytes; dirs: recursive entry count; symlinks: target length */

        /* All of the following: fs->lock.  The inode is freed when every
         * count is zero and it is not busy (fs_inode_release_locked). */
        uint64_t nlookup;            /* references the kernel holds (lookup/readdirplus - forget) */
        uint32_t pins;               /* operations in progress using this inode */
        bool busy;                   /* a Directory fetch or blob open is in progress (fs->cond) */
        /* dirs: once fetched; immutable, freed with the inode, so a pinned
         * inode's Directory is read without the lock */
        struct cas_directory *dir;
        /* files: while used, then idle in fs->idle_*; usable without the
         * lock while opens or reads count it (it is not closed then) */
        struct cas_vblob *reader;
        int backing_id;              /* files: passthrough id for reader, or -1 */
        uint32_t opens;              /* files: open handles */
        uint32_t reads;              /* files: fs_read calls copying from reader right now */
        bool idle;                   /* files: reader unused, on the idle list */
        bool stale;                  /* files: reader failed a check that a fresh open passed: closed,
                                      * not kept idle, once unused */
        struct fs_inode *idle_prev, *idle_next;

        uint16_t target_len;         /* symlinks */
        char target[];               /* symlinks: NUL-terminated */
};

/* A snapshot of the root listing, one per root opendir.  Everything but
 * refs is immutable once the snapshot is in fs->snapshots. */
struct root_snapshot {
        uint64_t fh;
        uint32_t refs;               /* fs->lock: the handle + readdirs in progress */
        size_t n;
        struct cas_node *nodes;      /* sorted by name, unique */
        void **mems;                 /* strings of nodes[i] */
};

/* Lock order: fs->lock is the only lock; it is never held across a
 * service call (fetch, open, verify), a callback into the front end or
 * the backing ops, or anything that can block for long.  fs->cond waits
 * on it for an inode's busy flag. */
struct fs {
        struct cas_blob_service *blobs;   /* immutable */
        struct cas_dir_service *dirs;     /* immutable */
        struct fs_config cfg;             /* immutable; roots array owned */
        uint64_t start_time;              /* immutable: the root's times */

        pthread_mutex_t lock;
        pthread_cond_t cond;              /* signalled when an inode's busy flag clears */
        /* Passthrough: set by fs_set_backing between sessions, when no
         * operation runs (the protocol engine's INIT); read-only while
         * operations run, so they read it without the lock. */
        const struct fs_backing_ops *backing;
        void *backing_ctx;
        struct hashmap by_ino;            /* fs->lock: ino -> struct fs_inode */
        struct hashmap by_key;            /* fs->lock: node_key -> struct fs_inode */
        struct hashmap snapshots;         /* fs->lock: fh -> struct root_snapshot */
        uint64_t next_fh;                 /* fs->lock */
        struct fs_inode *root;            /* immutable: not in the tables, never freed before fs_free */
        struct fs_inode *idle_head, *idle_tail; /* fs->lock: idle readers, least recently used first */
        size_t n_idle;                    /* fs->lock */
        struct fs_stats stats;            /* fs->lock */
};

/* --- inode table (fs_inode.c) --- */

void fs_node_key_of(const struct cas_node *n, struct node_key *ret);
void fs_inodes_init(struct fs *fs);
/* The number this key has or would get now.  fs->lock held. */
uint64_t fs_ino_for_key_locked(struct fs *fs, const struct node_key *k);
/* Finds or creates the inode for node n (its key k from fs_node_key_of,
 * computed before taking the lock) and counts one kernel reference
 * (nlookup); fills *ret for the kernel.  at_root: a root name (short entry
 * timeout).  fs->lock held. */
int fs_inode_lookup_locked(struct fs *fs, const struct cas_node *n, const struct node_key *k, bool at_root,
                           struct fs_entry *ret);
/* NULL if ino is unknown; the root for FS_ROOT_INO.  fs->lock held. */
struct fs_inode *fs_inode_get_locked(struct fs *fs, uint64_t ino);
/* Unlinks in if nothing refers to it any more and returns it, for
 * fs_inode_free() after the lock is dropped; else NULL.  fs->lock held. */
struct fs_inode *fs_inode_release_locked(struct fs *fs, struct fs_inode *in);
/* Frees an inode returned by fs_inode_release_locked (NULL: nothing);
 * fs->lock not held (closing a reader may be a syscall). */
void fs_inode_free(struct fs *fs, struct fs_inode *in);
/* Pins the inode numbered ino for the duration of an operation: -ESTALE
 * if there is none.  Every pin is undone by exactly one unpin. */
int fs_inode_pin(struct fs *fs, uint64_t ino, struct fs_inode **ret);
void fs_inode_unpin(struct fs *fs, struct fs_inode *in);
void fs_attr_fill(const struct fs *fs, const struct fs_inode *in, struct fs_attr *a);
uint32_t fs_node_mode(const struct cas_node *n);

/* The idle list of readers, least recently used first.  fs->lock held. */
void fs_idle_append_locked(struct fs *fs, struct fs_inode *in);
void fs_idle_remove_locked(struct fs *fs, struct fs_inode *in);

/* A pin undone when the variable goes out of scope. */
struct pin_guard {
        struct fs *fs;
        struct fs_inode *in;
};

static inline void pin_guard_release(struct pin_guard *g) {
        if (g->in)
                fs_inode_unpin(g->fs, g->in);
}
#define _cleanup_unpin_ _cleanup_(pin_guard_release)

/* --- the root and its providers (fs_root.c) --- */

int fs_root_lookup(struct fs *fs, const char *name, size_t len, struct fs_entry *ret);
void fs_root_getattr(struct fs *fs, struct fs_attr *ret, struct fs_timeout *ret_valid);
int fs_root_opendir(struct fs *fs, struct fs_open *ret);
int fs_root_readdir(struct fs *fs, uint64_t fh, uint64_t off, bool plus, fs_dirent_cb cb, void *userdata);
int fs_root_releasedir(struct fs *fs, uint64_t fh);
/* Frees a snapshot no longer in fs->snapshots with no reference left. */
void fs_root_snapshot_free(struct root_snapshot *s);

/* --- operations on directories and metadata (fs_ops.c) --- */

/* Emits the entries nodes[off..n) through cb (for readdirplus counting a
 * kernel reference on each entry taken). */
int fs_readdir_nodes(struct fs *fs, const struct cas_node *nodes, size_t n, uint64_t off, bool plus, bool at_root,
                     fs_dirent_cb cb, void *userdata);

/* --- blob readers (fs_file.c) --- */

/* Closes a reader taken off an inode (and its backing id); fs->lock not
 * held. */
void fs_reader_close(struct fs *fs, struct cas_vblob *reader, int backing_id);
