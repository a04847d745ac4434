/* Local blob backend: one read-only file per blob at <dir>/<2 hex>/<64 hex>,
 * written to a per-process temporary in <tmpdir> while hashing, then fsynced
 * and renamed into place (or, deferred, many at once after one syncfs);
 * small imported blobs go to pack files instead (blob_local_pack*.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/blob_local.h"
#include "castore/outboard.h"
#include "util/io.h"
#include "util/log.h"

static int fsync_dirat(int dirfd, const char *name) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        return fsync(fd) < 0 ? negative_errno() : 0;
}

/* 0 if a blob file with this digest exists and has the expected size (or
 * any size if size is UINT64_MAX); -ENOENT if absent.  A file of the wrong
 * size is reported (it is damaged) and treated as absent so that the new
 * write replaces it. */
static int blob_exists(struct blob_local *l, const struct cas_digest *d, uint64_t size) {
        char path[BLOB_PATH_LEN + 1];
        struct stat st;
        uint64_t packed;

        if (size > 0 && size <= PACK_BLOB_MAX) {
                if (blob_local_pack_pending(l, d) ||
                    (blob_local_pack_stat(l, d, false, &packed) >= 0 && packed == size))
                        return 0;
        }
        blob_path(d, path);
        if (fstatat(l->blobs_fd, path, &st, 0) < 0) {
                if (errno != ENOENT)
                        return negative_errno();
                /* another process may have packed it since we looked */
                if (size > 0 && size <= PACK_BLOB_MAX && blob_local_pack_stat(l, d, true, &packed) >= 0 &&
                    packed == size)
                        return 0;
                return -ENOENT;
        }
        if (!S_ISREG(st.st_mode))
                return log_error_errno(-EUCLEAN, "Blob %s is not a regular file", path);
        if (size != UINT64_MAX && (uint64_t) st.st_size != size) {
                log_warning("Blob %s has %" PRIu64 " bytes instead of %" PRIu64 ", replacing it", path,
                            (uint64_t) st.st_size, size);
                return -ENOENT;
        }
        return 0;
}

/* Renames temporary seq to its blob path, creating the shard directory
 * (durably) if needed.  Does not sync the shard directory. */
static int rename_into_place(struct blob_local *l, uint64_t seq, const struct cas_digest *d) {
        char from[TMP_NAME_MAX], to[BLOB_PATH_LEN + 1];

        blob_local_tmp_name(l, seq, from);
        blob_path(d, to);
        if (renameat(l->tmp_fd, from, l->blobs_fd, to) >= 0)
                return 0;
        if (errno != ENOENT)
                return negative_errno();
        to[SHARD_NAME_LEN] = 0;
        /* 0775: group-writable under umask 002, for a store a group shares */
        if (mkdirat(l->blobs_fd, to, 0775) < 0 && errno != EEXIST)
                return negative_errno();
        if (fsync(l->blobs_fd) < 0)
                return negative_errno();
        to[SHARD_NAME_LEN] = '/';
        if (renameat(l->tmp_fd, from, l->blobs_fd, to) < 0)
                return negative_errno();
        return 0;
}

/* ---- deferred renames ---- */

/* Called with flush_lock held.  Makes the temporaries durable with one
 * syncfs, renames them into place, then makes the renames durable with a
 * second syncfs.
 * Entries that fail go back to the list (their data is kept) and the first
 * error is returned. */
