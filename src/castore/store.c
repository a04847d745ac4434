/* Opening a store: picks the backends for a URL (memory://, a local store
 * directory) and, for the local store, creates or checks its layout. */
#include "castore/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/io.h"
#include "util/log.h"
#include "castore/lmdb.h"

void cas_store_free(struct cas_store *s) {
        if (!s)
                return;
        cas_root_service_free(s->roots);
        cas_dir_service_free(s->dirs);
        cas_blob_service_free(s->blobs);
        cas_lmdb_close(s->lmdb); /* after the services that use it */
        cas_store_free(s->cache); /* after the services that borrow it */
        free(s->url);
        free(s->lock_path);
        pthread_rwlock_destroy(&s->gc_rwlock);
        free(s);
}

/* Every store has the rwlock, whether or not it uses it. */
static struct cas_store *store_alloc(const char *url) {
        struct cas_store *s = calloc(1, sizeof(*s));
        pthread_rwlockattr_t attr;

        if (!s)
                return NULL;
        s->url = strdup(url);
        if (!s->url) {
                free(s);
                return NULL;
        }
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_READER_NP);
        pthread_rwlock_init(&s->gc_rwlock, &attr);
        pthread_rwlockattr_destroy(&attr);
        return s;
}

/* ---- the garbage collector's lock ---- */

/* One hold, owned by the thread that took it (nothing in it is shared). */
struct cas_store_lock {
        struct cas_store *store;
        bool exclusive;
        int fd; /* the flock()ed lock file, or -1 for the rwlock */
};

static int lock_file(struct cas_store *s, bool exclusive, bool wait, int *ret_fd) {
        /* read-only is enough for flock(), and lets a member of a group
         * sharing the store lock it once someone created it */
        _cleanup_close_ int fd = open(s->lock_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);

        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot open the store's lock %s: %m", s->lock_path);
        for (;;) {
                if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) >= 0)
                        break;
                if (errno == EWOULDBLOCK)
                        return -EBUSY;
                if (errno != EINTR)
                        return log_error_errno(negative_errno(), "Cannot lock %s: %m", s->lock_path);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int lock_rw(struct cas_store *s, bool exclusive, bool wait) {
        int r;

        if (exclusive)
                r = wait ? pthread_rwlock_wrlock(&s->gc_rwlock) : pthread_rwlock_trywrlock(&s->gc_rwlock);
        else
                r = wait ? pthread_rwlock_rdlock(&s->gc_rwlock) : pthread_rwlock_tryrdlock(&s->gc_rwlock);
        return r == 0 ? 0 : r == EBUSY ? -EBUSY : -r;
}

int cas_store_lock(struct cas_store *s, bool exclusive, bool wait, struct cas_store_lock **ret) {
        struct cas_store_lock *l;
        int fd = -1, r;

        if (!s || !ret)
                return -EINVAL;
        l = malloc(sizeof(*l));
        if (!l)
                return -ENOMEM;
        r = s->lock_path ? lock_file(s, exclusive, wait, &fd) : lock_rw(s, exclusive, wait);
        if (r < 0) {
                free(l);
                return r;
        }
        *l = (struct cas_store_lock){ .store = s, .exclusive = exclusive, .fd = fd };
        *ret = l;
        return 0;
}

void cas_store_unlock(struct cas_store_lock *l) {
        if (!l)
                return;
        if (l->fd >= 0)
                close(l->fd); /* releases the flock */
        else
                pthread_rwlock_unlock(&l->store->gc_rwlock);
        free(l);
}

static int open_memory(struct cas_store *s) {
        int r;

        r = cas_blob_memory_new(&s->blobs);
        if (r >= 0)
                r = cas_dir_memory_new(&s->dirs);
        if (r >= 0)
                r = cas_root_memory_new(&s->roots);
        return r;
}

/* ---- the local store ---- */

#define MARKER "castore-store"
#define FORMAT_VERSION 1

