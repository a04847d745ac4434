/* Local tree reading helpers for ingestion (see localfs.h). */
#include "castore/localfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/macro.h"
#include "castore/directory.h"

int cas_local_open_file(int dfd, const char *name, struct stat *ret_st) {
        /* O_NONBLOCK: if the file was replaced by a fifo since the caller
         * looked, the open must not wait for a writer (it changes nothing
         * for reads of regular files). */
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_NOATIME);

        if (fd < 0 && errno == EPERM)
                fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, ret_st) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        if (!S_ISREG(ret_st->st_mode)) {
                close(fd);
                return -EAGAIN; /* replaced by something else meanwhile */
        }
        return fd;
}

int cas_local_readlink(int dfd, const char *name, char **ret, size_t *ret_len) {
        char buf[CAS_TARGET_MAX + 2];
        ssize_t n = readlinkat(dfd, name, buf, sizeof(buf));

        if (n < 0)
                return negative_errno();
        if (n == 0 || n > CAS_TARGET_MAX)
                return -ENAMETOOLONG;
        *ret = strndup(buf, n);
        if (!*ret)
                return -ENOMEM;
        *ret_len = n;
        return 0;
}

void cas_local_names_free(char **names, size_t n) {
        if (!names)
                return;
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

int cas_local_list(int dfd, char ***ret, size_t *ret_n) {
        char **v = NULL;
        size_t n = 0, cap = 0;
        DIR *dp;
        int fd, r = 0;

        fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        dp = fdopendir(fd);
        if (!dp) {
                r = negative_errno();
                close(fd);
                return r;
        }
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(dp);
                if (!de) {
                        r = errno ? -errno : 0;
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n == cap) {
                        char **nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        v = nv;
                }
                v[n] = strdup(de->d_name);
                if (!v[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(dp);
        if (r < 0) {
                cas_local_names_free(v, n);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

const char *cas_local_kind(mode_t m) {
        if (S_ISCHR(m))
                return "character device";
        if (S_ISBLK(m))
                return "block device";
        if (S_ISFIFO(m))
                return "fifo";
        if (S_ISSOCK(m))
                return "socket";
        return "special file";
}