static int flush_locked(struct blob_local *l) {
        _cleanup_free_ struct pending *p = NULL;
        struct pack_writer *pw = NULL;
        size_t n, failed = 0;
        bool any_renamed = false, dedup, pack_ok = false;
        int r = 0, k;

        /* cleared before the syncfs below, which covers those dedups */
        dedup = __atomic_exchange_n(&l->dedup_unsynced, false, __ATOMIC_ACQ_REL);
        /* the pack being written, with its index, as temporaries (and the
         * live blobs of packs to rewrite copied into it) */
        r = blob_local_pack_prepare(l, &pw);
        pthread_mutex_lock(&l->pending_lock);
        p = TAKE_PTR(l->pending);
        n = l->n_pending;
        l->n_pending = l->cap_pending = 0;
        pthread_mutex_unlock(&l->pending_lock);
        if (n == 0 && !dedup && !pw)
                return r;

        if (syncfs(l->tmp_fd) < 0) {
                r = log_error_errno(negative_errno(), "Cannot sync the blob store: %m");
                failed = n;
                if (dedup)
                        __atomic_store_n(&l->dedup_unsynced, true, __ATOMIC_RELEASE);
        } else {
                if (pw) {
                        k = blob_local_pack_publish(l, pw);
                        if (k < 0 && r >= 0)
                                r = k;
                        pack_ok = k >= 0;
                        any_renamed = true;
                }
                for (size_t i = 0; i < n; i++) {
                        k = rename_into_place(l, p[i].seq, &p[i].digest);
                        if (k < 0) {
                                if (r >= 0)
                                        r = log_error_errno(k, "Cannot move blob %s into place: %m",
                                                            CAS_DIGEST_HEX(&p[i].digest));
                                if (k != -ENOENT) /* a vanished temporary cannot be retried */
                                        p[failed++] = p[i];
                        } else
                                any_renamed = true;
                }
        }
        /* One more syncfs makes every rename durable: one journal commit
         * instead of an fsync per touched shard directory. */
        if (any_renamed && syncfs(l->blobs_fd) < 0) {
                pack_ok = false;
                if (r >= 0)
                        r = log_error_errno(negative_errno(), "Cannot sync the blob store: %m");
        }
        /* the packs it replaces are removed only once it is durable */
        blob_local_pack_finish(l, pw, pack_ok);

        if (failed > 0) {
                /* Put them back in front of what arrived meanwhile. */
                pthread_mutex_lock(&l->pending_lock);
                struct pending *v = realloc(p, (failed + l->n_pending) * sizeof(*v));
                if (v) {
                        memcpy(v + failed, l->pending, l->n_pending * sizeof(*v));
                        free(l->pending);
                        l->pending = v;
                        l->n_pending += failed;
                        l->cap_pending = l->n_pending;
                        p = NULL;
                }
                pthread_mutex_unlock(&l->pending_lock);
                if (p) {
                        for (size_t i = 0; i < failed; i++)
                                blob_local_unlink_tmp(l, p[i].seq);
                        log_error("Out of memory: dropped %zu deferred blobs", failed);
                }
        }
        return r;
}

/* Queues a deferred rename: -ENOMEM (nothing queued), 0, or 1 when the
 * list is long enough that the caller should flush. */
static int pending_add(struct blob_local *l, uint64_t seq, const struct cas_digest *d) {
        bool flush;

        pthread_mutex_lock(&l->pending_lock);
        if (l->n_pending == l->cap_pending) {
                size_t cap = l->cap_pending ? l->cap_pending * 2 : 256;
                struct pending *v = realloc(l->pending, cap * sizeof(*v));

                if (!v) {
                        pthread_mutex_unlock(&l->pending_lock);
                        return -ENOMEM;
                }
                l->pending = v;
                l->cap_pending = cap;
        }
        l->pending[l->n_pending++] = (struct pending){ seq, *d };
        flush = l->n_pending >= l->flush_at;
        pthread_mutex_unlock(&l->pending_lock);
        return flush;
}

/* If another thread is flushing, it or a later commit will take ours. */
static int flush_if_idle(struct blob_local *l) {
        int r;

        if (pthread_mutex_trylock(&l->flush_lock) != 0)
                return 0;
        r = flush_locked(l);
        pthread_mutex_unlock(&l->flush_lock);
        return r;
}

static int local_sync(struct cas_blob_service *s) {
        struct blob_local *l = (struct blob_local *) s;
        int r;

        pthread_mutex_lock(&l->flush_lock);
        r = flush_locked(l);
        pthread_mutex_unlock(&l->flush_lock);
        return r;
}

/* Finishes a fully written temporary: fsync + rename + directory fsync,
 * with CAS_BLOB_DEFER_SYNC a pending entry, with CAS_BLOB_NO_SYNC a bare
 * rename.  Takes fd; removes the temporary on failure. */
