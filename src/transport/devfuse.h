/* Serving a filesystem over /dev/fuse: mounts, answers INIT, runs worker
 * threads (one cloned device descriptor each) that feed requests to the
 * protocol engine and write replies (file data copied from memory, or
 * passed through to the kernel) -- or, where the kernel offers FUSE over
 * io_uring, ring threads (transport/fuse_uring.h) -- and unmounts cleanly
 * on SIGINT/SIGTERM. */
#pragma once

#include <stdbool.h>

struct fs;

enum devfuse_passthrough {
        DEVFUSE_PASSTHROUGH_AUTO, /* use it when the kernel offers it and allows us */
        DEVFUSE_PASSTHROUGH_ON,   /* fail the mount without it */
        DEVFUSE_PASSTHROUGH_OFF,
};

enum devfuse_io_uring {
        DEVFUSE_IO_URING_AUTO,    /* use it when the kernel offers it (fuse.enable_uring=Y) */
        DEVFUSE_IO_URING_ON,      /* fail the mount without it */
        DEVFUSE_IO_URING_OFF,
};

struct devfuse_options {
        const char *mountpoint;
        const char *fsname;        /* mount table source; "castore" if NULL */
        unsigned threads;          /* workers; 0 = number of online CPUs */
        bool allow_other;
        enum devfuse_passthrough passthrough;
        enum devfuse_io_uring io_uring;
        bool debug;                /* log every request */
        /* Called once on the calling thread when the mount serves requests
         * (INIT answered, workers running); may be NULL. */
        void (*ready)(void *userdata);
        void *ready_userdata;
        /* Called once on the calling thread after the mount and INIT and
         * before the worker threads start (they inherit what it does): the
         * place to enter a sandbox.  Unmounting is then left to a watcher
         * process forked just before.  io_uring: the daemon waits on its
         * FUSE io_uring rings (io_uring_enter) from now on.  A negative
         * return stops the mount.  May be NULL. */
        int (*confine)(void *userdata, bool io_uring);
        void *confine_userdata;
};

/* Mounts fs on o->mountpoint and serves it until the filesystem is
 * unmounted (castore umount, umount, fusermount3 -u) or SIGINT, SIGTERM or
 * SIGHUP arrives, in which case it unmounts (lazily if busy) and stops
 * the workers.  Blocks those signals in the calling thread.  Returns 0
 * after a clean stop, or -errno (the mount is removed again on failure). */
int devfuse_serve(struct fs *fs, const struct devfuse_options *o);
