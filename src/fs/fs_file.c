/* File data: one blob reader per file inode, shared by its handles and
 * reads and kept open, idle, after the last one (bounded, least recently
 * used closed first); the check of a blob against its digest before any
 * byte is served; open, read and release. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs_internal.h"
#include "util/log.h"

/* --- verification ---
 * The only code that checks blob content against its digest: blob_check()
 * runs once on every reader before it serves a byte, and consults the
 * verified-file cache below so that an unchanged blob file is not hashed
 * again for a new inode.  reader_read() is where bytes leave a reader.
 * A reader that verifies each range it reads replaces these two functions
 * and the cache (fs->verified, fs_file_cache_init/done). */

/* A blob file that hashed to its digest, identified so that a replaced or
 * modified file is hashed again. */
struct verified_file {
        struct cas_digest digest;
        dev_t dev;
        ino_t ino;
        uint64_t size;
        int64_t mtime_ns, ctime_ns;
};

/* Blob files remembered as verified beyond their inodes' lifetime. */
#define VERIFIED_MAX 262144

static bool verified_eq(const void *entry, const void *key) {
        return cas_digest_equal(&((const struct verified_file *) entry)->digest, key);
}

static bool free_verified(void *entry, void *userdata) {
        free(entry);
        return true;
}

void fs_file_cache_init(struct fs *fs) {
        hashmap_init(&fs->verified, verified_eq);
}

void fs_file_cache_done(struct fs *fs) {
        hashmap_foreach(&fs->verified, free_verified, NULL);
        hashmap_done(&fs->verified);
}

static bool verified_match(const struct verified_file *v, const struct stat *st) {
        return v->dev == st->st_dev && v->ino == st->st_ino && v->size == (uint64_t) st->st_size &&
               v->mtime_ns == timespec_ns(st->st_mtim) &&
               v->ctime_ns == timespec_ns(st->st_ctim);
}

/* Has this blob file been hashed before, unchanged since?  A file that
 * was rewritten or replaced has a new ctime or inode number. */
static bool verified_lookup(struct fs *fs, const struct cas_digest *d, const struct stat *st) {
        struct verified_file *v;
        bool hit;

        pthread_mutex_lock(&fs->lock);
        v = hashmap_get(&fs->verified, fs_le64(d->b), d);
        hit = v && verified_match(v, st);
        pthread_mutex_unlock(&fs->lock);
        return hit;
}

static void verified_add(struct fs *fs, const struct cas_digest *d, const struct stat *st) {
        struct verified_file *v, *old;

        v = malloc(sizeof(*v));
        if (!v)
                return;
        *v = (struct verified_file){
                .digest = *d,
                .dev = st->st_dev,
                .ino = st->st_ino,
                .size = st->st_size,
                .mtime_ns = timespec_ns(st->st_mtim),
                .ctime_ns = timespec_ns(st->st_ctim),
        };
        pthread_mutex_lock(&fs->lock);
        old = hashmap_remove(&fs->verified, fs_le64(d->b), d);
        if (!old && fs->verified.count >= VERIFIED_MAX) {
                /* bounded memory: start over (files are hashed again) */
                fs_file_cache_done(fs);
                fs_file_cache_init(fs);
        }
        if (hashmap_put(&fs->verified, fs_le64(d->b), v) < 0)
                free(TAKE_PTR(v));
        pthread_mutex_unlock(&fs->lock);
        free(old);
}

/* Checks a freshly opened reader of file inode in against its digest
 * before it serves anything: hashed, unless an unchanged file of the same
 * digest was hashed before.  0, or -EIO (logged) if it does not match or
 * cannot be read.  Called without fs->lock. */
static int blob_check(struct fs *fs, const struct fs_inode *in, struct cas_blob_reader *reader) {
        bool have_stat = false;
        struct stat st;
        int r;

        if (reader->fd >= 0 && fstat(reader->fd, &st) == 0) {
                have_stat = true;
                if (verified_lookup(fs, &in->key.digest, &st))
                        return 0;
        }
        r = cas_blob_reader_verify(reader);
        pthread_mutex_lock(&fs->lock);
        fs->stats.blob_verifies++;
        pthread_mutex_unlock(&fs->lock);
        if (r < 0)
                return log_warning_errno(-EIO, "Blob %s: %s", CAS_DIGEST_B3(&in->key.digest),
                                         r == -EBADMSG ? "content does not match its digest" : strerror(-r));
        if (have_stat)
                verified_add(fs, &in->key.digest, &st);
        return 0;
}

