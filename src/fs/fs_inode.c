/* The inode table: inodes keyed by content (identical content shares one
 * inode, numbered from its digest), their counts (kernel references, pins,
 * handles, reads), the idle-reader list, forget, and inode attributes. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs_internal.h"

static bool key_equal(const struct node_key *a, const struct node_key *b) {
        return a->kind == b->kind && a->executable == b->executable && cas_digest_equal(&a->digest, &b->digest);
}

static bool moved_eq(const void *entry, const void *key) {
        return key_equal(&((const struct fs_inode *) entry)->key, key);
}

static uint64_t key_hash(const struct node_key *k) {
        return hash_u64(fs_le64(k->digest.b) ^ ((uint64_t) k->kind << 1 | k->executable));
}

/* The inode number content gets when nothing collides with it: 64 bits
 * of its digest, mixed with the kind so that an empty file and an empty
 * directory (same digest) differ.  Stable across forgets and mounts. */
static uint64_t ino_candidate(const struct node_key *k) {
        return fs_le64(k->digest.b + 8) ^ hash_u64((uint64_t) k->kind << 1 | k->executable);
}

static uint64_t ino_next(uint64_t ino) {
        return hash_u64(ino + 0x9e3779b97f4a7c15ULL);
}

static bool ino_reserved(uint64_t ino) {
        return ino <= FS_ROOT_INO || ino == UINT64_MAX;
}

void fs_inodes_init(struct fs *fs) {
        fs_slab_init(&fs->slab);
        fs_itable_init(&fs->by_ino);
        hashmap_init(&fs->moved, moved_eq);
}

void fs_node_key_of(const struct cas_node *n, struct node_key *ret) {
        *ret = (struct node_key){ .kind = n->kind };
        if (n->kind == CAS_NODE_SYMLINK)
                cas_digest_of(n->target, n->target_len, &ret->digest);
        else {
                ret->digest = n->digest;
                ret->executable = n->kind == CAS_NODE_FILE && n->executable;
        }
}

/* The inode of key k, or NULL and in *ret_free the number a new one gets:
 * the first number of k's chain (its candidate, then ino_next of it, ...)
 * that no inode has.  An inode has the first free number of its chain
 * when it is made; if a number before it is freed later, the walk stops
 * there, so inodes not on their candidate are also in fs->moved (almost
 * always empty: 64-bit numbers of 1M inodes collide about once in 30
 * million mounts).  fs->lock held. */
static struct fs_inode *key_find_locked(struct fs *fs, const struct node_key *k, uint64_t *ret_free) {
        for (uint64_t ino = ino_candidate(k);; ino = ino_next(ino)) {
                struct fs_inode *in;

                if (ino_reserved(ino))
                        continue;
                in = fs_itable_get(&fs->by_ino, ino);
                if (!in) {
                        *ret_free = ino;
                        return fs->moved.count > 0 ? hashmap_get(&fs->moved, key_hash(k), k) : NULL;
                }
                if (key_equal(&in->key, k))
                        return in;
        }
}

uint64_t fs_ino_for_key_locked(struct fs *fs, const struct node_key *k) {
        uint64_t ino;
        struct fs_inode *in = key_find_locked(fs, k, &ino);

        return in ? in->ino : ino;
}

/* The new inode's own memory: a symlink's target.  0 or -ENOMEM. */
static int inode_fill(struct fs_inode *in, const struct cas_node *n, const struct node_key *k, uint64_t ino) {
        in->ino = ino;
        in->key = *k;
        if (n->kind != CAS_NODE_SYMLINK) {
                in->size = n->size;
                return 0;
        }
        in->target = malloc(n->target_len + 1u);
        if (!in->target)
                return -ENOMEM;
        memcpy(in->target, n->target, n->target_len);
        in->target[n->target_len] = 0;
        in->size = n->target_len;
        return 0;
}

static void inode_unfill(struct fs_inode *in) {
        if (in->key.kind == CAS_NODE_SYMLINK)
                free(in->target);
}