static int tmp_finish(struct blob_local *l, int fd, uint64_t seq, const struct cas_digest *d, unsigned flags) {
        char path[BLOB_PATH_LEN + 1];
        int r = 0;

        if (!(flags & (CAS_BLOB_DEFER_SYNC | CAS_BLOB_NO_SYNC)) && fsync(fd) < 0)
                r = negative_errno();
        if (close(fd) < 0 && r >= 0 && errno != EINTR)
                r = negative_errno();
        if (r >= 0) {
                if (flags & CAS_BLOB_DEFER_SYNC) {
                        r = pending_add(l, seq, d);
                        if (r < 0) {
                                blob_local_unlink_tmp(l, seq);
                                return r;
                        }
                        /* Ours is queued whatever the flush does; its errors
                         * concern the store as a whole and are reported. */
                        return r > 0 ? flush_if_idle(l) : 0;
                }
                r = rename_into_place(l, seq, d);
                if (r >= 0 && (flags & CAS_BLOB_NO_SYNC))
                        return 0;
                if (r >= 0) {
                        blob_path(d, path);
                        path[SHARD_NAME_LEN] = 0;
                        r = fsync_dirat(l->blobs_fd, path);
                        return r < 0 ? log_error_errno(r, "Cannot sync blob directory %s: %m", path) : 0;
                }
        }
        blob_local_unlink_tmp(l, seq);
        return log_error_errno(r, "Cannot store blob %s: %m", CAS_DIGEST_HEX(d));
}

/* A new temporary holding data: its fd, or -errno (nothing left behind). */
static int tmp_write(struct blob_local *l, const void *data, size_t len, uint64_t *ret_seq) {
        int fd, r;

        r = blob_local_ensure_writable(l);
        if (r < 0)
                return r;
        fd = blob_local_tmp_create(l, ret_seq);
        if (fd < 0)
                return fd;
        r = loop_write(fd, data, len);
        if (r < 0) {
                close(fd);
                blob_local_unlink_tmp(l, *ret_seq);
                return r;
        }
        return fd;
}

/* ---- put and the writer ---- */

static int local_outboard_put(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *ob,
                              size_t len);

/* Stores the outboard a writer computed while hashing, unless one is there
 * already.  Best effort: a missing one is rebuilt by the first reader. */
static void outboard_keep(struct blob_local *l, const struct cas_digest *d, const uint8_t *ob, size_t len) {
        char path[OUTBOARD_PATH_LEN + 1];
        int r;

        if (!ob)
                return;
        outboard_path(d, path);
        if (faccessat(l->blobs_fd, path, F_OK, 0) == 0)
                return;
        r = local_outboard_put(&l->base, d, ob, len);
        if (r < 0)
                log_debug_errno(r, "Cannot store outboard %s: %m", path);
}

static int local_put(struct cas_blob_service *s, const void *data, size_t len, unsigned flags,
                     struct cas_digest *ret_digest) {
        struct blob_local *l = (struct blob_local *) s;
        struct cas_outboard_builder b;
        _cleanup_free_ uint8_t *ob = NULL;
        struct cas_digest d;
        size_t ob_len;
        uint64_t seq;
        bool pack;
        int r, fd;

        cas_outboard_builder_init(&b);
        cas_outboard_builder_update(&b, data, len);
        r = cas_outboard_builder_final(&b, &d, &ob, &ob_len);
        if (r < 0)
                return r;
        pack = (flags & CAS_BLOB_PACK) && (flags & CAS_BLOB_DEFER_SYNC) && len > 0 && len <= PACK_BLOB_MAX;
        if (!pack)
                outboard_keep(l, &d, ob, ob_len);
        r = blob_exists(l, &d, len);
        if (r != -ENOENT) {
                if (r >= 0) {
                        *ret_digest = d;
                        if (flags & CAS_BLOB_DEFER_SYNC)
                                __atomic_store_n(&l->dedup_unsynced, true, __ATOMIC_RELEASE);
                }
                return r;
        }
        if (pack) {
                r = blob_local_pack_put(l, &d, data, len, ob, ob_len);
                if (r < 0)
                        return r;
                *ret_digest = d;
                /* ours is in the pack whatever the flush does */
                return r > 0 ? flush_if_idle(l) : 0;
        }
        fd = tmp_write(l, data, len, &seq);
        if (fd < 0)
                return log_error_errno(fd, "Cannot write blob %s: %m", CAS_DIGEST_HEX(&d));
        r = tmp_finish(l, fd, seq, &d, flags);
        if (r >= 0)
                *ret_digest = d;
        return r;
}

