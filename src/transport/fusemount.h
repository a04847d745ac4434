/* Mounting and unmounting a FUSE filesystem: mount(2) with a /dev/fuse
 * descriptor when privileged, else the setuid fusermount3 helper, which
 * passes the descriptor back over a socket. */
#pragma once

#include <stdbool.h>

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

/* Is path the root of a FUSE mount (per /proc/self/mountinfo)? */
bool fuse_is_mounted(const char *path);
