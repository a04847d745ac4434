/* A pull-style NAR stream (nar_stream.h): a thread runs nar_render into
 * one end of a socket pair, the reader reads the other end.  The socket
 * buffer bounds memory; a reader that goes away makes the render's next
 * write fail, which ends the thread. */
#include "store/nar_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/nar.h"
#include "util/io.h"
#include "util/log.h"

#define NAR_STREAM_BUFFER (4 << 20)

struct nar_stream {
        struct cas_blob_service *blobs;
        struct cas_dir_service *dirs;
        struct cas_node root;
        void *root_mem;
        uint64_t skip;    /* bytes still to drop; render thread only */
        uint64_t left;    /* bytes still to send; render thread only */
        uint64_t length;  /* as asked */
        uint64_t got;     /* bytes read; reader only */
        int fd;           /* the reader's end */
        int wfd;          /* the render thread's end, closed by it */
        pthread_t thread;
        bool has_thread;
        int r;            /* the render's result: written by the thread before it closes wfd */
};

static int send_all(int fd, const uint8_t *p, size_t len) {
        while (len > 0) {
                /* MSG_NOSIGNAL: a reader gone is EPIPE, not SIGPIPE */
                ssize_t k = send(fd, p, len, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                p += k;
                len -= (size_t) k;
        }
        return 0;
}

/* The window: drop up to skip, send up to left, then stop the render. */
static int window_write(void *userdata, const void *buf, size_t len) {
        struct nar_stream *st = userdata;
        const uint8_t *p = buf;
        size_t n;
        int r;

        if (st->skip > 0) {
                n = st->skip < len ? (size_t) st->skip : len;
                st->skip -= n;
                p += n;
                len -= n;
        }
        n = st->left < len ? (size_t) st->left : len;
        if (n > 0) {
                r = send_all(st->wfd, p, n);
                if (r < 0)
                        return r;
                st->left -= n;
        }
        return st->left == 0 && st->skip == 0 ? -ECANCELED : 0; /* the window is full: done */
}

static void *render_thread(void *userdata) {
        struct nar_stream *st = userdata;
        int r;

        r = nar_render(st->blobs, st->dirs, &st->root, NAR_RENDER_NO_SHA256, window_write, st, NULL, NULL);
        if (r == -ECANCELED && st->left == 0)
                r = 0;
        st->r = r;
        /* the reader sees the end only after r is set */
        close(st->wfd);
        st->wfd = -1;
        return NULL;
}

int nar_stream_open(struct cas_blob_service *blobs, struct cas_dir_service *dirs, const struct cas_node *root,
                    uint64_t offset, uint64_t length, struct nar_stream **ret) {
        struct nar_stream *st;
        int sv[2], k, r;

        if (!blobs || !dirs || !root || !ret)
                return -EINVAL;
        st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        *st = (struct nar_stream){ .blobs = blobs, .dirs = dirs, .skip = offset, .left = length,
                                   .length = length, .fd = -1, .wfd = -1 };
        r = cas_node_copy(root, &st->root, &st->root_mem);
        if (r < 0) {
                free(st);
                return r;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                r = negative_errno();
                nar_stream_free(st);
                return r;
        }
        st->fd = sv[0];
        st->wfd = sv[1];
        /* room for the render to run ahead of the reader: fewer switches
         * between the two threads (the kernel caps it at wmem_max) */
        (void) setsockopt(st->wfd, SOL_SOCKET, SO_SNDBUF, &(int){ NAR_STREAM_BUFFER }, sizeof(int));
        k = pthread_create(&st->thread, NULL, render_thread, st);
        if (k != 0) {
                nar_stream_free(st);
                return -k;
        }
        st->has_thread = true;
        *ret = st;
        return 0;
}

ssize_t nar_stream_read(struct nar_stream *st, void *buf, size_t len) {
        ssize_t n;

        if (st->got == st->length)
                return 0;
        do
                n = read(st->fd, buf, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if (n > 0) {
                st->got += (uint64_t) n;
                return n;
        }
        /* the render thread closed its end: r is set */
        pthread_join(st->thread, NULL);
        st->has_thread = false;
        return st->r < 0 ? st->r : -EIO;
}

void nar_stream_free(struct nar_stream *st) {
        if (!st)
                return;
        /* first our end: a render still writing fails and ends */
        if (st->fd >= 0)
                close(st->fd);
        if (st->has_thread)
                pthread_join(st->thread, NULL);
        else if (st->wfd >= 0)
                close(st->wfd);
        free(st->root_mem);
        free(st);
}
