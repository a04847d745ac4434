/* The local blob backend's temporaries: per-service names under a lock
 * file, creation, and the removal of those left by dead processes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/blob_local.h"
#include "util/log.h"
#include "util/io.h"

void blob_local_tmp_name(const struct blob_local *l, uint64_t seq, char ret[TMP_NAME_MAX]) {
        snprintf(ret, TMP_NAME_MAX, "%s.%" PRIu64, l->prefix, seq);
}

void blob_local_unlink_tmp(struct blob_local *l, uint64_t seq) {
        char name[TMP_NAME_MAX];

        blob_local_tmp_name(l, seq, name);
        (void) unlinkat(l->tmp_fd, name, 0);
}

/* ---- stale temporaries and the per-service lock file ---- */

/* Splits "<prefix>.<rest>"; false for names that are not ours. */
static bool split_tmp_name(const char *name, size_t *ret_prefix_len, const char **ret_rest) {
        const char *dot = strchr(name, '.'), *dash = strchr(name, '-');

        if (!dot || !dash || dash > dot || dot == name || (size_t) (dot - name) >= PREFIX_MAX)
                return false;
        if (strspn(name, "0123456789") != (size_t) (dash - name) ||
            strspn(dash + 1, "0123456789abcdef") != (size_t) (dot - dash - 1) || dot[1] == 0)
                return false;
        *ret_prefix_len = dot - name;
        *ret_rest = dot + 1;
        return true;
}

/* Is the owner of a prefix alive?  It is while it holds its lock file. */
static bool prefix_alive(struct blob_local *l, const char *prefix, size_t len) {
        char name[PREFIX_MAX + 8];
        _cleanup_close_ int fd = -1;

        snprintf(name, sizeof(name), "%.*s.lock", (int) len, prefix);
        fd = openat(l->tmp_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno != ENOENT; /* no lock file: nobody owns these */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return true; /* EWOULDBLOCK: held (or we cannot tell: keep) */
        return false;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Removes a dead service's file (dry_run: only counts it), adding it and
 * its bytes to the counters. */
static bool remove_counted(struct blob_local *l, const char *name, bool dry_run, uint64_t *files, uint64_t *bytes) {
        struct stat st;

        if (fstatat(l->tmp_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return false;
        if (!dry_run && unlinkat(l->tmp_fd, name, 0) < 0)
                return false;
        (*files)++;
        *bytes += st.st_size;
        return true;
}

/* Removes the temporaries (then the lock files) of dead services.  Names
 * are sorted so each prefix's liveness is checked once. */
void blob_local_clean_stale(struct blob_local *l, bool dry_run, uint64_t *ret_files, uint64_t *ret_bytes) {
        _cleanup_free_ char **names = NULL;
        size_t n = 0, cap = 0;
        uint64_t removed = 0, bytes = 0;
        int fd = fcntl(l->tmp_fd, F_DUPFD_CLOEXEC, 3);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;
        const char *last = NULL, *rest;
        size_t last_len = 0, plen;
        bool last_alive = true;

        if (!dir) {
                if (fd >= 0)
                        close(fd);
                log_warning_errno(negative_errno(), "Cannot list temporary blob directory: %m");
                return;
        }
        rewinddir(dir);
        while ((de = readdir(dir))) {
                if (!split_tmp_name(de->d_name, &plen, &rest))
                        continue;
                if (plen == strlen(l->prefix) && memcmp(de->d_name, l->prefix, plen) == 0)
                        continue;
                if (n == cap) {
                        char **v = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*v));
                        if (!v)
                                break;
                        names = v;
                }
                if (!(names[n] = strdup(de->d_name)))
                        break;
                n++;
        }
        closedir(dir);
        if (n == 0)
                return;
        qsort(names, n, sizeof(*names), name_cmp);

        /* Pass 1: temporaries.  Pass 2: the lock files of dead owners, removed
         * while we hold their lock so no one else decides on them meanwhile. */
        for (size_t i = 0; i < n; i++) {
                split_tmp_name(names[i], &plen, &rest);
                if (strcmp(rest, "lock") == 0)
                        continue;
                if (!last || plen != last_len || memcmp(names[i], last, plen) != 0) {
                        last = names[i];
                        last_len = plen;
                        last_alive = prefix_alive(l, names[i], plen);
                }
                if (!last_alive)
                        remove_counted(l, names[i], dry_run, &removed, &bytes);
        }
        for (size_t i = 0; i < n; i++) {
                split_tmp_name(names[i], &plen, &rest);
                if (strcmp(rest, "lock") == 0) {
                        _cleanup_close_ int lfd = openat(l->tmp_fd, names[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) >= 0)
                                remove_counted(l, names[i], dry_run, &removed, &bytes);
                }
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        if (removed > 0 && !dry_run)
                log_info("Removed %" PRIu64 " stale temporary blob files", removed);
        *ret_files += removed;
        *ret_bytes += bytes;
}

/* Creates and locks this service's lock file under a fresh prefix.  A
 * cleaner in another process may lock (and remove) a lock file in the
 * instant between its creation and our flock(): we notice, since the name
 * then no longer leads to our file, and pick another prefix. */
static int take_prefix(struct blob_local *l) {
        for (int attempt = 0; attempt < 16; attempt++) {
                char name[PREFIX_MAX + 8];
                uint64_t rnd;
                struct stat a, b;
                int fd;

                if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                        return negative_errno();
                snprintf(l->prefix, sizeof(l->prefix), "%d-%016" PRIx64, (int) getpid(), rnd);
                snprintf(name, sizeof(name), "%s.lock", l->prefix);
                /* readable by all: other users' cleaners must be able to test the lock */
                fd = openat(l->tmp_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd < 0) {
                        if (errno == EEXIST)
                                continue;
                        return log_error_errno(negative_errno(), "Cannot create temporary blob lock file: %m");
                }
                if (fstat(fd, &a) < 0) {
                        close(fd);
                        return negative_errno();
                }
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        /* a cleaner is testing it this instant: leave it the
                         * file if it is still ours, and try another name */
                        if (fstatat(l->tmp_fd, name, &b, 0) >= 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
                                (void) unlinkat(l->tmp_fd, name, 0);
                        close(fd);
                        continue;
                }
                if (fstatat(l->tmp_fd, name, &b, 0) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
                        close(fd);
                        continue;
                }
                l->lock_fd = fd;
                return 0;
        }
        return log_error_errno(-EAGAIN, "Cannot take a temporary blob file prefix");
}

/* Called before every write; does the work once. */
int blob_local_ensure_writable(struct blob_local *l) {
        int r = 0;

        if (__atomic_load_n(&l->write_ready, __ATOMIC_ACQUIRE))
                return 0;
        pthread_mutex_lock(&l->init_lock);
        if (!l->write_ready) {
                r = take_prefix(l);
                if (r >= 0) {
                        uint64_t files = 0, bytes = 0;

                        blob_local_clean_stale(l, false, &files, &bytes);
                        __atomic_store_n(&l->write_ready, true, __ATOMIC_RELEASE);
                }
        }
        pthread_mutex_unlock(&l->init_lock);
        return r;
}

/* Creates temporary <prefix>.<seq>. */
int blob_local_tmp_create(struct blob_local *l, uint64_t *ret_seq) {
        uint64_t seq = __atomic_fetch_add(&l->next_seq, 1, __ATOMIC_RELAXED);
        char name[TMP_NAME_MAX];
        int fd;

        blob_local_tmp_name(l, seq, name);
        fd = openat(l->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot create temporary blob file: %m");
        *ret_seq = seq;
        return fd;
}