struct local_writer {
        struct cas_blob_writer base;
        struct blob_local *l;
        unsigned flags;
        int fd;       /* temporary, -1 until the buffer first overflows */
        uint64_t seq; /* its name */
        uint64_t size;
        /* First write error: the hash then covers bytes the temporary may
         * lack, so every later write and the commit fail with it. */
        int error;
        struct cas_outboard_builder hasher;
        size_t buf_len;
        uint8_t buf[WRITER_BUF];
};

/* Writes the buffered bytes to the temporary, creating it if needed. */
static int writer_spill(struct local_writer *w) {
        int r;

        if (w->fd < 0) {
                r = blob_local_ensure_writable(w->l);
                if (r < 0)
                        return r;
                w->fd = blob_local_tmp_create(w->l, &w->seq);
                if (w->fd < 0)
                        return w->fd;
        }
        r = loop_write(w->fd, w->buf, w->buf_len);
        if (r < 0)
                return log_error_errno(r, "Cannot write temporary blob file: %m");
        w->buf_len = 0;
        return 0;
}

static int local_write(struct cas_blob_writer *bw, const void *buf, size_t len) {
        struct local_writer *w = (struct local_writer *) bw;
        int r;

        if (w->error < 0)
                return w->error;
        if (len > UINT64_MAX - w->size)
                return -EFBIG;
        cas_outboard_builder_update(&w->hasher, buf, len);
        w->size += len;
        if (len <= WRITER_BUF - w->buf_len) {
                memcpy(w->buf + w->buf_len, buf, len);
                w->buf_len += len;
                return 0;
        }
        r = writer_spill(w);
        if (r >= 0 && len < WRITER_BUF) {
                memcpy(w->buf, buf, len);
                w->buf_len = len;
                return 0;
        }
        if (r >= 0) {
                r = loop_write(w->fd, buf, len);
                if (r < 0)
                        log_error_errno(r, "Cannot write temporary blob file: %m");
        }
        if (r < 0)
                w->error = r;
        return r;
}

static void local_abort(struct cas_blob_writer *bw) {
        struct local_writer *w = (struct local_writer *) bw;

        if (w->fd >= 0) {
                close(w->fd);
                blob_local_unlink_tmp(w->l, w->seq);
        }
        cas_outboard_builder_done(&w->hasher);
        free(w);
}

static int local_commit(struct cas_blob_writer *bw, struct cas_digest *ret_digest, uint64_t *ret_size) {
        struct local_writer *w = (struct local_writer *) bw;
        _cleanup_free_ uint8_t *ob = NULL;
        struct cas_digest d;
        size_t ob_len;
        int r;

        r = w->error;
        if (r >= 0)
                r = cas_outboard_builder_final(&w->hasher, &d, &ob, &ob_len);
        if (r < 0) {
                local_abort(bw);
                return r;
        }
        outboard_keep(w->l, &d, ob, ob_len);
        r = blob_exists(w->l, &d, w->size);
        if (r >= 0 && (w->flags & CAS_BLOB_DEFER_SYNC))
                __atomic_store_n(&w->l->dedup_unsynced, true, __ATOMIC_RELEASE);
        if (r == -ENOENT) {
                r = writer_spill(w);
                if (r >= 0) {
                        r = tmp_finish(w->l, TAKE_FD(w->fd), w->seq, &d, w->flags);
                }
        }
        if (r >= 0) {
                *ret_digest = d;
                *ret_size = w->size;
        }
        local_abort(bw); /* drops the temporary if still ours (dedup, errors) */
        return r;
}

static const struct cas_blob_writer_ops local_writer_ops = {
        .write = local_write,
        .commit = local_commit,
        .abort = local_abort,
};