/* Serves up to size bytes at off from a checked reader of in: as a range
 * of its file (ret->fd) when it has one, else copied into buf.  0 or
 * -EIO; ret->len 0 past the end. */
static int reader_read(const struct fs_inode *in, struct cas_blob_reader *reader, uint64_t off, size_t size,
                       void *buf, struct fs_read_result *ret) {
        size_t len;
        ssize_t n;

        if (off >= reader->size || size == 0)
                return 0;
        len = (size_t) MIN((uint64_t) size, reader->size - off);
        if (reader->fd >= 0) {
                ret->fd = reader->fd;
                ret->off = off;
                ret->len = len;
                return 0;
        }
        n = cas_blob_pread(reader, buf, len, off);
        if (n < 0 || (size_t) n != len)
                return log_warning_errno(-EIO, "Reading blob %s failed: %s", CAS_DIGEST_B3(&in->key.digest),
                                         n < 0 ? strerror((int) -n) : "short read");
        ret->len = len;
        return 0;
}

/* --- readers --- */

/* Opens and checks the blob of a pinned file inode.  With want_backing,
 * registers it for passthrough when the front end gave backing ops (a
 * refusal just means no passthrough for this file). */
static int reader_open(struct fs *fs, struct fs_inode *in, bool want_backing, struct cas_blob_reader **ret_reader,
                       int *ret_backing) {
        _cleanup_(cas_blob_reader_closep) struct cas_blob_reader *reader = NULL;
        int r, id = -1;

        r = cas_blob_open(fs->blobs, &in->key.digest, &reader);
        if (r < 0)
                return log_warning_errno(-EIO, "Blob %s: %s", CAS_DIGEST_B3(&in->key.digest),
                                         r == -ENOENT ? "not in the store" : strerror(-r));
        if (reader->size != in->size)
                return log_warning_errno(-EIO, "Blob %s has %llu bytes, its file node says %llu",
                                         CAS_DIGEST_B3(&in->key.digest), (unsigned long long) reader->size,
                                         (unsigned long long) in->size);
        r = blob_check(fs, in, reader);
        if (r < 0)
                return r;
        if (want_backing && fs->backing && reader->fd >= 0) {
                id = fs->backing->open(fs->backing_ctx, reader->fd);
                if (id < 0)
                        id = -1;
        }
        *ret_reader = TAKE_PTR(reader);
        *ret_backing = id;
        return 0;
}

/* Makes sure a pinned file inode has a reader, opening it without the
 * lock if needed (one opener, others wait).  Called and returns with
 * fs->lock held; the reader is off the idle list on success. */
static int reader_get_locked(struct fs *fs, struct fs_inode *in, bool want_backing) {
        struct cas_blob_reader *reader = NULL;
        int r, id = -1;

        while (!in->reader && in->busy)
                pthread_cond_wait(&fs->cond, &fs->lock);
        if (in->reader) {
                fs_idle_remove_locked(fs, in);
                return 0;
        }
        in->busy = true;
        pthread_mutex_unlock(&fs->lock);
        r = reader_open(fs, in, want_backing, &reader, &id);
        pthread_mutex_lock(&fs->lock);
        in->busy = false;
        if (r >= 0) {
                in->reader = reader;
                in->backing_id = id;
                fs->stats.open_files++;
        }
        pthread_cond_broadcast(&fs->cond);
        return r;
}

/* The reader of in is no longer used by anyone: it goes to the idle list;
 * returns the least recently used idle inode whose reader must be closed
 * (after the lock is dropped, with fs_reader_close), or NULL.  fs->lock
 * held. */
static struct fs_inode *reader_unused_locked(struct fs *fs, struct fs_inode *in,
                                             struct cas_blob_reader **ret_reader, int *ret_backing) {
        struct fs_inode *victim;

        *ret_reader = NULL;
        *ret_backing = -1;
        if (in->opens > 0 || in->reads > 0 || !in->reader || in->idle)
                return NULL;
        fs_idle_append_locked(fs, in);
        if (fs->n_idle <= fs->cfg.idle_readers)
                return NULL;
        victim = fs->idle_head;
        fs_idle_remove_locked(fs, victim);
        /* What was checked is the file this reader had open; the next
         * reader may open another one (the blob file replaced meanwhile),
         * which blob_check checks again (or finds unchanged by its stat). */
        *ret_reader = TAKE_PTR(victim->reader);
        *ret_backing = victim->backing_id;
        victim->backing_id = -1;
        assert(fs->stats.open_files > 0);
        fs->stats.open_files--;
        return victim;
}

