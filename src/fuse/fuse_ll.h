/* The FUSE protocol engine: takes one request message (as read from
 * /dev/fuse, or gathered from a virtqueue descriptor chain), validates it,
 * dispatches it to the filesystem logic (src/fs) and describes the reply.
 * It never touches /dev/fuse or guest memory itself, so the /dev/fuse and
 * vhost-user transports share it unchanged.
 *
 * Threading: fuse_ll_handle() may be called from many threads at once for
 * one struct fuse_ll once INIT has been handled; INIT itself is handled
 * before workers start (the transports serialise it). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuse/fuse_kernel.h"

struct fs;

/* What the transport can do; the engine only offers the kernel what both
 * the kernel and the transport support. */
struct fuse_ll_transport {
        const char *name;    /* "fuse", "virtiofs" (logs) */
        bool can_splice;     /* data replies may be spliced from a file */
        bool is_virtio;      /* virtiofs: no splice/passthrough, DAX never */
        /* FUSE passthrough: register fd with the kernel, giving a backing
         * id (FUSE_DEV_IOC_BACKING_OPEN) or -errno; NULL if unsupported. */
        int (*backing_open)(void *ctx, int fd);
        int (*backing_close)(void *ctx, int backing_id);
        void *ctx;
        /* The transport calls fuse_ll_reply_done() after sending each reply,
         * so READ data descriptors stay open until it has read from them.
         * Without it the engine lets go of them when fuse_ll_handle()
         * returns, and a descriptor is then only kept open by the file
         * handle the READ names (a zero-message open has none). */
        bool calls_reply_done;
};

struct fuse_ll_config {
        unsigned max_pages;     /* cap on pages per read (default 256 = 1 MiB) */
        bool passthrough;       /* may use passthrough if offered (--passthrough) */
        bool debug;             /* log every request */
};

struct fuse_ll;

int fuse_ll_new(struct fs *fs, const struct fuse_ll_transport *t, const struct fuse_ll_config *cfg,
                struct fuse_ll **ret);
void fuse_ll_free(struct fuse_ll *ll);

/* A reply: header plus payload bytes in memory, optionally followed by
 * data_len bytes read from data_fd at data_off (file data for READ, which
 * the transport may splice or pread straight into its destination).
 * hdr.len counts all of it.  If the transport gets fewer data bytes than
 * data_len, it must send an -EIO error reply for hdr.unique instead. */
struct fuse_ll_reply {
        bool none;                  /* no reply is due (FORGET, BATCH_FORGET) */
        struct fuse_out_header hdr;
        const void *payload;        /* in scratch, or static */
        size_t payload_len;
        int data_fd;                /* -1 if no file data */
        uint64_t data_off;
        size_t data_len;
        void *data_hold;            /* engine private: keeps data_fd open */
};

/* Handles one request of len bytes at req (private memory the engine reads
 * but does not keep).  scratch is a per-thread buffer of at least
 * fuse_ll_scratch_size() bytes for the reply payload.  Always fills *reply.
 * Returns 0; -EPROTO if the message was malformed (an error reply is
 * still described when its header could be read, else reply->none);
 * -ESHUTDOWN after DESTROY. */
int fuse_ll_handle(struct fuse_ll *ll, const void *req, size_t len, void *scratch, size_t scratch_len,
                   struct fuse_ll_reply *reply);

/* The transport is done with a reply (sent, or dropped): its data_fd may
 * be closed from now on.  Required after every fuse_ll_handle() when the
 * transport set calls_reply_done (before the reply struct is reused); a
 * no-op otherwise and on a second call.  Thread-safe. */
void fuse_ll_reply_done(struct fuse_ll *ll, struct fuse_ll_reply *reply);

/* Buffer sizes the transport must provide. */
size_t fuse_ll_request_size(const struct fuse_ll *ll); /* largest request accepted */
size_t fuse_ll_scratch_size(const struct fuse_ll *ll); /* largest in-memory reply payload */

/* After INIT: whether FUSE passthrough was negotiated, and the largest
 * READ reply (bytes of file data) the engine will describe. */
bool fuse_ll_passthrough(const struct fuse_ll *ll);
uint32_t fuse_ll_max_read(const struct fuse_ll *ll);
