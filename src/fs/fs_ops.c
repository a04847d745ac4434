/* The operations on names, directories and metadata: lookup, getattr,
 * readlink, opendir/readdir/releasedir (Directories fetched lazily, once
 * per inode), statfs, xattrs and access.  File data is in fs_file.c. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "util/log.h"

/* --- directories --- */

/* The Directory of a pinned directory inode, fetched on first use (and
 * again after the cache dropped it).  One fetch per inode however many
 * threads ask at once; the lock is not held while fetching.  Failures are
 * not remembered (a later attempt retries). */
static int dir_get(struct fs *fs, struct fs_inode *in, const struct cas_directory **ret) {
        struct cas_directory *d = NULL;
        const struct cas_directory *cached;
        struct fs_dir *evicted = NULL;
        int r, cached_r = 0;

        pthread_mutex_lock(&fs->lock);
        if (!in->dir && in->busy)
                fs->stats.dir_fetch_waits++;
        while (!in->dir && in->busy)
                pthread_cond_wait(&fs->cond, &fs->lock);
        cached = fs_dircache_get_locked(fs, in);
        if (cached) {
                *ret = cached;
                pthread_mutex_unlock(&fs->lock);
                return 0;
        }
        in->busy = true;
        pthread_mutex_unlock(&fs->lock);

        r = cas_dir_get(fs->dirs, &in->key.digest, &d);
        if (r >= 0 && !cas_digest_equal(&d->digest, &in->key.digest)) {
                cas_directory_free(d);
                r = -EBADMSG;
        }

        pthread_mutex_lock(&fs->lock);
        in->busy = false;
        fs->stats.dir_fetches++;
        if (r >= 0)
                cached_r = fs_dircache_add_locked(fs, in, d, &evicted);
        pthread_cond_broadcast(&fs->cond);
        pthread_mutex_unlock(&fs->lock);
        fs_dircache_free(evicted);
        if (r < 0)
                return log_warning_errno(-EIO, "Directory %s: %s", CAS_DIGEST_B3(&in->key.digest),
                                         r == -ENOENT ? "not in the store" : strerror(-r));
        if (cached_r < 0) {
                cas_directory_free(d);
                return cached_r;
        }
        *ret = d;
        return 0;
}

/* Pins directory inode ino into g and gets its Directory: -ENOTDIR for
 * another kind, dir_get's errors. */
static int dir_pin_get(struct fs *fs, uint64_t ino, struct pin_guard *g, const struct cas_directory **ret) {
        int r = fs_inode_pin(fs, ino, &g->in);

        if (r < 0)
                return r;
        if (g->in->key.kind != CAS_NODE_DIRECTORY)
                return -ENOTDIR;
        return dir_get(fs, g->in, ret);
}

int fs_lookup(struct fs *fs, uint64_t parent, const char *name, size_t len, struct fs_entry *ret) {
        _cleanup_unpin_ struct pin_guard g = { fs, NULL };
        const struct cas_directory *d;
        const struct cas_node *n;
        struct node_key k;
        int r;

        if (!fs || !name || !ret)
                return -EINVAL;
        if (parent == FS_ROOT_INO)
                return fs_root_lookup(fs, name, len, ret);
        if (len > CAS_NAME_MAX)
                return -ENAMETOOLONG;
        r = dir_pin_get(fs, parent, &g, &d);
        if (r < 0)
                return r;
        n = cas_directory_find(d, name, len);
        if (!n) {
                /* immutable directory: the name stays absent */
                *ret = (struct fs_entry){ .ino = 0, .entry_valid = { TIMEOUT_IMMUTABLE, 0 } };
                return 0;
        }
        fs_node_key_of(n, &k);
        pthread_mutex_lock(&fs->lock);
        r = fs_inode_lookup_locked(fs, n, &k, false, ret);
        pthread_mutex_unlock(&fs->lock);
        return r;
}

int fs_getattr(struct fs *fs, uint64_t ino, struct fs_attr *ret, struct fs_timeout *ret_valid) {
        struct fs_inode *in;

        if (!fs || !ret)
                return -EINVAL;
        if (ino == FS_ROOT_INO) {
                fs_root_getattr(fs, ret, ret_valid);
                return 0;
        }
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        if (in)
                fs_attr_fill(fs, in, ret);
        pthread_mutex_unlock(&fs->lock);
        if (!in)
                return -ESTALE;
        if (ret_valid)
                *ret_valid = (struct fs_timeout){ TIMEOUT_IMMUTABLE, 0 };
        return 0;
}

int fs_readlink(struct fs *fs, uint64_t ino, char *buf, size_t size) {
        struct fs_inode *in;
        int r;

        if (!fs || !buf)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        if (!in)
                r = -ESTALE;
        else if (in->key.kind != CAS_NODE_SYMLINK)
                r = -EINVAL;
        else if (in->size > size)
                r = -ERANGE;
        else {
                memcpy(buf, in->target, in->size);
                r = (int) in->size;
        }
        pthread_mutex_unlock(&fs->lock);
        return r;
}

int fs_opendir(struct fs *fs, uint64_t ino, struct fs_open *ret) {
        _cleanup_unpin_ struct pin_guard g = { fs, NULL };
        const struct cas_directory *d;
        int r;

        if (!fs || !ret)
                return -EINVAL;
        *ret = (struct fs_open){ .backing_id = -1 };
        if (ino == FS_ROOT_INO)
                return fs_root_opendir(fs, ret);
        /* fetch now: a missing Directory fails opendir rather than the first read */
        r = dir_pin_get(fs, ino, &g, &d);
        if (r < 0)
                return r;
        ret->keep_cache = true;
        ret->cache_dir = true;
        return 0;
}

