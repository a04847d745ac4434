/* The FUSE protocol engine: takes one request message (as read from
 * /dev/fuse, or gathered from a virtqueue descriptor chain), validates it,
 * dispatches it to the filesystem logic (src/fs) and describes the reply.
 * It never touches /dev/fuse or guest memory itself, so the /dev/fuse and
 * vhost-user transports share it unchanged.
 *
 * The engine owns the session: every INIT (the first, or a new one on the
 * same connection when a virtiofs guest reboots or remounts) resets the
 * filesystem's kernel state and negotiates afresh from the kernel's flags
 * and the transport's capabilities (struct fuse_ll_caps).
 *
 * Threading: fuse_ll_handle() may be called from many threads at once for
 * one struct fuse_ll, except for INIT: the transport runs an INIT, until
 * its fuse_ll_reply_done(), while no other request runs (/dev/fuse before
 * its workers start, virtiofs under a write lock). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuse/fuse_kernel.h"

struct fs;

/* FUSE passthrough: the transport hands a file descriptor to the kernel,
 * which then reads that file itself (FUSE_DEV_IOC_BACKING_OPEN). */
struct fuse_ll_backing_ops {
        /* Registers fd: a backing id >= 0, or -errno. */
        int (*open)(void *ctx, int fd);
        /* Unregisters a backing id: 0 or -errno. */
        int (*close)(void *ctx, int backing_id);
        /* Optional: one trial registration, tried once the kernel has the
         * INIT reply (only then does it accept registrations; it may still
         * refuse them, e.g. without CAP_SYS_ADMIN).  0 or -errno. */
        int (*probe)(void *ctx);
};

/* What a transport can do.  The engine derives every session decision
 * from these, its configuration and the kernel's INIT flags: what INIT
 * offers, whether the kernel may open files and directories without
 * asking (zero-message opens), whether passthrough is used, and what a
 * new INIT resets.  A transport never makes those decisions itself. */
struct fuse_ll_caps {
        const char *name;       /* "fuse", "virtiofs" (logs) */
        /* The kernel keeps the mount read-only itself (MS_RDONLY), so it
         * refuses opens for writing without asking us: files may then be
         * opened without an OPEN request.  A virtiofs guest mounts as it
         * likes, and an open for writing must still meet EROFS. */
        bool readonly_mount;
        /* The transport calls fuse_ll_reply_done() after delivering each
         * reply, so an INIT's session is completed once the kernel has the
         * reply (required with backing->probe: the kernel accepts backing
         * registrations only then).  Without it the session is completed
         * when fuse_ll_handle() returns. */
        bool calls_reply_done;
        /* Asked at INIT: can the transport take requests over io_uring
         * (FUSE_OVER_IO_URING) once the kernel has the reply?  True when
         * its rings are ready; it falls back to reading the device if the
         * kernel then refuses them.  NULL: never. */
        bool (*io_uring_ready)(void *ctx);
        /* Can hand descriptors to the kernel for passthrough; NULL: cannot. */
        const struct fuse_ll_backing_ops *backing;
        void *ctx;              /* for backing and io_uring_ready */
};

struct fuse_ll_config {
        unsigned max_pages;     /* cap on pages per read; 0: 256 (1 MiB, what kernels accept) */
        bool passthrough;       /* may use passthrough if offered (--passthrough); also needs caps.backing */
        bool debug;             /* log every request */
};

struct fuse_ll;

/* An engine serving fs over a transport that can do what caps say (copied).
 * -EINVAL for caps.backing without open, or with probe but without
 * calls_reply_done.  One engine per fs at a time: it owns the fs's kernel
 * session (fs_session_reset, fs_set_backing). */
int fuse_ll_new(struct fs *fs, const struct fuse_ll_caps *caps, const struct fuse_ll_config *cfg,
                struct fuse_ll **ret);
/* With no request running, and before the transport's backing ops stop
 * working: ends the session (fs_session_reset: the fs forgets the kernel's
 * inodes and handles and closes its backing files). */
void fuse_ll_free(struct fuse_ll *ll);

/* A reply: the header followed by payload_len bytes in memory (for READ,
 * the file data, verified and copied into scratch).  hdr.len counts both;
 * the transport sends them as they are. */
struct fuse_ll_reply {
        bool none;                  /* no reply is due (FORGET, BATCH_FORGET) */
        struct fuse_out_header hdr;
        const void *payload;        /* in scratch, or static */
        size_t payload_len;
        bool session_pending;       /* engine private: an INIT reply; delivered, it completes the session */
};

/* Handles one request of len bytes at req (private memory the engine reads
 * but does not keep).  scratch is a per-thread buffer of at least
 * fuse_ll_scratch_size() bytes for the reply payload.  Always fills *reply.
 * Returns 0; -EPROTO if the message was malformed (an error reply is
 * still described when its header could be read, else reply->none);
 * -ESHUTDOWN after DESTROY. */
int fuse_ll_handle(struct fuse_ll *ll, const void *req, size_t len, void *scratch, size_t scratch_len,
                   struct fuse_ll_reply *reply);

/* The transport is done with a reply (sent, or dropped): after an INIT
 * reply the session is completed (passthrough tried and enabled in the
 * fs).  Required after every fuse_ll_handle() when the transport set
 * calls_reply_done (before the reply struct is reused); a no-op otherwise
 * and on a second call.  Thread-safe. */
void fuse_ll_reply_done(struct fuse_ll *ll, struct fuse_ll_reply *reply);

/* Buffer sizes the transport must provide. */
size_t fuse_ll_request_size(const struct fuse_ll *ll); /* largest request accepted */
size_t fuse_ll_scratch_size(const struct fuse_ll *ll); /* largest reply payload: a whole READ */

/* After INIT: whether FUSE passthrough is in use, and the largest READ
 * reply (bytes of file data) the engine will describe. */
bool fuse_ll_passthrough(const struct fuse_ll *ll);
/* After INIT: 0 if passthrough is in use, else why not: -ENOPROTOOPT if it
 * was not negotiated (not configured, the transport cannot register files,
 * or the kernel did not offer it), or the error of the trial registration
 * (backing->probe). */
int fuse_ll_passthrough_error(const struct fuse_ll *ll);
uint32_t fuse_ll_max_read(const struct fuse_ll *ll);
/* After INIT: whether FUSE over io_uring was negotiated (offered by the
 * kernel, caps.io_uring_ready said yes): the transport must now register its ring
 * entries (the kernel holds new requests back until it has them all). */
bool fuse_ll_io_uring(const struct fuse_ll *ll);