static int fsync_path(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/* mkdir, and on success fsync of the parent that now holds the entry (a
 * store whose directory a power loss can take away is no store). */
static int mkdir_durable(char *path, mode_t mode) {
        char *slash = strrchr(path, '/');
        int r;

        if (mkdir(path, mode) < 0)
                return errno == EEXIST ? 0 : negative_errno();
        if (!slash)
                return fsync_path(".");
        if (slash == path)
                return fsync_path("/");
        *slash = 0;
        r = fsync_path(path);
        *slash = '/';
        return r;
}

/* Creates path (owner-only: a store holds copies of private files) and its
 * missing parents, durably. */
static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        int r;

        if (!p)
                return -ENOMEM;
        for (char *q = p + 1; *q; q++) {
                if (*q != '/')
                        continue;
                *q = 0;
                r = mkdir_durable(p, 0755);
                if (r < 0)
                        return r;
                *q = '/';
        }
        return mkdir_durable(p, 0700);
}

/* Is dir empty but for what a store (or one being created by someone
 * else right now) holds?  A fresh filesystem's lost+found is fine too. */
static int layout_only(int dirfd, bool *ret) {
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;
        bool only = true;

        if (!d) {
                if (fd >= 0)
                        close(fd);
                return negative_errno();
        }
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "blobs") &&
                    strcmp(de->d_name, "tmp") && strcmp(de->d_name, "meta") && strcmp(de->d_name, "lost+found") && strcmp(de->d_name, "gc.lock") &&
                    strncmp(de->d_name, MARKER, strlen(MARKER)) != 0)
                        only = false;
        closedir(d);
        *ret = only;
        return 0;
}

/* 0 if the marker names a format we read; -ENOENT if there is none. */
static int check_marker(int dirfd, const char *path) {
        _cleanup_close_ int fd = openat(dirfd, MARKER, O_RDONLY | O_CLOEXEC);
        char buf[64];
        unsigned version;
        ssize_t n;

        if (fd < 0)
                return errno == ENOENT ? -ENOENT
                                       : log_error_errno(negative_errno(), "Cannot read %s/" MARKER ": %m", path);
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return log_error_errno(negative_errno(), "Cannot read %s/" MARKER ": %m", path);
        buf[n] = 0;
        if (sscanf(buf, MARKER " %u", &version) != 1)
                return log_error_errno(-EBADMSG, "%s/" MARKER " is malformed", path);
        if (version != FORMAT_VERSION)
                return log_error_errno(-EPROTONOSUPPORT, "Store %s has format %u, this castore reads format %d",
                                       path, version, FORMAT_VERSION);
        return 0;
}

/* Written last, atomically and durably: a store without it is unfinished.
 * Everything the store is made of must be durable before the marker can
 * be: the caller has synced meta/ (the LMDB files); the first fsync of the
 * store directory commits blobs/, tmp/ and meta/ themselves. */
static int write_marker(int dirfd, const char *path) {
        char tmp[64], text[64];
        _cleanup_close_ int fd = -1;
        int len = snprintf(text, sizeof(text), MARKER " %d\n", FORMAT_VERSION);

        snprintf(tmp, sizeof(tmp), MARKER ".%d.tmp", (int) getpid());
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || loop_write(fd, text, len) < 0 || fsync(fd) < 0 || fsync(dirfd) < 0 ||
            renameat(dirfd, tmp, dirfd, MARKER) < 0 || fsync(dirfd) < 0) {
                int r = errno > 0 ? negative_errno() : -EIO;
                (void) unlinkat(dirfd, tmp, 0);
                return log_error_errno(r, "Cannot write %s/" MARKER ": %m", path);
        }
        return 0;
}