bool fs_dir_handles_needed(const struct fs *fs) {
        return fs->cfg.list_root;
}

int fs_releasedir(struct fs *fs, uint64_t ino, uint64_t fh) {
        if (!fs)
                return -EINVAL;
        if (ino != FS_ROOT_INO)
                return 0;
        return fs_root_releasedir(fs, fh);
}

int fs_readdir_nodes(struct fs *fs, const struct cas_node *nodes, size_t n, uint64_t off, bool plus, bool at_root,
                     fs_dirent_cb cb, void *userdata) {
        for (uint64_t i = off; i < n; i++) {
                const struct cas_node *c = &nodes[i];
                struct fs_entry e;
                struct node_key k;
                uint64_t ino;
                int r = 0;

                fs_node_key_of(c, &k);
                pthread_mutex_lock(&fs->lock);
                if (plus) {
                        r = fs_inode_lookup_locked(fs, c, &k, at_root, &e);
                        ino = r >= 0 ? e.ino : 0;
                } else
                        ino = fs_ino_for_key_locked(fs, &k);
                pthread_mutex_unlock(&fs->lock);
                if (r < 0)
                        return r;
                r = cb(userdata, c->name, c->name_len, fs_node_mode(c), ino, i + 1, plus ? &e : NULL);
                if (r <= 0) {
                        /* not taken: undo the reference (through fs_forget,
                         * which clamps: the kernel may have sent a bogus
                         * FORGET for this inode meanwhile) */
                        if (plus)
                                fs_forget(fs, ino, 1);
                        return r;
                }
        }
        return 0;
}

int fs_readdir(struct fs *fs, uint64_t ino, uint64_t fh, uint64_t off, bool plus, fs_dirent_cb cb,
               void *userdata) {
        _cleanup_unpin_ struct pin_guard g = { fs, NULL };
        const struct cas_directory *d;
        int r;

        if (!fs || !cb)
                return -EINVAL;
        if (ino == FS_ROOT_INO)
                return fs_root_readdir(fs, fh, off, plus, cb, userdata);
        r = dir_pin_get(fs, ino, &g, &d);
        if (r < 0)
                return r;
        if (off >= d->n_entries)
                return 0;
        r = fs_readdir_nodes(fs, d->entries, d->n_entries, off, plus, false, cb, userdata);
        return r < 0 ? r : 0;
}

/* --- metadata --- */

int fs_statfs(struct fs *fs, uint64_t ino, struct fs_statfs *ret) {
        if (!fs || !ret)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        *ret = (struct fs_statfs){
                .bsize = BLKSIZE,
                .frsize = BLKSIZE,
                .namelen = CAS_NAME_MAX,
                .files = fs->stats.inodes,
        };
        pthread_mutex_unlock(&fs->lock);
        return 0;
}

/* The one xattr an inode has: its name and value, or false. */
static bool xattr_of(const struct fs_inode *in, const char **ret_name, char value[static CAS_DIGEST_B3_LEN + 1]) {
        if (in->ino == FS_ROOT_INO)
                return false;
        if (in->key.kind == CAS_NODE_FILE)
                *ret_name = FS_XATTR_BLOB_DIGEST;
        else if (in->key.kind == CAS_NODE_DIRECTORY)
                *ret_name = FS_XATTR_DIRECTORY_DIGEST;
        else
                return false;
        cas_digest_to_b3(&in->key.digest, value);
        return true;
}

static int xattr_lookup(struct fs *fs, uint64_t ino, const char **ret_name, char *value, bool *ret_has) {
        struct fs_inode *in;

        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        if (in)
                *ret_has = xattr_of(in, ret_name, value);
        pthread_mutex_unlock(&fs->lock);
        return in ? 0 : -ESTALE;
}

ssize_t fs_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf, size_t size) {
        char value[CAS_DIGEST_B3_LEN + 1];
        const char *xname = NULL;
        bool has = false;
        int r;

        if (!fs || !name || (size > 0 && !buf))
                return -EINVAL;
        r = xattr_lookup(fs, ino, &xname, value, &has);
        if (r < 0)
                return r;
        if (!has || strcmp(name, xname) != 0)
                return -ENODATA;
        if (size == 0)
                return CAS_DIGEST_B3_LEN;
        if (size < CAS_DIGEST_B3_LEN)
                return -ERANGE;
        memcpy(buf, value, CAS_DIGEST_B3_LEN);
        return CAS_DIGEST_B3_LEN;
}

ssize_t fs_listxattr(struct fs *fs, uint64_t ino, void *buf, size_t size) {
        char value[CAS_DIGEST_B3_LEN + 1];
        const char *xname = NULL;
        bool has = false;
        size_t len;
        int r;

        if (!fs || (size > 0 && !buf))
                return -EINVAL;
        r = xattr_lookup(fs, ino, &xname, value, &has);
        if (r < 0)
                return r;
        if (!has)
                return 0;
        len = strlen(xname) + 1;
        if (size == 0)
                return len;
        if (size < len)
                return -ERANGE;
        memcpy(buf, xname, len);
        return len;
}

int fs_access(struct fs *fs, uint64_t ino, int mask) {
        struct fs_inode *in;
        int r = 0;

        if (!fs)
                return -EINVAL;
        if (mask & W_OK)
                return -EROFS;
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        if (!in)
                r = -ESTALE;
        else if ((mask & X_OK) && in->key.kind == CAS_NODE_FILE && !in->key.executable)
                r = -EACCES;
        pthread_mutex_unlock(&fs->lock);
        return r;
}