/* Finds or creates the inode for node n (key k precomputed).  fs->lock held. */
static int inode_for_node_locked(struct fs *fs, const struct cas_node *n, const struct node_key *k,
                                 struct fs_inode **ret) {
        uint64_t ino;
        struct fs_inode *in = key_find_locked(fs, k, &ino);
        bool moved;
        int r;

        if (in) {
                *ret = in;
                return 0;
        }
        moved = ino != ino_candidate(k);
        in = fs_slab_alloc(&fs->slab);
        if (!in)
                return -ENOMEM;
        r = inode_fill(in, n, k, ino);
        if (r >= 0)
                r = fs_itable_put(&fs->by_ino, in);
        if (r >= 0 && moved) {
                r = hashmap_put(&fs->moved, key_hash(k), in);
                if (r < 0)
                        fs_itable_remove(&fs->by_ino, in);
        }
        if (r < 0) {
                inode_unfill(in);
                fs_slab_free(&fs->slab, in);
                return r;
        }
        fs->stats.inodes++;
        *ret = in;
        return 0;
}

static void entry_fill(const struct fs *fs, const struct fs_inode *in, bool at_root, struct fs_entry *e) {
        *e = (struct fs_entry){
                .ino = in->ino,
                .entry_valid = { at_root ? TIMEOUT_ROOT_ENTRY : TIMEOUT_IMMUTABLE, 0 },
                .attr_valid = { TIMEOUT_IMMUTABLE, 0 },
        };
        fs_attr_fill(fs, in, &e->attr);
}

int fs_inode_lookup_locked(struct fs *fs, const struct cas_node *n, const struct node_key *k, bool at_root,
                           struct fs_entry *ret) {
        struct fs_inode *in;
        int r;

        r = inode_for_node_locked(fs, n, k, &in);
        if (r < 0)
                return r;
        in->nlookup++;
        entry_fill(fs, in, at_root, ret);
        return 0;
}

struct fs_inode *fs_inode_get_locked(struct fs *fs, uint64_t ino) {
        if (ino == FS_ROOT_INO)
                return fs->root;
        return fs_itable_get(&fs->by_ino, ino);
}

/* --- the idle list --- */

void fs_idle_append_locked(struct fs *fs, struct fs_inode *in) {
        struct fs_file *f = in->file;

        assert(!f->idle && f->reader);
        f->idle = true;
        f->idle_prev = fs->idle_tail;
        f->idle_next = NULL;
        if (fs->idle_tail)
                fs->idle_tail->file->idle_next = in;
        else
                fs->idle_head = in;
        fs->idle_tail = in;
        fs->n_idle++;
}

void fs_idle_remove_locked(struct fs *fs, struct fs_inode *in) {
        struct fs_file *f = in->file;

        if (!f || !f->idle)
                return;
        if (f->idle_prev)
                f->idle_prev->file->idle_next = f->idle_next;
        else
                fs->idle_head = f->idle_next;
        if (f->idle_next)
                f->idle_next->file->idle_prev = f->idle_prev;
        else
                fs->idle_tail = f->idle_prev;
        f->idle_prev = f->idle_next = NULL;
        f->idle = false;
        assert(fs->n_idle > 0);
        fs->n_idle--;
}

/* --- life of an inode --- */

static bool file_in_use(const struct fs_file *f) {
        return f && (f->opens > 0 || f->reads > 0);
}

struct fs_inode *fs_inode_release_locked(struct fs *fs, struct fs_inode *in) {
        if (in == fs->root || in->nlookup > 0 || in->pins > 0 || in->busy)
                return NULL;
        if (in->key.kind == CAS_NODE_FILE && file_in_use(in->file))
                return NULL;
        if (in->key.kind == CAS_NODE_FILE && in->file) {
                fs_idle_remove_locked(fs, in);
                if (in->file->reader) {
                        assert(fs->stats.open_files > 0);
                        fs->stats.open_files--;
                }
        }
        if (in->key.kind == CAS_NODE_DIRECTORY && in->dir)
                fs_dircache_unlink_locked(fs, in->dir);
        fs_itable_remove(&fs->by_ino, in);
        if (in->ino != ino_candidate(&in->key))
                hashmap_remove(&fs->moved, key_hash(&in->key), &in->key);
        assert(fs->stats.inodes > 1); /* the root stays */
        fs->stats.inodes--;
        return in;
}

/* Frees what in owns besides its slot; returns about how many heap bytes
 * that was.  fs->lock not held. */
