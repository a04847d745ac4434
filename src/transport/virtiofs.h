/* virtiofs: serves a filesystem to virtual machines as a vhost-user-fs
 * device back-end with the same FUSE engine as /dev/fuse, one VMM at a
 * time, ready for the next one when a VMM goes away. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "fuse/fuse_ll.h"

struct fs;

struct virtiofs_config {
        const char *socket_path;  /* bound here, unless listen_fd >= 0 */
        int listen_fd;            /* a listening socket handed over (socket activation, --fd), or -1 */
        unsigned request_queues;  /* offered to the VMM (1..16) */
        unsigned threads;         /* running requests from all queues (1..64); 0 = one per CPU, at most 8 */
        bool once;                /* return after the first connection ends */
        int stop_fd;              /* readable = stop serving (signalfd, eventfd); -1 for none */
        struct fuse_ll_config ll; /* engine options */
        bool socket_group;        /* the socket is 0660 with group socket_gid (else 0600) */
        gid_t socket_gid;
        /* Called once after the socket listens, before any connection or
         * thread (the place to enter a sandbox); a negative return stops.
         * May be NULL. */
        int (*confine)(void *userdata);
        void *confine_userdata;
        /* Called once serving (listening, confined), with confine_userdata;
         * may be NULL. */
        void (*ready)(void *userdata);
};

/* Serves fs on cfg->socket_path (or listen_fd) until stop_fd becomes
 * readable (or, with once, until the first connection ends).  A stale
 * socket file at the path is replaced; the socket is removed on return.
 * SOCKET.lock is held with flock() meanwhile: a path that another castore
 * serves (or any program accepts connections on) is -EADDRINUSE.  fs is kept across
 * connections; the FUSE engine of each connection forgets the previous
 * kernel's inodes and handles at every INIT and when the connection ends.
 * SIGPIPE must be ignored or blocked by the caller; stop signals should be
 * blocked in all threads (threads created here inherit the mask).
 * Returns 0 or -errno (socket setup failures). */
int virtiofs_serve(struct fs *fs, const struct virtiofs_config *cfg);
