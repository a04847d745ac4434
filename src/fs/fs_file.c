/* File data: one verified blob reader per file inode, shared by its
 * handles and reads and kept open, idle, after the last one (bounded,
 * least recently used closed first); open, read and release. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "castore/vblob.h"
#include "fs/fs_internal.h"
#include "util/log.h"

/* --- verification ---
 * Every byte the filesystem serves comes from cas_vblob_pread, which
 * hashes the 16 KiB groups a read covers and compares them with the blob's
 * outboard (checked against the digest when the blob was opened): a blob
 * that rots under a running mount fails the reads that touch the damage,
 * and serves the rest.  Only passthrough (the kernel reading the blob file
 * itself, where it is turned on) bypasses this. */

/* Opens the blob of file inode in for verified reads.  0, or -EIO
 * (logged) if it is missing, has the wrong size, or its outboard cannot
 * be trusted nor rebuilt.  Called without fs->lock. */
static int blob_open(struct fs *fs, const struct fs_inode *in, struct cas_vblob **ret) {
        int r = cas_vblob_open(fs->blobs, &in->key.digest, in->size, ret);

        pthread_mutex_lock(&fs->lock);
        fs->stats.blob_opens++;
        pthread_mutex_unlock(&fs->lock);
        if (r < 0)
                return log_warning_errno(-EIO, "Blob %s: %s", CAS_DIGEST_B3(&in->key.digest),
                                         r == -ENOENT    ? "not in the store"
                                         : r == -EBADMSG ? "size or content does not match its digest"
                                                         : strerror(-r));
        return 0;
}

static void count_failure(struct fs *fs) {
        pthread_mutex_lock(&fs->lock);
        fs->stats.verify_failures++;
        pthread_mutex_unlock(&fs->lock);
}

/* Serves up to size bytes at off of in into buf, verified.  0; -EBADMSG
 * if the bytes do not match (not logged: the caller tries a fresh open);
 * -EIO for other failures.  ret->len 0 past the end. */
static int reader_read(const struct fs_inode *in, struct cas_vblob *blob, uint64_t off, size_t size, void *buf,
                       struct fs_read_result *ret) {
        ssize_t n = cas_vblob_pread(blob, buf, size, off);

        if (n == -EBADMSG)
                return -EBADMSG;
        if (n < 0)
                return log_warning_errno(-EIO, "Reading blob %s failed: %s", CAS_DIGEST_B3(&in->key.digest),
                                         strerror((int) -n));
        ret->len = (size_t) n;
        return 0;
}

/* A read that failed its check is tried once more on a fresh open of the
 * blob: a blob repaired since (removed and stored again) is another file,
 * which the running mount then serves.  0 (and the inode's reader is
 * marked stale, to be replaced once unused) or -EIO (logged). */
static int read_fresh(struct fs *fs, struct fs_inode *in, uint64_t off, size_t size, void *buf,
                      struct fs_read_result *ret) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *fresh = NULL;
        int r;

        count_failure(fs);
        r = cas_vblob_open(fs->blobs, &in->key.digest, in->size, &fresh);
        if (r >= 0)
                r = reader_read(in, fresh, off, size, buf, ret);
        if (r == -EBADMSG || (r < 0 && r != -EIO)) {
                if (r == -EBADMSG)
                        count_failure(fs);
                return log_warning_errno(-EIO, "Blob %s: bytes %llu..%llu do not match its digest",
                                         CAS_DIGEST_B3(&in->key.digest), (unsigned long long) off,
                                         (unsigned long long) (off + size));
        }
        if (r < 0)
                return r;
        pthread_mutex_lock(&fs->lock);
        in->file->stale = true; /* counted in reads: in->file stays */
        pthread_mutex_unlock(&fs->lock);
        return 0;
}

/* --- readers --- */

/* Opens and checks the blob of a pinned file inode.  With want_backing,
 * registers it for passthrough when the front end gave backing ops (a
 * refusal just means no passthrough for this file). */