static size_t inode_free_owned(struct fs *fs, struct fs_inode *in) {
        if (in->key.kind == CAS_NODE_DIRECTORY)
                return fs_dircache_free(in->dir);
        if (in->key.kind == CAS_NODE_FILE) {
                if (!in->file)
                        return 0;
                if (in->file->reader || in->file->backing_id >= 0)
                        fs_reader_close(fs, in->file->reader, in->file->backing_id);
                free(in->file);
                return sizeof(struct fs_file);
        }
        inode_unfill(in);
        return in->size + 1;
}

void fs_inode_free(struct fs *fs, struct fs_inode *in) {
        bool trim = false;

        if (!in)
                return;
        size_t bytes = inode_free_owned(fs, in);
        pthread_mutex_lock(&fs->lock);
        fs_slab_free(&fs->slab, in);
        /* trimmed every so many bytes or frees, and at every halving of
         * the table */
        fs->freed_bytes_since_trim += bytes;
        if (++fs->freed_since_trim >= TRIM_AFTER_FREES || fs->freed_bytes_since_trim >= TRIM_AFTER_BYTES ||
            (fs->freed_since_trim >= TRIM_MIN_FREES && fs->freed_since_trim >= fs->stats.inodes)) {
                fs->freed_since_trim = 0;
                fs->freed_bytes_since_trim = 0;
                trim = true;
        }
        pthread_mutex_unlock(&fs->lock);
        /* the Directories, readers and table slots a forget burst freed go
         * back to the system, not only to the heap, and so do the store's
         * mapped pages the lookups made resident */
        if (trim) {
                malloc_trim(0);
                cas_dir_release_memory(fs->dirs);
        }
}

static bool inode_done(struct fs_inode *in, void *userdata) {
        struct fs *fs = userdata;

        if (in->key.kind == CAS_NODE_DIRECTORY && in->dir)
                fs_dircache_unlink_locked(fs, in->dir); /* chained no more */
        inode_free_owned(fs, in);
        fs_slab_free(&fs->slab, in);
        return true;
}

void fs_inodes_done(struct fs *fs) {
        fs_itable_foreach(&fs->by_ino, inode_done, fs);
        fs_itable_done(&fs->by_ino);
        hashmap_done(&fs->moved);
        fs_slab_done(&fs->slab);
}

int fs_inode_pin(struct fs *fs, uint64_t ino, struct fs_inode **ret) {
        struct fs_inode *in;

        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        if (in)
                in->pins++;
        pthread_mutex_unlock(&fs->lock);
        if (!in)
                return -ESTALE;
        *ret = in;
        return 0;
}

void fs_inode_unpin(struct fs *fs, struct fs_inode *in) {
        struct fs_inode *dead;

        pthread_mutex_lock(&fs->lock);
        assert(in->pins > 0);
        in->pins--;
        dead = fs_inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        fs_inode_free(fs, dead);
}

void fs_forget(struct fs *fs, uint64_t ino, uint64_t n) {
        struct fs_inode *in, *dead = NULL;

        if (!fs || ino == FS_ROOT_INO)
                return;
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        if (in) {
                /* n comes from the kernel (or a guest): clamped, not asserted */
                in->nlookup = n >= in->nlookup ? 0 : in->nlookup - n;
                dead = fs_inode_release_locked(fs, in);
        }
        pthread_mutex_unlock(&fs->lock);
        fs_inode_free(fs, dead);
}

/* --- attributes --- */

static uint32_t mode_of(uint8_t kind, bool executable) {
        switch (kind) {
        case CAS_NODE_DIRECTORY:
                return S_IFDIR | 0555;
        case CAS_NODE_FILE:
                return S_IFREG | (executable ? 0555 : 0444);
        default:
                return S_IFLNK | 0444;
        }
}

uint32_t fs_node_mode(const struct cas_node *n) {
        return mode_of(n->kind, n->executable);
}

void fs_attr_fill(const struct fs *fs, const struct fs_inode *in, struct fs_attr *a) {
        *a = (struct fs_attr){
                .ino = in->ino,
                .size = in->size,
                .mode = mode_of(in->key.kind, in->key.executable),
                /* 1 for directories too: the subdirectory count is not known
                 * before the Directory is fetched, and 1 tells tools not to
                 * rely on it (as btrfs does). */
                .nlink = 1,
                .uid = fs->cfg.uid,
                .gid = fs->cfg.gid,
                .blksize = BLKSIZE,
                .time = FIXED_TIME,
        };
        if (in->key.kind == CAS_NODE_FILE)
                a->blocks = (in->size + 511) / 512;
}