static int open_local(struct cas_store *s, const char *path, unsigned flags) {
        _cleanup_free_ char *blobs = NULL, *tmp = NULL, *meta = NULL;
        _cleanup_close_ int dirfd = -1;
        bool create = (flags & CAS_STORE_CREATE) && !(flags & CAS_STORE_READONLY), new_store = false;
        int r;

        dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0 && errno == ENOENT && create) {
                r = mkdir_parents(path);
                if (r < 0)
                        return log_error_errno(r, "Cannot create store directory %s: %m", path);
                dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (dirfd < 0) {
                r = negative_errno();
                if (r == -ENOENT)
                        return log_error_errno(r, "No store at %s", path);
                return log_error_errno(r, "Cannot open store %s: %m", path);
        }

        r = check_marker(dirfd, path);
        if (r == -ENOENT) {
                bool only;

                r = layout_only(dirfd, &only);
                if (r < 0)
                        return log_error_errno(r, "Cannot read directory %s: %m", path);
                if (!only)
                        return log_error_errno(-EMEDIUMTYPE,
                                               "%s is not a castore store (it has files but no " MARKER
                                               " file); refusing to use it",
                                               path);
                if (!create)
                        return log_error_errno(-ENOENT, "No store at %s (no " MARKER " file yet)", path);
                /* An empty directory becoming a store: owner-only, as one
                 * we create. */
                if (fchmod(dirfd, 0700) < 0)
                        return log_error_errno(negative_errno(), "Cannot make %s owner-only: %m", path);
                new_store = true;
                r = 0;
        }
        if (r < 0)
                return r;

        if (asprintf(&blobs, "%s/blobs", path) < 0 || asprintf(&tmp, "%s/tmp", path) < 0 ||
            asprintf(&meta, "%s/meta", path) < 0 || asprintf(&s->lock_path, "%s/gc.lock", path) < 0)
                return -ENOMEM;
        r = cas_lmdb_open(meta, new_store ? CAS_STORE_CREATE : (flags & CAS_STORE_READONLY), &s->lmdb);
        if (r < 0)
                return r;
        r = cas_dir_lmdb_new(s->lmdb, &s->dirs);
        if (r < 0)
                return log_error_errno(r, "Cannot open the directory database of %s: %m", path);
        r = cas_root_lmdb_new(s->lmdb, &s->roots);
        if (r < 0)
                return log_error_errno(r, "Cannot open the root database of %s: %m", path);
        r = cas_blob_local_new(blobs, tmp, &s->blobs);
        if (r < 0)
                return r;
        if (new_store) {
                /* the env's files are new entries of meta/ (their data was
                 * synced by the commits that created the databases) */
                r = fsync_path(meta);
                if (r < 0)
                        return log_error_errno(r, "Cannot sync %s: %m", meta);
                r = write_marker(dirfd, path);
                if (r < 0)
                        return r;
                log_info("Created store %s", path);
        }
        return 0;
}

int cas_store_open(const char *url, unsigned flags, struct cas_store **ret) {
        _cleanup_(cas_store_freep) struct cas_store *s = NULL;
        const char *sep;
        int r;

        if (!url || !*url || !ret)
                return -EINVAL;
        s = store_alloc(url);
        if (!s)
                return -ENOMEM;

        sep = strstr(url, "://");
        if (sep && strcmp(url, "memory://") == 0)
                r = open_memory(s);
        else if (sep && strncmp(url, "local://", 8) == 0 && url[8])
                r = open_local(s, url + 8, flags);
        else if (!sep)
                r = open_local(s, url, flags);
        else
                return log_error_errno(-EINVAL, "Unsupported store URL '%s' (use memory://, a directory or local://PATH)",
                                       url);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int cas_store_new(const char *url, struct cas_blob_service *blobs, struct cas_dir_service *dirs,
                  struct cas_root_service *roots, struct cas_store *cache, struct cas_store **ret) {
        struct cas_store *s = store_alloc(url);

        if (!s) {
                cas_root_service_free(roots);
                cas_dir_service_free(dirs);
                cas_blob_service_free(blobs);
                cas_store_free(cache);
                return -ENOMEM;
        }
        s->blobs = blobs;
        s->dirs = dirs;
        s->roots = roots;
        s->cache = cache;
        *ret = s;
        return 0;
}