static int reader_open(struct fs *fs, struct fs_inode *in, bool want_backing, struct cas_vblob **ret_reader,
                       int *ret_backing) {
        _cleanup_(cas_vblob_closep) struct cas_vblob *reader = NULL;
        int r, id = -1;

        r = blob_open(fs, in, &reader);
        if (r < 0)
                return r;
        if (want_backing && fs->backing && cas_vblob_reader(reader)->fd >= 0 &&
            (fs->cfg.passthrough_unverified || cas_blob_fd_kernel_verified(cas_vblob_reader(reader)->fd))) {
                id = fs->backing->open(fs->backing_ctx, cas_vblob_reader(reader)->fd);
                if (id < 0)
                        id = -1;
        }
        *ret_reader = TAKE_PTR(reader);
        *ret_backing = id;
        return 0;
}

/* Frees in's reader state once nothing is left in it.  fs->lock held. */
static void file_trim_locked(struct fs_inode *in) {
        struct fs_file *f = in->file;

        if (f && !f->reader && f->opens == 0 && f->reads == 0 && !in->busy) {
                assert(!f->idle);
                free(f);
                in->file = NULL;
        }
}

static bool has_reader(const struct fs_inode *in) {
        return in->file && in->file->reader;
}

/* Makes sure a pinned file inode has a reader, opening it without the
 * lock if needed (one opener, others wait).  Called and returns with
 * fs->lock held; the reader is off the idle list on success; on failure
 * the caller calls file_trim_locked. */
static int reader_get_locked(struct fs *fs, struct fs_inode *in, bool want_backing) {
        struct cas_vblob *reader = NULL;
        int r, id = -1;

        while (!has_reader(in) && in->busy)
                pthread_cond_wait(&fs->cond, &fs->lock);
        if (has_reader(in)) {
                fs_idle_remove_locked(fs, in);
                return 0;
        }
        if (!in->file) {
                in->file = malloc(sizeof(*in->file));
                if (!in->file)
                        return -ENOMEM;
                *in->file = (struct fs_file){ .backing_id = -1 };
        }
        in->busy = true;
        pthread_mutex_unlock(&fs->lock);
        r = reader_open(fs, in, want_backing, &reader, &id);
        pthread_mutex_lock(&fs->lock);
        in->busy = false;
        if (r >= 0) {
                in->file->reader = reader;
                in->file->backing_id = id;
                fs->stats.open_files++;
        }
        pthread_cond_broadcast(&fs->cond);
        return r;
}

/* Takes the reader off in (its state freed if nothing else is left) for
 * fs_reader_close after the lock is dropped.  fs->lock held. */
static void reader_take_locked(struct fs *fs, struct fs_inode *in, struct cas_vblob **ret_reader,
                               int *ret_backing) {
        *ret_reader = TAKE_PTR(in->file->reader);
        *ret_backing = in->file->backing_id;
        in->file->backing_id = -1;
        in->file->stale = false;
        assert(fs->stats.open_files > 0);
        fs->stats.open_files--;
        file_trim_locked(in);
}

/* The reader of in is no longer used by anyone: it goes to the idle list;
 * the least recently used idle reader beyond the bound (or in's own, if
 * stale) comes back in *ret_reader (NULL: none) to be closed after the
 * lock is dropped, with fs_reader_close.  fs->lock held. */
static void reader_unused_locked(struct fs *fs, struct fs_inode *in, struct cas_vblob **ret_reader,
                                 int *ret_backing) {
        struct fs_file *f = in->file;
        struct fs_inode *victim;

        *ret_reader = NULL;
        *ret_backing = -1;
        if (!f || f->opens > 0 || f->reads > 0 || !f->reader || f->idle)
                return;
        if (f->stale) {
                /* replaced by a fresh open on the next use */
                reader_take_locked(fs, in, ret_reader, ret_backing);
                return;
        }
        fs_idle_append_locked(fs, in);
        if (fs->n_idle <= fs->cfg.idle_readers)
                return;
        victim = fs->idle_head;
        fs_idle_remove_locked(fs, victim);
        /* The next reader opens the blob file anew (a repaired blob
         * replaces the file) and checks its outboard again. */
        reader_take_locked(fs, victim, ret_reader, ret_backing);
}

