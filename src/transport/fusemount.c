/* FUSE mounting: mount(2) as root with the fd=,rootmode=,user_id=,group_id=
 * options of the fuse filesystem type, or fusermount3 with the descriptor
 * passed back over a socketpair (SCM_RIGHTS, _FUSE_COMMFD). */
#include "transport/fusemount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"
#include "util/macro.h"

#define FUSERMOUNT "fusermount3"

/* Option values are comma separated: keep only characters that cannot
 * break the list. */
static void sanitize(const char *in, char *out, size_t size) {
        size_t n = 0;

        for (; in && *in && n + 1 < size; in++)
                out[n++] = (*in == ',' || *in == '\\' || *in == ' ' || *in == '\t' || *in == '\n') ? '_' : *in;
        out[n] = 0;
}

static int mount_kernel(const char *mountpoint, const struct fusemount_options *o, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        char opts[512], fsname[256], type[128], sub[64];
        struct stat st;

        if (stat(mountpoint, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=%o,user_id=%u,group_id=%u,default_permissions%s", fd,
                 (unsigned) (st.st_mode & S_IFMT), (unsigned) getuid(), (unsigned) getgid(),
                 o->allow_other ? ",allow_other" : "");
        sanitize(o->fsname ? o->fsname : "castore", fsname, sizeof(fsname));
        sanitize(o->subtype, sub, sizeof(sub));
        snprintf(type, sizeof(type), "fuse%s%s", sub[0] ? "." : "", sub);
        if (mount(fsname, mountpoint, type, MS_RDONLY | MS_NOSUID | MS_NODEV, opts) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Receives one descriptor sent with SCM_RIGHTS. */
static int recv_fd(int sock) {
        char byte;
        struct iovec iov = { &byte, 1 };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                              .msg_controllen = sizeof(ctl.buf) };
        struct cmsghdr *c;
        ssize_t n;
        int fd;

        do
                n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        c = CMSG_FIRSTHDR(&msg);
        if (n == 0 || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len != CMSG_LEN(sizeof(int)))
                return -EIO;
        memcpy(&fd, CMSG_DATA(c), sizeof(fd));
        return fd;
}

/* Runs fusermount3 with args (NULL-terminated, after the program name);
 * with comm_fd >= 0 it is handed over as _FUSE_COMMFD.  Returns its exit
 * status as 0 / -EIO. */
static int run_fusermount(char *const *args, int comm_fd, pid_t *ret_pid) {
        char *argv[16];
        size_t n = 0;
        pid_t pid;

        argv[n++] = (char *) FUSERMOUNT;
        for (; *args && n + 1 < ELEMENTSOF(argv); args++)
                argv[n++] = *args;
        argv[n] = NULL;
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                char env[32];
                if (comm_fd >= 0) {
                        int fl = fcntl(comm_fd, F_GETFD);
                        if (fl >= 0)
                                fcntl(comm_fd, F_SETFD, fl & ~FD_CLOEXEC);
                        snprintf(env, sizeof(env), "%d", comm_fd);
                        setenv("_FUSE_COMMFD", env, 1);
                }
                execvp(FUSERMOUNT, argv);
                _exit(127);
        }
        *ret_pid = pid;
        return 0;
}

static int wait_child(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return -ENOENT;
        return -EIO;
}

static int mount_helper(const char *mountpoint, const struct fusemount_options *o, int *ret_fd) {
        int sv[2], r, fd;
        char opts[512], fsname[256], sub[64];
        pid_t pid;

        sanitize(o->fsname ? o->fsname : "castore", fsname, sizeof(fsname));
        sanitize(o->subtype, sub, sizeof(sub));
        snprintf(opts, sizeof(opts), "ro,nosuid,nodev,default_permissions,fsname=%s%s%s%s", fsname,
                 sub[0] ? ",subtype=" : "", sub, o->allow_other ? ",allow_other" : "");
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        char *args[] = { (char *) "-o", opts, (char *) "--", (char *) mountpoint, NULL };
        r = run_fusermount(args, sv[1], &pid);
        close(sv[1]);
        if (r < 0) {
                close(sv[0]);
                return r;
        }
        fd = recv_fd(sv[0]);
        close(sv[0]);
        r = wait_child(pid);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                if (r == -ENOENT)
                        return log_error_errno(r, FUSERMOUNT " not found (install fuse3)");
                /* it said why on stderr; say what it means for us */
                if (access("/dev/fuse", F_OK) < 0)
                        return log_error_errno(-ENODEV, "/dev/fuse is missing: load the fuse module");
                return log_error_errno(-EPERM, FUSERMOUNT " could not mount %s as user %u (message above)",
                                       mountpoint, (unsigned) getuid());
        }
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

int fusemount_mount(const char *mountpoint, const struct fusemount_options *o, int *ret_fd, bool *ret_helper) {
        int r;

        if (!mountpoint || !o || !ret_fd || !ret_helper)
                return -EINVAL;
        if (geteuid() == 0) {
                r = mount_kernel(mountpoint, o, ret_fd);
                /* in a user namespace root may still lack the right to mount */
                if (r != -EPERM) {
                        *ret_helper = false;
                        return r;
                }
        }
        r = mount_helper(mountpoint, o, ret_fd);
        if (r >= 0)
                *ret_helper = true;
        return r;
}

int fusemount_unmount(const char *mountpoint, bool lazy, bool helper) {
        pid_t pid;
        int r;

        if (!mountpoint)
                return -EINVAL;
        if (!helper && geteuid() == 0) {
                if (umount2(mountpoint, lazy ? MNT_DETACH : 0) < 0) {
                        r = negative_errno();
                        if (r != -EPERM)
                                return r;
                } else
                        return 0;
        }
        char *args[] = { (char *) "-u", (char *) (lazy ? "-z" : "-q"), (char *) "--", (char *) mountpoint, NULL };
        r = run_fusermount(args, -1, &pid);
        if (r < 0)
                return r;
        r = wait_child(pid);
        if (r == -EIO) {
                char fstype[64];

                return fusemount_find(mountpoint, fstype, NULL) == 0 && strncmp(fstype, "fuse", 4) == 0 ? -EBUSY
                                                                                                         : -EINVAL;
        }
        return r;
}

/* Undoes mountinfo's octal escapes (spaces and the like) into ret. */
static void unescape(const char *s, char *ret, size_t size) {
        size_t j = 0;

        for (size_t i = 0; s[i] && j + 1 < size; i++) {
                if (s[i] == '\\' && s[i + 1] >= '0' && s[i + 1] <= '7' && s[i + 2] && s[i + 3]) {
                        ret[j++] = (char) ((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
                        i += 3;
                } else
                        ret[j++] = s[i];
        }
        ret[j] = 0;
}

int fusemount_find(const char *path, char ret_fstype[static 64], dev_t *ret_dev) {
        char real[PATH_MAX], line[4096 + 512], fstype[64] = "";
        unsigned maj = 0, min = 0;
        bool found = false;
        FILE *f;

        if (!realpath(path, real))
                return negative_errno();
        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();
        while (fgets(line, sizeof(line), f)) {
                /* id parent major:minor root mountpoint options ... - fstype source super */
                char mnt[4096], un[4096], *sep;
                unsigned a, b;

                if (sscanf(line, "%*s %*s %u:%u %*s %4095s", &a, &b, mnt) != 3)
                        continue;
                unescape(mnt, un, sizeof(un));
                sep = strstr(line, " - ");
                if (strcmp(un, real) != 0 || !sep)
                        continue;
                /* the last match is the top mount: keep scanning */
                found = sscanf(sep + 3, "%63s", fstype) == 1;
                maj = a;
                min = b;
        }
        fclose(f);
        if (!found)
                return -ENOENT;
        memcpy(ret_fstype, fstype, 64);
        if (ret_dev)
                *ret_dev = makedev(maj, min);
        return 0;
}

bool fusemount_is_castore(const char *path) {
        char fstype[64];

        return fusemount_find(path, fstype, NULL) == 0 && strcmp(fstype, "fuse.castore") == 0;
}

/* The watcher: waits for the daemon to ask (a byte) or to die (end of
 * file), then unmounts the mount it was given if it is still there. */
static __attribute__((noreturn)) void watch(int fd, const char *mountpoint, dev_t dev, bool helper) {
        char fstype[64], c;
        sigset_t ss;
        dev_t now;
        ssize_t n;

        /* terminal signals are for the daemon, which then asks us */
        sigemptyset(&ss);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGHUP);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        (void) prctl(PR_SET_NAME, "castore-umount", 0, 0, 0);
        /* hold nothing of the daemon's: not its /dev/fuse descriptors
         * (whose last close ends the session), nor its output */
        if (dup2(fd, 3) < 0)
                _exit(1);
        fd = 3;
        close_range(4, ~0U, 0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0)
                for (int i = 0; i < 3; i++)
                        dup2(null, i);
        do
                n = read(fd, &c, 1);
        while (n < 0 && errno == EINTR);
        if (fusemount_find(mountpoint, fstype, &now) == 0 && now == dev &&
            fusemount_unmount(mountpoint, false, helper) == -EBUSY)
                (void) fusemount_unmount(mountpoint, true, helper);
        _exit(0);
}

int fusemount_watch(const char *mountpoint, bool helper, struct fusemount_watcher *ret) {
        char fstype[64];
        int p[2], r;
        dev_t dev;
        pid_t pid;

        r = fusemount_find(mountpoint, fstype, &dev);
        if (r < 0)
                return r;
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid == 0) {
                close(p[1]);
                watch(p[0], mountpoint, dev, helper);
        }
        close(p[0]);
        *ret = (struct fusemount_watcher){ .fd = p[1], .pid = pid };
        return 0;
}

int fusemount_watcher_unmount(struct fusemount_watcher *w) {
        int status;

        if (w->fd < 0)
                return 0;
        (void) !write(w->fd, "u", 1);
        close(w->fd);
        w->fd = -1;
        while (waitpid(w->pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return 0;
}