static int local_writer_new(struct cas_blob_service *s, unsigned flags, struct cas_blob_writer **ret) {
        struct local_writer *w = malloc(sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->base.ops = &local_writer_ops;
        w->l = (struct blob_local *) s;
        w->flags = flags;
        w->fd = -1;
        w->seq = 0;
        w->size = 0;
        w->error = 0;
        w->buf_len = 0;
        cas_outboard_builder_init(&w->hasher);
        *ret = &w->base;
        return 0;
}

/* ---- reading ---- */

static int local_stat(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_size) {
        struct blob_local *l = (struct blob_local *) s;
        char path[BLOB_PATH_LEN + 1];
        struct stat st;

        if (blob_local_pack_stat(l, d, false, ret_size) >= 0)
                return 0;
        blob_path(d, path);
        if (fstatat(l->blobs_fd, path, &st, 0) < 0) {
                int k = negative_errno();

                if (k == -ENOENT && blob_local_pack_stat(l, d, true, ret_size) >= 0)
                        return 0;
                return k;
        }
        if (!S_ISREG(st.st_mode))
                return -EUCLEAN;
        *ret_size = st.st_size;
        return 0;
}

static ssize_t local_pread(struct cas_blob_reader *r, void *buf, size_t len, uint64_t off) {
        size_t got = 0;

        if (off > INT64_MAX)
                return 0;
        len = MIN((uint64_t) len, (uint64_t) SSIZE_MAX);
        while (got < len) {
                ssize_t n = pread(r->fd, (uint8_t *) buf + got, len - got, (off_t) (off + got));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return got > 0 ? (ssize_t) got : negative_errno();
                }
                if (n == 0)
                        break;
                got += n;
        }
        return (ssize_t) got;
}

static void local_reader_close(struct cas_blob_reader *r) {
        if (r->fd >= 0)
                close(r->fd);
        free(r);
}

static const struct cas_blob_reader_ops local_reader_ops = {
        .pread = local_pread,
        .close = local_reader_close,
};