void fs_reader_close(struct fs *fs, struct cas_vblob *reader, int backing_id) {
        if (backing_id >= 0 && fs->backing)
                fs->backing->close(fs->backing_ctx, backing_id);
        cas_vblob_close(reader);
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
                in->file->opens++;
                ret->fh = in->ino;
                ret->keep_cache = true;
                ret->backing_id = in->file->backing_id;
        } else
                file_trim_locked(in);
        assert(in->pins > 0);
        in->pins--;
        dead = fs_inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        fs_inode_free(fs, dead);
        return r;
}

int fs_release(struct fs *fs, uint64_t ino, uint64_t fh) {
        struct cas_vblob *reader = NULL;
        struct fs_inode *in, *dead = NULL;
        int r = 0, id = -1;

        if (!fs)
                return -EINVAL;
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        /* fh and ino come from the kernel: checked, not asserted */
        if (!in || in->key.kind != CAS_NODE_FILE || !in->file || in->file->opens == 0 || fh != in->ino)
                r = -EBADF;
        else {
                in->file->opens--;
                reader_unused_locked(fs, in, &reader, &id);
                dead = fs_inode_release_locked(fs, in);
        }
        pthread_mutex_unlock(&fs->lock);
        if (reader)
                fs_reader_close(fs, reader, id);
        fs_inode_free(fs, dead);
        return r;
}

/* Ends fs_read's use of in's reader: the reader goes idle if nothing else
 * uses it, the inode goes if nothing refers to it. */
static void read_end(struct fs *fs, struct fs_inode *in) {
        struct cas_vblob *to_close;
        struct fs_inode *dead;
        int id;

        pthread_mutex_lock(&fs->lock);
        assert(in->file->reads > 0);
        in->file->reads--;
        reader_unused_locked(fs, in, &to_close, &id);
        dead = fs_inode_release_locked(fs, in);
        pthread_mutex_unlock(&fs->lock);
        if (to_close)
                fs_reader_close(fs, to_close, id);
        fs_inode_free(fs, dead);
}

int fs_read(struct fs *fs, uint64_t ino, uint64_t fh, uint64_t off, size_t size, void *buf,
            struct fs_read_result *ret) {
        struct cas_vblob *reader;
        struct fs_inode *in, *dead;
        int r;

        if (!fs || !ret || (size > 0 && !buf))
                return -EINVAL;
        *ret = (struct fs_read_result){};
        pthread_mutex_lock(&fs->lock);
        in = fs_inode_get_locked(fs, ino);
        /* fh 0: a front end that does not open files (zero-message open);
         * the blob is then opened and checked on the first read */
        if (!in || in->key.kind != CAS_NODE_FILE ||
            (fh != 0 && (fh != in->ino || !in->file || in->file->opens == 0))) {
                pthread_mutex_unlock(&fs->lock);
                return -EBADF;
        }
        in->pins++;
        r = reader_get_locked(fs, in, false);
        assert(in->pins > 0);
        in->pins--;
        if (r < 0) {
                file_trim_locked(in);
                dead = fs_inode_release_locked(fs, in);
                pthread_mutex_unlock(&fs->lock);
                fs_inode_free(fs, dead);
                return r;
        }
        /* counted in reads, the reader is neither evicted nor closed by a
         * release while the copy below runs without the lock */
        in->file->reads++;
        reader = in->file->reader;
        pthread_mutex_unlock(&fs->lock);

        r = reader_read(in, reader, off, size, buf, ret);
        if (r == -EBADMSG)
                r = read_fresh(fs, in, off, size, buf, ret);
        read_end(fs, in);
        return r;
}

