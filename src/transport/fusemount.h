/* Mounting and unmounting a FUSE filesystem: mount(2) with a /dev/fuse
 * descriptor when privileged, else the setuid fusermount3 helper, which
 * passes the descriptor back over a socket. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct fusemount_options {
        const char *fsname;   /* source column of the mount table */
        const char *subtype;  /* type becomes fuse.<subtype> */
        bool allow_other;     /* let other users in (needs user_allow_other for fusermount3) */
};

/* Mounts a read-only (nosuid, nodev, default_permissions) FUSE filesystem
 * on mountpoint, which must be a directory.  On success *ret_fd is the
 * session's /dev/fuse descriptor (close-on-exec) and *ret_helper says
 * whether fusermount3 was used (then unmount through it too).  The kernel
 * sends INIT next. */
int fusemount_mount(const char *mountpoint, const struct fusemount_options *o, int *ret_fd, bool *ret_helper);

/* Unmounts: umount2() as root, else fusermount3 -u.  lazy detaches a busy
 * mount (MNT_DETACH / -z).  -EBUSY if busy and not lazy; -EINVAL if
 * mountpoint is not a mount. */
int fusemount_unmount(const char *mountpoint, bool lazy, bool helper);

/* The top mount on path (per /proc/self/mountinfo): its file system type
 * ("fuse.castore", ...) and device number.  -ENOENT if path is no mount
 * point. */
int fusemount_find(const char *path, char ret_fstype[static 64], dev_t *ret_dev);

/* Is the top mount on path a castore FUSE mount? */
bool fusemount_is_castore(const char *path);

/* A process that unmounts for a daemon that cannot (confined, without
 * capabilities or exec): forked while the daemon still can, it unmounts
 * when asked, or when the daemon dies, if the mount it was started for is
 * still there. */
struct fusemount_watcher {
        int fd;    /* write end of its pipe; -1 once asked */
        pid_t pid;
};
int fusemount_watch(const char *mountpoint, bool helper, struct fusemount_watcher *ret);
/* Asks it to unmount (lazily if busy) and waits until it did. */
int fusemount_watcher_unmount(struct fusemount_watcher *w);