void fs_reader_close(struct fs *fs, struct cas_blob_reader *reader, int backing_id) {
        if (backing_id >= 0 && fs->backing)
                fs->backing->close(fs->backing_ctx, backing_id);
        cas_blob_reader_close(reader);
}

/* --- operations --- */

int fs_open(struct fs *fs, uint64_t ino, int flags, struct fs_open *ret) {
        struct fs_inode *in, *dead;
        int r;

        if (!fs || !ret)
                return -EINVAL;
        *ret = (struct fs_open){ .backing_id = -1 };
        if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT)))
                return -EROFS;
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        if (!in) {
                pthread_mutex_unlock(&fs->lock);
                return -ESTALE;
        }
        if (in->key.kind != CAS_NODE_FILE) {
                pthread_mutex_unlock(&fs->lock);
                return in->key.kind == CAS_NODE_DIRECTORY ? -EISDIR : -ELOOP;
        }
        in->pins++;
        r = reader_get_locked(fs, in, true);
        if (r >= 0) {
                in->opens++;
                ret->fh = in->ino;
                ret->keep_cache = true;
                ret->backing_id = in->backing_id;
        }
        assert(in->pins > 0);
        in->pins--;
        dead = fs_inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        fs_inode_free(fs, dead);
        return r;
}

int fs_release(struct fs *fs, uint64_t ino, uint64_t fh) {
        struct cas_blob_reader *reader = NULL;
        struct fs_inode *in, *dead = NULL;
        int r = 0, id = -1;

        if (!fs)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        /* fh and ino come from the kernel: checked, not asserted */
        if (!in || in->key.kind != CAS_NODE_FILE || in->opens == 0 || fh != in->ino)
                r = -EBADF;
        else {
                in->opens--;
                reader_unused_locked(fs, in, &reader, &id);
                dead = fs_inode_release_locked(fs, in);
        }
        pthread_mutex_unlock(&fs->lock);
        if (reader)
                fs_reader_close(fs, reader, id);
        fs_inode_free(fs, dead);
        return r;
}

/* Ends one use of in's reader counted by fs_read: the reader goes idle if
 * nothing else uses it, the inode goes if nothing refers to it. */
static void read_end(struct fs *fs, struct fs_inode *in) {
        struct cas_blob_reader *to_close;
        struct fs_inode *dead;
        int id;

        pthread_mutex_lock(&fs->lock);
        assert(in->reads > 0);
        in->reads--;
        reader_unused_locked(fs, in, &to_close, &id);
        dead = fs_inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        if (to_close)
                fs_reader_close(fs, to_close, id);
        fs_inode_free(fs, dead);
}

int fs_read(struct fs *fs, uint64_t ino, uint64_t fh, uint64_t off, size_t size, void *buf,
            struct fs_read_result *ret) {
        struct cas_blob_reader *reader;
        struct fs_inode *in, *dead;
        int r;

        if (!fs || !ret || (size > 0 && !buf))
                return -EINVAL;
        *ret = (struct fs_read_result){ .fd = -1 };
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        /* fh 0: a front end that does not open files (zero-message open);
         * the blob is then opened and checked on the first read */
        if (!in || in->key.kind != CAS_NODE_FILE || (fh != 0 && (fh != in->ino || in->opens == 0))) {
                pthread_mutex_unlock(&fs->lock);
                return -EBADF;
        }
        in->pins++;
        r = reader_get_locked(fs, in, false);
        assert(in->pins > 0);
        in->pins--;
        if (r < 0) {
                dead = fs_inode_release_locked(fs, in);
                pthread_mutex_unlock(&fs->lock);
                fs_inode_free(fs, dead);
                return r;
        }
        in->reads++;
        reader = in->reader;
        pthread_mutex_unlock(&fs->lock);

        r = reader_read(in, reader, off, size, buf, ret);
        if (ret->fd >= 0) {
                /* the caller reads from the descriptor after we return: the
                 * reader stays in use (not idle, so never closed) until
                 * fs_read_done */
                ret->hold = in;
                return 0;
        }
        read_end(fs, in);
        return r;
}

void fs_read_done(struct fs *fs, struct fs_read_result *res) {
        if (!fs || !res || !res->hold)
                return;
        read_end(fs, TAKE_PTR(res->hold));
}
