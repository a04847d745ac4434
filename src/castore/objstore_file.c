/* file:///abs/path object store: each object is a file at path/<key>.  A
 * put writes a hidden temporary in the object's folder, fsyncs it, renames
 * it over the key and fsyncs the folder (and any folder it created), so an
 * object is whole or absent after a crash. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "castore/objstore.h"
#include "util/io.h"
#include "util/log.h"

struct objstore_file {
        struct cas_objstore base;
        int dirfd; /* immutable: the root, O_PATH|O_DIRECTORY */
        char *dir; /* immutable, for messages */
};

/* Numbers this process's temporaries (atomic). */
static uint64_t tmp_seq;

static struct objstore_file *to_file(struct cas_objstore *o) {
        return (struct objstore_file *) o;
}

static int fsync_at(int dirfd, const char *path) {
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

/* Creates the folders of key's parent under the root, fsyncing the folder
 * that holds each one it creates. */
static int make_parents(struct objstore_file *f, const char *key) {
        char path[PATH_MAX];
        size_t n = strlen(key);

        if (n >= sizeof(path))
                return -ENAMETOOLONG;
        memcpy(path, key, n + 1);
        for (char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
                *p = 0;
                if (mkdirat(f->dirfd, path, 0755) == 0) {
                        char *slash = strrchr(path, '/');
                        int r;

                        if (slash)
                                *slash = 0;
                        r = fsync_at(f->dirfd, slash ? path : ".");
                        if (slash)
                                *slash = '/';
                        if (r < 0)
                                return r;
                } else if (errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        return 0;
}

static int file_put(struct cas_objstore *o, const char *key, const void *data, size_t len) {
        struct objstore_file *f = to_file(o);
        char tmp[PATH_MAX], parent[PATH_MAX];
        const char *slash = strrchr(key, '/');
        size_t plen = slash ? (size_t) (slash - key) : 0;
        _cleanup_close_ int fd = -1;
        int r;

        r = make_parents(f, key);
        if (r < 0)
                return log_error_errno(r, "%s/%s: cannot create its folder: %m", f->dir, key);
        memcpy(parent, key, plen);
        parent[plen] = 0;
        if ((size_t) snprintf(tmp, sizeof(tmp), "%s%s.tmp-%d-%" PRIu64, parent, plen ? "/" : "", (int) getpid(),
                              __atomic_fetch_add(&tmp_seq, 1, __ATOMIC_RELAXED)) >= sizeof(tmp))
                return -ENAMETOOLONG;
        fd = openat(f->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return log_error_errno(-errno, "%s/%s: cannot create: %m", f->dir, tmp);
        r = loop_write(fd, data, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(f->dirfd, tmp, f->dirfd, key) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(f->dirfd, tmp, 0);
                return log_error_errno(r, "%s/%s: cannot store: %m", f->dir, key);
        }
        r = fsync_at(f->dirfd, plen ? parent : ".");
        if (r < 0)
                return log_error_errno(r, "%s/%s: cannot sync its folder: %m", f->dir, key);
        return 0;
}

static int file_get(struct cas_objstore *o, const char *key, size_t max, uint8_t **ret, size_t *ret_len) {
        struct objstore_file *f = to_file(o);
        _cleanup_close_ int fd = openat(f->dirfd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return errno == ENOENT ? -ENOENT : log_error_errno(-errno, "%s/%s: %m", f->dir, key);
        return read_file_fd(fd, max, ret, ret_len);
}

static int file_head(struct cas_objstore *o, const char *key, uint64_t *ret_size) {
        struct objstore_file *f = to_file(o);
        struct stat st;

        if (fstatat(f->dirfd, key, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? -ENOENT : log_error_errno(-errno, "%s/%s: %m", f->dir, key);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(-EBADMSG, "%s/%s: not a regular file", f->dir, key);
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

/* Walks folder `path` (a key prefix without its trailing '/', or "") and
 * reports its files as keys; hidden names (temporaries) are skipped. */
static int walk(struct objstore_file *f, const char *path, cas_objstore_list_cb cb, void *userdata) {
        int fd = openat(f->dirfd, *path ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (fd < 0)
                return errno == ENOENT ? 0 : log_error_errno(-errno, "%s/%s: %m", f->dir, path);
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        while (r >= 0 && (errno = 0, de = readdir(d))) {
                char key[PATH_MAX];

                if (de->d_name[0] == '.')
                        continue;
                if ((size_t) snprintf(key, sizeof(key), "%s%s%s", path, *path ? "/" : "", de->d_name) >= sizeof(key))
                        continue;
                unsigned type = de->d_type;
                struct stat st;

                if (type == DT_UNKNOWN) /* a file system that does not say: ask */
                        type = fstatat(f->dirfd, key, &st, AT_SYMLINK_NOFOLLOW) < 0 ? DT_UNKNOWN
                               : S_ISDIR(st.st_mode)                            ? DT_DIR
                               : S_ISREG(st.st_mode)                            ? DT_REG
                                                                                : DT_UNKNOWN;
                if (type == DT_DIR)
                        r = walk(f, key, cb, userdata);
                else if (type == DT_REG)
                        r = cas_objstore_key_valid(key) ? cb(userdata, key) : 0;
        }
        if (r >= 0 && errno)
                r = -errno;
        closedir(d);
        return r;
}

static int file_list(struct cas_objstore *o, const char *prefix, cas_objstore_list_cb cb, void *userdata) {
        char path[PATH_MAX];
        size_t n = strlen(prefix);

        if (n >= sizeof(path))
                return -ENAMETOOLONG;
        memcpy(path, prefix, n + 1);
        if (n > 0)
                path[n - 1] = 0;
        return walk(to_file(o), path, cb, userdata);
}

static int file_remove(struct cas_objstore *o, const char *key) {
        struct objstore_file *f = to_file(o);

        if (unlinkat(f->dirfd, key, 0) < 0)
                return errno == ENOENT ? -ENOENT : log_error_errno(-errno, "%s/%s: cannot remove: %m", f->dir, key);
        return 0;
}

static void file_free(struct cas_objstore *o) {
        struct objstore_file *f = to_file(o);

        close(f->dirfd);
        free(f->dir);
        free(f);
}

static const struct cas_objstore_ops file_ops = {
        .name = "file",
        .put = file_put,
        .get = file_get,
        .head = file_head,
        .list = file_list,
        .remove = file_remove,
        .free = file_free,
};

int cas_objstore_file_new(const char *dir, struct cas_objstore **ret) {
        struct objstore_file *f;

        if (!dir || dir[0] != '/' || !ret)
                return -EINVAL;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "%s: cannot create the object store: %m", dir);
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->base.ops = &file_ops;
        f->dir = strdup(dir);
        f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (f->dirfd < 0 || !f->dir) {
                int r = f->dirfd < 0 ? log_error_errno(-errno, "%s: cannot open the object store: %m", dir) : -ENOMEM;
                if (f->dirfd >= 0)
                        close(f->dirfd);
                free(f->dir);
                free(f);
                return r;
        }
        *ret = &f->base;
        return 0;
}
