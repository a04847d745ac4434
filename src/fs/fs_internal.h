/* Private to src/fs: the structures shared by the filesystem's files (inode
 * table, root providers, readers, operations), their lock rules, and the
 * functions one file offers the others.  Nothing outside src/fs includes it
 * but its unit test (tests/unit/test-fs_inode.c). */
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

/* Directory entries kept fetched (about 100 bytes each); fs_config.
 * dir_cache_entries overrides it. */
#define DIR_CACHE_ENTRIES_DEFAULT 65536

/* The heap is trimmed (malloc_trim) after inodes freed about
 * TRIM_AFTER_BYTES of heap memory (Directories mostly), after
 * TRIM_AFTER_FREES inodes, and when the frees since the last trim reach
 * the number of inodes left (at least TRIM_MIN_FREES): what a forget burst
 * frees goes back to the system, also at the end of the burst. */
#define TRIM_AFTER_BYTES (256u * 1024)
#define TRIM_AFTER_FREES 65536
#define TRIM_MIN_FREES 1024

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

/* The blob reader state of a file inode, allocated on the first open or
 * read and freed once it has no reader, handle or read left: most file
 * inodes the kernel holds are never opened and carry none.  All fields:
 * fs->lock. */
struct fs_file {
        /* while used, then idle in fs->idle_*; usable without the lock
         * while opens or reads count it (it is not closed then) */
        struct cas_vblob *reader;
        int backing_id;              /* passthrough id for reader, or -1 */
        uint32_t opens;              /* open handles */
        uint32_t reads;              /* fs_read calls copying from reader right now */
        bool idle;                   /* reader unused, on the idle list */
        bool stale;                  /* reader failed a check that a fresh open passed: closed,
                                      * not kept idle, once unused */
        struct fs_inode *idle_prev, *idle_next;
};

/* A directory's fetched Directory while it is cached: on the LRU list
 * fs->dirs_*, bounded by fs->cfg.dir_cache_entries entries (each
 * Directory counting one more for itself).  Dropped (and fetched again
 * when next needed) only while its inode is not pinned, so a pinned
 * inode's Directory is read without the lock.  All fields: fs->lock;
 * *dir immutable. */
struct fs_dir {
        struct cas_directory *dir;
        struct fs_inode *in;
        struct fs_dir *prev, *next;
};

/* One inode: 72 bytes, in the slab (fs_slab.c), indexed by number in
 * fs->by_ino and by content through its number (fs_inode.c).  ino, size,
 * key and the symlink target are set at creation and never change: read
 * them without the lock while the inode is pinned (or held by a count
 * below). */
struct fs_inode {
        uint64_t ino;
        uint64_t size;               /* files: bytes; dirs: recursive entry count; symlinks: target length */
        struct node_key key;

        /* The following: fs->lock.  The inode is freed when every count
         * is zero and it is not busy (fs_inode_release_locked). */
        bool busy;                   /* a Directory fetch or blob open is in progress (fs->cond) */
        uint32_t pins;               /* operations in progress using this inode */
        uint64_t nlookup;            /* references the kernel holds (lookup/readdirplus - forget) */
        union {
                struct fs_dir *dir;  /* dirs: fs->lock; the cached Directory, or NULL */
                struct fs_file *file; /* files: fs->lock; reader state, or NULL */
                char *target;        /* symlinks: immutable, NUL-terminated, size bytes */
        };
};

/* The inodes' memory: chunks of FS_SLAB_CHUNK bytes (aligned to their
 * size, so an inode finds its chunk), each with a list of its free slots;
 * chunks with free slots are listed, and an empty chunk goes back to the
 * system (one is kept).  No malloc per inode, no allocator header. */
#define FS_SLAB_CHUNK (64u * 1024)

struct fs_slab_chunk;

struct fs_slab {
        struct fs_slab_chunk *partial;    /* chunks with a free slot */
        struct fs_slab_chunk *spare;      /* one empty chunk kept, or NULL */
};

void fs_slab_init(struct fs_slab *s);
/* A zeroed inode, or NULL (out of memory). */
struct fs_inode *fs_slab_alloc(struct fs_slab *s);
void fs_slab_free(struct fs_slab *s, struct fs_inode *in);
/* Unmaps every chunk (the inodes in them must be done with). */
void fs_slab_done(struct fs_slab *s);

/* The index of inodes by number (fs_itable.c): open addressing of inode
 * pointers, 8 bytes a slot (the number is read from the inode); grows at
 * 70 % load and shrinks below 1/8, so a forget burst returns its memory. */
struct fs_itable {
        struct fs_inode **slots;
        size_t mask;                      /* capacity - 1, 0 if none */
        size_t count;
};

void fs_itable_init(struct fs_itable *t);
void fs_itable_done(struct fs_itable *t);
struct fs_inode *fs_itable_get(const struct fs_itable *t, uint64_t ino);
/* Adds in (no inode with its number present): 0 or -ENOMEM. */
int fs_itable_put(struct fs_itable *t, struct fs_inode *in);
void fs_itable_remove(struct fs_itable *t, const struct fs_inode *in);
/* Visits every inode; fn returns false to stop.  No change meanwhile. */
void fs_itable_foreach(const struct fs_itable *t, bool (*fn)(struct fs_inode *in, void *userdata), void *userdata);

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
        struct fs_slab slab;              /* fs->lock: the inodes' memory */
        struct fs_itable by_ino;          /* fs->lock: ino -> struct fs_inode */
        /* fs->lock: node_key -> struct fs_inode, for the few inodes whose
         * number is not their content's first choice (a collision or a
         * reserved number); the others are found by number */
        struct hashmap moved;
        struct hashmap snapshots;         /* fs->lock: fh -> struct root_snapshot */
        uint64_t next_fh;                 /* fs->lock */
        struct fs_inode *root;            /* immutable: not in the tables, never freed before fs_free */
        struct fs_inode *idle_head, *idle_tail; /* fs->lock: idle readers, least recently used first */
        size_t n_idle;                    /* fs->lock */
        struct fs_dir *dirs_head, *dirs_tail; /* fs->lock: cached Directories, least recently used first */
        size_t dir_entries;               /* fs->lock: entries of the cached Directories, plus one each */
        uint64_t freed_since_trim;        /* fs->lock: inodes freed since the heap was last trimmed */
        size_t freed_bytes_since_trim;    /* fs->lock: and the heap bytes they owned, about */
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

/* Frees every inode (fs_free: no operation runs any more). */
void fs_inodes_done(struct fs *fs);

/* --- fetched Directories (fs_dircache.c) --- */

/* The cached Directory of directory inode in (now the most recently
 * used), or NULL.  fs->lock held. */
const struct cas_directory *fs_dircache_get_locked(struct fs *fs, struct fs_inode *in);
/* Caches d (owned) for the pinned inode in, which has none, and drops the
 * least recently used ones beyond the bound: those come back in
 * *ret_evicted for fs_dircache_free() after the lock is dropped.  0 or
 * -ENOMEM (d is not taken then).  fs->lock held. */
int fs_dircache_add_locked(struct fs *fs, struct fs_inode *in, struct cas_directory *d, struct fs_dir **ret_evicted);
/* Takes c off the list (its inode is being released; in->dir still
 * points to it, for fs_dircache_free).  fs->lock held. */
void fs_dircache_unlink_locked(struct fs *fs, struct fs_dir *c);
/* Frees c and the ones chained after it through next (NULL: nothing);
 * returns about how many heap bytes that was.  fs->lock not held. */
size_t fs_dircache_free(struct fs_dir *c);

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
