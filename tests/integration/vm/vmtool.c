/* vmtool: a small static helper for the virtiofs guest tests, for what
 * busybox cannot show exactly: raw readdir order, xattrs, and the errno of
 * a write attempt.  Names are printed with bytes outside 0x21..0x7e (and
 * backslash) escaped as \xNN so non-UTF-8 names compare as text.
 *   vmtool readdir DIR           entries in getdents order (no . and ..)
 *   vmtool getxattr PATH NAME    value, or the errno name
 *   vmtool listxattr PATH        names, one a line
 *   vmtool write PATH            open O_WRONLY -> OK or errno name
 *   vmtool create PATH | mkdir PATH | unlink PATH | rmdir PATH
 *   vmtool rename OLD NEW | symlink TARGET PATH | link OLD NEW
 *   vmtool truncate PATH | chmod PATH | utime PATH | setxattr PATH
 *   vmtool statx PATH            "mode size nlink uid gid" (lstat) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static void put_escaped(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c <= 0x20 || c >= 0x7f || c == '\\')
                        printf("\\x%02x", c);
                else
                        putchar(c);
        }
}

static const char *errname(int e) {
        switch (e) {
        case EROFS: return "EROFS";
        case ENODATA: return "ENODATA";
        case ENOENT: return "ENOENT";
        case EPERM: return "EPERM";
        case EACCES: return "EACCES";
        case EIO: return "EIO";
        case EEXIST: return "EEXIST";
        case ENOTSUP: return "ENOTSUP";
        case EINVAL: return "EINVAL";
        case EISDIR: return "EISDIR";
        case ENOSYS: return "ENOSYS";
        case EXDEV: return "EXDEV";
        case ERANGE: return "ERANGE";
        default: return strerror(e);
        }
}

static int result(int r) {
        if (r < 0) {
                printf("%s\n", errname(errno));
                return 1;
        }
        printf("OK\n");
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 3) {
                fprintf(stderr, "usage: vmtool CMD ARGS\n");
                return 2;
        }
        const char *cmd = argv[1], *p = argv[2];

        if (!strcmp(cmd, "readdir")) {
                DIR *d = opendir(p);
                struct dirent *de;
                if (!d)
                        return result(-1);
                while ((de = readdir(d))) {
                        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                                continue;
                        put_escaped(de->d_name, strlen(de->d_name));
                        putchar('\n');
                }
                closedir(d);
                return 0;
        }
        if (!strcmp(cmd, "getxattr") && argc == 4) {
                char buf[4096];
                ssize_t n = lgetxattr(p, argv[3], buf, sizeof(buf));
                if (n < 0)
                        return result(-1);
                put_escaped(buf, (size_t) n);
                putchar('\n');
                return 0;
        }
        if (!strcmp(cmd, "listxattr")) {
                char buf[4096];
                ssize_t n = llistxattr(p, buf, sizeof(buf));
                if (n < 0)
                        return result(-1);
                for (ssize_t i = 0; i < n; i += (ssize_t) strlen(buf + i) + 1)
                        printf("%s\n", buf + i);
                return 0;
        }
        if (!strcmp(cmd, "statx")) {
                struct stat st;
                if (lstat(p, &st) < 0)
                        return result(-1);
                printf("%o %lld %lu %u %u\n", (unsigned) st.st_mode, (long long) st.st_size,
                       (unsigned long) st.st_nlink, st.st_uid, st.st_gid);
                return 0;
        }
        if (!strcmp(cmd, "write")) {
                int fd = open(p, O_WRONLY);
                if (fd >= 0)
                        close(fd);
                return result(fd);
        }
        if (!strcmp(cmd, "create")) {
                int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
                if (fd >= 0)
                        close(fd);
                return result(fd);
        }
        if (!strcmp(cmd, "mkdir"))
                return result(mkdir(p, 0755));
        if (!strcmp(cmd, "unlink"))
                return result(unlink(p));
        if (!strcmp(cmd, "rmdir"))
                return result(rmdir(p));
        if (!strcmp(cmd, "truncate"))
                return result(truncate(p, 0));
        if (!strcmp(cmd, "chmod"))
                return result(chmod(p, 0777));
        if (!strcmp(cmd, "utime"))
                return result(utimensat(AT_FDCWD, p, NULL, 0));
        if (!strcmp(cmd, "setxattr"))
                return result(lsetxattr(p, "user.test", "x", 1, 0));
        if (argc == 4 && !strcmp(cmd, "rename"))
                return result(rename(p, argv[3]));
        if (argc == 4 && !strcmp(cmd, "symlink"))
                return result(symlink(p, argv[3]));
        if (argc == 4 && !strcmp(cmd, "link"))
                return result(link(p, argv[3]));
        fprintf(stderr, "vmtool: unknown command %s\n", cmd);
        return 2;
}
