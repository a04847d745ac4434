/* The inode table: inodes keyed by content (identical content shares one
 * inode, numbered from its digest), their counts (kernel references, pins,
 * handles, reads), the idle-reader list, forget, and inode attributes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs_internal.h"

static bool ino_eq(const void *entry, const void *key) {
        return ((const struct fs_inode *) entry)->ino == *(const uint64_t *) key;
}

static bool key_eq(const void *entry, const void *key) {
        const struct fs_inode *in = entry;
        const struct node_key *k = key;
        return in->key.kind == k->kind && in->key.executable == k->executable &&
               cas_digest_equal(&in->key.digest, &k->digest);
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
        hashmap_init(&fs->by_ino, ino_eq);
        hashmap_init(&fs->by_key, key_eq);
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

static uint64_t ino_for_key_hashed_locked(struct fs *fs, const struct node_key *k, uint64_t h) {
        struct fs_inode *in = hashmap_get(&fs->by_key, h, k);
        uint64_t ino;

        if (in)
                return in->ino;
        for (ino = ino_candidate(k); ino_reserved(ino) || hashmap_get(&fs->by_ino, hash_u64(ino), &ino);
             ino = ino_next(ino))
                ;
        return ino;
}

uint64_t fs_ino_for_key_locked(struct fs *fs, const struct node_key *k) {
        return ino_for_key_hashed_locked(fs, k, key_hash(k));
}

/* Finds or creates the inode for node n (key k precomputed).  fs->lock held. */
static int inode_for_node_locked(struct fs *fs, const struct cas_node *n, const struct node_key *k,
                                 struct fs_inode **ret) {
        uint64_t h = key_hash(k);
        struct fs_inode *in = hashmap_get(&fs->by_key, h, k);
        int r;

        if (in) {
                *ret = in;
                return 0;
        }
        size_t extra = n->kind == CAS_NODE_SYMLINK ? n->target_len + 1u : 0;
        in = calloc(1, sizeof(*in) + extra);
        if (!in)
                return -ENOMEM;
        in->ino = ino_for_key_hashed_locked(fs, k, h);
        in->key = *k;
        in->key_hash = h;
        in->backing_id = -1;
        if (n->kind == CAS_NODE_SYMLINK) {
                memcpy(in->target, n->target, n->target_len);
                in->target[n->target_len] = 0;
                in->target_len = n->target_len;
                in->size = n->target_len;
        } else
                in->size = n->size;
        r = hashmap_put(&fs->by_ino, hash_u64(in->ino), in);
        if (r < 0) {
                free(in);
                return r;
        }
        r = hashmap_put(&fs->by_key, h, in);
        if (r < 0) {
                hashmap_remove(&fs->by_ino, hash_u64(in->ino), &in->ino);
                free(in);
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
        return hashmap_get(&fs->by_ino, hash_u64(ino), &ino);
}

/* --- the idle list --- */

void fs_idle_append_locked(struct fs *fs, struct fs_inode *in) {
        assert(!in->idle && in->reader);
        in->idle = true;
        in->idle_prev = fs->idle_tail;
        in->idle_next = NULL;
        if (fs->idle_tail)
                fs->idle_tail->idle_next = in;
        else
                fs->idle_head = in;
        fs->idle_tail = in;
        fs->n_idle++;
}

void fs_idle_remove_locked(struct fs *fs, struct fs_inode *in) {
        if (!in->idle)
                return;
        if (in->idle_prev)
                in->idle_prev->idle_next = in->idle_next;
        else
                fs->idle_head = in->idle_next;
        if (in->idle_next)
                in->idle_next->idle_prev = in->idle_prev;
        else
                fs->idle_tail = in->idle_prev;
        in->idle_prev = in->idle_next = NULL;
        in->idle = false;
        assert(fs->n_idle > 0);
        fs->n_idle--;
}

/* --- life of an inode --- */

struct fs_inode *fs_inode_release_locked(struct fs *fs, struct fs_inode *in) {
        if (in == fs->root || in->nlookup > 0 || in->pins > 0 || in->busy || in->opens > 0 || in->reads > 0)
                return NULL;
        fs_idle_remove_locked(fs, in);
        if (in->reader) {
                assert(fs->stats.open_files > 0);
                fs->stats.open_files--;
        }
        hashmap_remove(&fs->by_ino, hash_u64(in->ino), &in->ino);
        hashmap_remove(&fs->by_key, in->key_hash, &in->key);
        assert(fs->stats.inodes > 1); /* the root stays */
        fs->stats.inodes--;
        if (in->dir) {
                assert(fs->stats.dirs_loaded > 0);
                fs->stats.dirs_loaded--;
        }
        return in;
}

void fs_inode_free(struct fs *fs, struct fs_inode *in) {
        if (!in)
                return;
        cas_directory_free(in->dir);
        if (in->reader || in->backing_id >= 0)
                fs_reader_close(fs, in->reader, in->backing_id);
        free(in);
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