static int local_open(struct cas_blob_service *s, const struct cas_digest *d, struct cas_blob_reader **ret) {
        struct blob_local *l = (struct blob_local *) s;
        char path[BLOB_PATH_LEN + 1];
        _cleanup_close_ int fd = -1;
        struct cas_blob_reader *r;
        struct stat st;
        uint64_t packed;
        int k;

        /* packs first: the table is in memory */
        if (blob_local_pack_stat(l, d, false, &packed) >= 0) {
                k = blob_local_pack_open(l, d, ret);
                if (k != -ENOENT) /* -ENOENT: removed meanwhile */
                        return k;
        }
        blob_path(d, path);
        /* O_NOATIME spares a metadata write per open, but only the file's
         * owner may ask for it: fall back once and remember. */
        if (__atomic_load_n(&l->noatime, __ATOMIC_RELAXED)) {
                fd = openat(l->blobs_fd, path, O_RDONLY | O_CLOEXEC | O_NOATIME);
                if (fd < 0 && errno == EPERM)
                        __atomic_store_n(&l->noatime, 0, __ATOMIC_RELAXED);
                else if (fd < 0)
                        return errno == ENOENT ? blob_local_pack_open(l, d, ret) : negative_errno();
        }
        if (fd < 0)
                fd = openat(l->blobs_fd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? blob_local_pack_open(l, d, ret) : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EUCLEAN;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        *r = (struct cas_blob_reader){
                .ops = &local_reader_ops, .digest = *d, .size = st.st_size, .fd = TAKE_FD(fd),
        };
        *ret = r;
        return 0;
}

static bool is_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* Walks the 256 shard directories; names that are not a 64-hex digest
 * belonging to their shard are skipped. */
static int local_list(struct cas_blob_service *s, cas_blob_list_cb cb, void *userdata) {
        struct blob_local *l = (struct blob_local *) s;
        int r = 0;

        for (int i = 0; i < 256 && r >= 0; i++) {
                char shard[3];
                struct dirent *de;
                DIR *dir;
                int fd;

                snprintf(shard, sizeof(shard), "%02x", i);
                fd = openat(l->blobs_fd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0) {
                        if (errno == ENOENT)
                                continue;
                        return log_error_errno(negative_errno(), "Cannot open blob directory %s: %m", shard);
                }
                dir = fdopendir(fd);
                if (!dir) {
                        r = negative_errno();
                        close(fd);
                        return r;
                }
                while (r >= 0 && (errno = 0, de = readdir(dir))) {
                        struct cas_digest d;

                        if (strlen(de->d_name) != CAS_DIGEST_HEX_LEN || memcmp(de->d_name, shard, 2) != 0 ||
                            !is_hex(de->d_name, CAS_DIGEST_HEX_LEN) || cas_digest_parse(de->d_name, &d) < 0)
                                continue;
                        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                                continue;
                        r = cb(userdata, &d);
                }
                if (r >= 0 && errno != 0)
                        r = negative_errno();
                closedir(dir);
        }
        if (r >= 0)
                r = blob_local_pack_list(l, cb, userdata);
        return r < 0 ? r : 0;
}

static int local_remove(struct cas_blob_service *s, const struct cas_digest *d) {
        struct blob_local *l = (struct blob_local *) s;
        char path[OUTBOARD_PATH_LEN + 1];

        int packed, r = 0;

        /* a packed blob is only marked: its pack is rewritten without it
         * at the next flush (cas_blob_sync, or freeing the service) */
        packed = blob_local_pack_remove(l, d);
        outboard_path(d, path);
        if (unlinkat(l->blobs_fd, path, 0) < 0 && errno != ENOENT)
                log_debug_errno(negative_errno(), "Cannot remove outboard %s: %m", path);
        path[BLOB_PATH_LEN] = 0;
        if (unlinkat(l->blobs_fd, path, 0) < 0)
                r = negative_errno();
        return packed >= 0 && r == -ENOENT ? 0 : r;
}

static int local_disk_usage(struct cas_blob_service *s, const struct cas_digest *d, uint64_t *ret_bytes) {
        struct blob_local *l = (struct blob_local *) s;
        char path[OUTBOARD_PATH_LEN + 1];
        struct stat st;
        uint64_t bytes;

        /* a packed blob takes its length and its outboard's in its pack */
        if (blob_local_pack_bytes(l, d, false, ret_bytes) >= 0)
                return 0;
        blob_path(d, path);
        if (fstatat(l->blobs_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                int k = negative_errno();

                if (k == -ENOENT && blob_local_pack_bytes(l, d, true, ret_bytes) >= 0)
                        return 0;
                return k;
        }
        bytes = (uint64_t) st.st_blocks * 512;
        outboard_path(d, path);
        if (fstatat(l->blobs_fd, path, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                bytes += (uint64_t) st.st_blocks * 512;
        *ret_bytes = bytes;
        return 0;
}

/* ---- outboards: <2 hex>/<64 hex>.ob beside the blob ---- */

static int local_outboard_get(struct cas_blob_service *s, const struct cas_digest *d, uint8_t **ret,
                              size_t *ret_len) {
        struct blob_local *l = (struct blob_local *) s;
        char path[OUTBOARD_PATH_LEN + 1];
        _cleanup_close_ int fd = -1;

        /* a packed blob's is in its pack, if it was packed with one */
        if (blob_local_pack_outboard(l, d, ret, ret_len) >= 0)
                return 0;
        outboard_path(d, path);
        fd = openat(l->blobs_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        return read_file_fd(fd, OUTBOARD_MAX, ret, ret_len);
}

static int rename_outboard(struct blob_local *l, const char *from, char *to) {
        if (renameat(l->tmp_fd, from, l->blobs_fd, to) >= 0)
                return 0;
        if (errno != ENOENT)
                return negative_errno();
        to[SHARD_NAME_LEN] = 0; /* the blob's shard may not exist yet */
        if (mkdirat(l->blobs_fd, to, 0775) < 0 && errno != EEXIST)
                return negative_errno();
        to[SHARD_NAME_LEN] = '/';
        return renameat(l->tmp_fd, from, l->blobs_fd, to) < 0 ? negative_errno() : 0;
}

/* Not synced: an outboard lost to a crash is rebuilt from the blob, and a
 * damaged one is recognised as such when loaded. */
static int local_outboard_put(struct cas_blob_service *s, const struct cas_digest *d, const uint8_t *ob,
                              size_t len) {
        struct blob_local *l = (struct blob_local *) s;
        char from[TMP_NAME_MAX], to[OUTBOARD_PATH_LEN + 1];
        _cleanup_close_ int fd = -1;
        uint64_t seq, packed;
        int r;
        /* none beside a packed blob: its pack holds it, or (a pack of
         * version 1) its readers build it from a few groups */
        if (blob_local_pack_stat(l, d, false, &packed) >= 0)
                return -EOPNOTSUPP;

        fd = tmp_write(l, ob, len, &seq);
        if (fd < 0)
                return fd;
        blob_local_tmp_name(l, seq, from);
        outboard_path(d, to);
        r = rename_outboard(l, from, to);
        if (r < 0)
                blob_local_unlink_tmp(l, seq);
        return r;
}

/* Makes deferred blobs durable, then gives up the temporary prefix. */
static void local_free(struct cas_blob_service *s) {
        struct blob_local *l = (struct blob_local *) s;

        if (local_sync(s) < 0) {
                for (size_t i = 0; i < l->n_pending; i++)
                        blob_local_unlink_tmp(l, l->pending[i].seq);
                log_error("%zu deferred blobs could not be stored", l->n_pending);
        }
        free(l->pending);
        blob_local_packs_done(l);
        if (l->lock_fd >= 0) {
                char name[PREFIX_MAX + 8];

                snprintf(name, sizeof(name), "%s.lock", l->prefix);
                (void) unlinkat(l->tmp_fd, name, 0);
                close(l->lock_fd);
        }
        close(l->blobs_fd);
        close(l->tmp_fd);
        pthread_mutex_destroy(&l->init_lock);
        pthread_mutex_destroy(&l->pending_lock);
        pthread_mutex_destroy(&l->flush_lock);
        free(l);
}

static const struct cas_blob_ops blob_local_ops = {
        .name = "local",
        .stat = local_stat,
        .open = local_open,
        .put = local_put,
        .writer_new = local_writer_new,
        .sync = local_sync,
        .list = local_list,
        .remove = local_remove,
        .disk_usage = local_disk_usage,
        .outboard_get = local_outboard_get,
        .outboard_put = local_outboard_put,
        .free = local_free,
};

int cas_blob_local_set_flush_at(struct cas_blob_service *s, size_t n) {
        struct blob_local *l = (struct blob_local *) s;

        if (!s || s->ops != &blob_local_ops || n == 0)
                return -EINVAL;
        pthread_mutex_lock(&l->pending_lock);
        __atomic_store_n(&l->flush_at, n, __ATOMIC_RELAXED); /* packs read it without the lock */
        pthread_mutex_unlock(&l->pending_lock);
        return 0;
}

/* ---- the garbage collector's extras ---- */

/* Is name "<64 hex>.ob" of this shard? */
static bool is_outboard_name(const char *name, const char *shard) {
        return strlen(name) == OUTBOARD_PATH_LEN - SHARD_NAME_LEN - 1 && memcmp(name, shard, 2) == 0 &&
               is_hex(name, CAS_DIGEST_HEX_LEN) && strcmp(name + CAS_DIGEST_HEX_LEN, ".ob") == 0;
}

/* Outboards of one shard whose blob is absent. */
static int reclaim_shard(int shard_fd, const char *shard, bool dry_run, uint64_t *files, uint64_t *bytes) {
        int fd = fcntl(shard_fd, F_DUPFD_CLOEXEC, 3);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;
        int r = 0;

        if (!dir) {
                r = negative_errno();
                if (fd >= 0)
                        close(fd);
                return r;
        }
        while ((errno = 0, de = readdir(dir))) {
                char blob[CAS_DIGEST_HEX_LEN + 1];
                struct stat st;

                if (!is_outboard_name(de->d_name, shard))
                        continue;
                memcpy(blob, de->d_name, CAS_DIGEST_HEX_LEN);
                blob[CAS_DIGEST_HEX_LEN] = 0;
                if (faccessat(shard_fd, blob, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
                        continue;
                if (fstatat(shard_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (!dry_run && unlinkat(shard_fd, de->d_name, 0) < 0)
                        continue;
                (*files)++;
                *bytes += st.st_size;
        }
        if (errno != 0)
                r = negative_errno();
        closedir(dir);
        return r;
}

/* An outboard is stored before its blob is renamed into place, so an
 * import that failed in between leaves an outboard without a blob.  Only
 * called with the store's gc lock held exclusive: no importer of ours is
 * between the two steps (one that is loses an outboard, which its first
 * reader rebuilds). */
static int reclaim_outboards(struct blob_local *l, bool dry_run, uint64_t *files, uint64_t *bytes) {
        for (int i = 0; i < 256; i++) {
                char shard[3];
                _cleanup_close_ int fd = -1;
                int r;

                snprintf(shard, sizeof(shard), "%02x", i);
                fd = openat(l->blobs_fd, shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0 && errno == ENOENT)
                        continue;
                if (fd < 0)
                        return log_error_errno(negative_errno(), "Cannot open blob directory %s: %m", shard);
                r = reclaim_shard(fd, shard, dry_run, files, bytes);
                if (r < 0)
                        return log_error_errno(r, "Cannot list blob directory %s: %m", shard);
        }
        return 0;
}

int cas_blob_local_reclaim(struct cas_blob_service *s, bool dry_run, uint64_t *ret_files, uint64_t *ret_bytes) {
        struct blob_local *l = (struct blob_local *) s;

        if (!s || !ret_files || !ret_bytes)
                return -EINVAL;
        if (s->ops != &blob_local_ops)
                return -EOPNOTSUPP;
        pthread_mutex_lock(&l->init_lock);
        blob_local_clean_stale(l, dry_run, ret_files, ret_bytes);
        pthread_mutex_unlock(&l->init_lock);
        blob_local_pack_reclaim(l, dry_run, ret_files, ret_bytes);
        return reclaim_outboards(l, dry_run, ret_files, ret_bytes);
}

int cas_blob_local_repack(struct cas_blob_service *s, uint64_t merge_below, bool dry_run, uint64_t *ret_packs) {
        struct blob_local *l = (struct blob_local *) s;

        if (!s || !ret_packs)
                return -EINVAL;
        if (s->ops != &blob_local_ops)
                return -EOPNOTSUPP;
        *ret_packs = blob_local_pack_mark_merge(l, merge_below, dry_run);
        if (dry_run || *ret_packs == 0)
                return 0;
        return local_sync(s);
}

/* Opens dir, creating it (not its parents) if missing. */
static int open_dir(const char *path) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 && errno == ENOENT) {
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return log_error_errno(negative_errno(), "Cannot create %s: %m", path);
                fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot open %s: %m", path);
        return fd;
}

int cas_blob_local_new(const char *dir, const char *tmpdir, struct cas_blob_service **ret) {
        _cleanup_close_ int blobs_fd = -1, tmp_fd = -1;
        struct blob_local *l;
        struct stat a, b;

        if (!dir || !tmpdir || !ret)
                return -EINVAL;
        blobs_fd = open_dir(dir);
        if (blobs_fd < 0)
                return blobs_fd;
        tmp_fd = open_dir(tmpdir);
        if (tmp_fd < 0)
                return tmp_fd;
        if (fstat(blobs_fd, &a) < 0 || fstat(tmp_fd, &b) < 0)
                return negative_errno();
        if (a.st_dev != b.st_dev)
                return log_error_errno(-EXDEV, "%s and %s are on different filesystems", dir, tmpdir);

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->base.ops = &blob_local_ops;
        l->blobs_fd = TAKE_FD(blobs_fd);
        l->tmp_fd = TAKE_FD(tmp_fd);
        l->lock_fd = -1;
        l->noatime = 1;
        l->flush_at = PENDING_FLUSH_AT;
        pthread_mutex_init(&l->init_lock, NULL);
        pthread_mutex_init(&l->pending_lock, NULL);
        pthread_mutex_init(&l->flush_lock, NULL);
        blob_local_packs_init(l);
        *ret = &l->base;
        return 0;
}
