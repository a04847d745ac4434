/* vhost-user-fs glue: the listening socket and connection loop, one
 * worker thread per started virtqueue, and the path of one FUSE request
 * from a descriptor chain through the engine back into guest memory
 * (file data pread straight into the guest's buffers). */
#include "transport/virtiofs.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs/fs.h"
#include "transport/vhost_user.h"
#include "transport/virtqueue.h"
#include "util/log.h"
#include "util/macro.h"

#define VFS_MAX_REQUEST_QUEUES (VU_MAX_QUEUES - 1)
#define VFS_PREAD_IOV 64

struct vfs_conn;

/* One ring's worker.  Created by ring_start, joined by ring_stop, both on
 * the vhost-user thread. */
struct vfs_worker {
        struct vfs_conn *conn;
        unsigned q;
        pthread_t thread;
        int wake_fd;           /* eventfd: ring_stop wakes the worker */
        atomic_bool stopping;  /* set by ring_stop, polled by the worker */
        uint8_t *req;          /* private copy of the request: worker only */
        size_t req_size;
        uint8_t *scratch;      /* engine reply payloads: worker only */
        size_t scratch_size;
        struct vq_elem *elem;  /* worker only */
};

/* One VMM connection.  Lock order: session_lock, then a vring's call_lock. */
struct vfs_conn {
        struct vu_dev dev;
        struct fs *fs;
        const struct virtiofs_config *cfg;
        struct fuse_ll_transport transport;
        /* INIT replaces the engine session under the write lock (a guest
         * that reboots or remounts starts a new session on the same
         * device); every other request runs under the read lock. */
        pthread_rwlock_t session_lock;
        struct fuse_ll *ll;    /* session_lock */
        bool ll_initialized;   /* ll has handled an INIT; session_lock */
        struct vfs_worker workers[VU_MAX_QUEUES];
};

/* ---- replies into guest memory ---- */

static uint32_t put_error(const struct vq_elem *e, uint64_t unique, int error) {
        struct fuse_out_header oh = { .len = sizeof(oh), .error = error, .unique = unique };
        struct vq_writer w;

        vq_writer_init(&w, e);
        if (vq_writer_put(&w, &oh, sizeof(oh)) < 0)
                return 0;
        return sizeof(oh);
}

/* Writes the engine's reply into the chain's writable buffers; returns
 * the used length. */
static uint32_t put_reply(const struct vq_elem *e, const struct fuse_ll_reply *reply) {
        struct fuse_out_header oh = reply->hdr;
        struct vq_writer w;
        uint64_t total = sizeof(oh) + (uint64_t) reply->payload_len + (reply->data_fd >= 0 ? reply->data_len : 0);

        if (total > UINT32_MAX)
                return put_error(e, oh.unique, -EIO);
        oh.len = (uint32_t) total;
        vq_writer_init(&w, e);
        if (vq_writer_space(&w) < total) {
                /* the guest's buffers are smaller than the answer */
                log_debug("virtiofs: reply of %" PRIu64 " bytes does not fit %" PRIu64 " bytes of buffers", total,
                          vq_writer_space(&w));
                return put_error(e, oh.unique, -EIO);
        }
        (void) vq_writer_put(&w, &oh, sizeof(oh));
        if (reply->payload_len > 0)
                (void) vq_writer_put(&w, reply->payload, reply->payload_len);

        if (reply->data_fd >= 0 && reply->data_len > 0) {
                size_t left = reply->data_len;
                uint64_t off = reply->data_off;
                while (left > 0) {
                        struct iovec iov[VFS_PREAD_IOV];
                        size_t cover;
                        unsigned n = vq_writer_iov(&w, left, iov, VFS_PREAD_IOV, &cover);
                        ssize_t k = preadv(reply->data_fd, iov, (int) n, (off_t) off);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) {
                                /* fewer bytes than promised: the contract says EIO */
                                log_debug("virtiofs: short read of file data (%zu bytes missing)", left);
                                return put_error(e, oh.unique, -EIO);
                        }
                        vq_writer_skip(&w, (size_t) k);
                        left -= (size_t) k;
                        off += (uint64_t) k;
                }
        }
        return oh.len;
}

/* Starts a fresh engine session (the old one's kernel is gone). */
static int new_session(struct vfs_conn *c) {
        struct fuse_ll *ll;
        int r = fuse_ll_new(c->fs, &c->transport, &c->cfg->ll, &ll);
        if (r < 0)
                return r;
        if (c->ll)
                fuse_ll_free(c->ll);
        fs_forget_all(c->fs);
        c->ll = ll;
        c->ll_initialized = false;
        return 0;
}

static int ensure_buffers(struct vfs_worker *w) {
        struct fuse_ll *ll = w->conn->ll;
        size_t rs = fuse_ll_request_size(ll), ss = fuse_ll_scratch_size(ll);

        if (rs > w->req_size) {
                uint8_t *p = realloc(w->req, rs);
                if (!p)
                        return -ENOMEM;
                w->req = p;
                w->req_size = rs;
        }
        if (ss > w->scratch_size) {
                uint8_t *p = realloc(w->scratch, ss);
                if (!p)
                        return -ENOMEM;
                w->scratch = p;
                w->scratch_size = ss;
        }
        return 0;
}

/* One FUSE request: returns the used length for the chain. */
static uint32_t handle_request(struct vfs_worker *w, const struct vq_elem *e) {
        struct vfs_conn *c = w->conn;
        struct fuse_in_header ih;
        struct fuse_ll_reply reply;
        uint32_t len;
        int r;

        if (e->out_len < sizeof(ih)) {
                log_debug("virtiofs: ring %u: request of %" PRIu64 " bytes has no header", w->q, e->out_len);
                return 0;
        }
        /* the header is copied out of guest memory once; everything below
         * works on private copies */
        if (vq_elem_read(e, &ih, sizeof(ih)) < 0)
                return 0; /* guest memory vanished: the ring is of no use anymore */
        bool is_init = ih.opcode == FUSE_INIT;

        if (is_init) {
                pthread_rwlock_wrlock(&c->session_lock);
                if (c->ll_initialized && new_session(c) < 0) {
                        pthread_rwlock_unlock(&c->session_lock);
                        return put_error(e, ih.unique, -ENOMEM);
                }
        } else
                pthread_rwlock_rdlock(&c->session_lock);

        r = ensure_buffers(w);
        if (r < 0) {
                len = put_error(e, ih.unique, r);
                goto out;
        }
        /* longer than any valid request: the engine sees the truncated
         * copy and refuses it through the header's length */
        ssize_t n = vq_elem_read(e, w->req, MIN(e->out_len, (uint64_t) w->req_size));
        if (n < 0) {
                len = 0;
                goto out;
        }
        r = fuse_ll_handle(c->ll, w->req, (size_t) n, w->scratch, w->scratch_size, &reply);
        if (r < 0 && r != -ESHUTDOWN)
                log_debug("virtiofs: ring %u: malformed request (opcode %u): %s", w->q, ih.opcode, strerror(-r));
        if (is_init && !reply.none && reply.hdr.error == 0)
                c->ll_initialized = true;
        len = reply.none ? 0 : put_reply(e, &reply);
out:
        pthread_rwlock_unlock(&c->session_lock);
        return len;
}

/* Serves the ring until it is empty.  -EIO if the guest broke it. */
static int drain(struct vfs_worker *w, struct vq *vq) {
        struct vu_dev *dev = &w->conn->dev;

        while (!atomic_load_explicit(&w->stopping, memory_order_relaxed)) {
                int r = vq_pop(vq, w->elem);
                if (r == 0) {
                        if (vq_enable_kick(vq))
                                continue;
                        return vq_is_broken(vq) ? -EIO : 0;
                }
                if (r == -EIO || r == -EFAULT)
                        return -EIO;
                uint32_t len = 0;
                if (r > 0)
                        len = handle_request(w, w->elem);
                else
                        log_debug("virtiofs: ring %u: malformed descriptor chain %u", w->q, w->elem->head);
                vq_push(vq, w->elem->head, len);
                if (vq_should_notify(vq))
                        vu_dev_notify(dev, w->q);
                if (vq_is_broken(vq))
                        return -EIO;
        }
        return 0;
}

static void *worker_main(void *p) {
        struct vfs_worker *w = p;
        struct vu_dev *dev = &w->conn->dev;
        struct vq *vq = vu_dev_vq(dev, w->q);
        int kick = dev->vring[w->q].kick_fd;
        bool serving = true;

        for (;;) {
                if (serving && drain(w, vq) < 0) {
                        vu_dev_ring_broken(dev, w->q);
                        serving = false;
                }
                struct pollfd pfd[2] = { { .fd = w->wake_fd, .events = POLLIN },
                                         { .fd = serving ? kick : -1, .events = POLLIN } };
                if (atomic_load(&w->stopping))
                        break;
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("virtiofs: ring %u: poll: %m", w->q);
                        break;
                }
                if (pfd[0].revents)
                        break;
                if (pfd[1].revents & POLLIN) {
                        uint64_t v;
                        (void) read(kick, &v, sizeof(v));
                }
                if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL))
                        serving = false; /* wait for the stop */
        }
        return NULL;
}

static int ring_start(void *userdata, struct vu_dev *dev, unsigned q) {
        struct vfs_conn *c = userdata;
        struct vfs_worker *w = &c->workers[q];
        int r;

        w->conn = c;
        w->q = q;
        atomic_store(&w->stopping, false);
        if (!w->elem) {
                w->elem = malloc(sizeof(*w->elem));
                if (!w->elem)
                        return -ENOMEM;
        }
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->wake_fd < 0)
                return negative_errno();
        r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
                close(w->wake_fd);
                w->wake_fd = -1;
                return -r;
        }
        return 0;
}

static void ring_stop(void *userdata, struct vu_dev *dev, unsigned q) {
        struct vfs_conn *c = userdata;
        struct vfs_worker *w = &c->workers[q];
        uint64_t one = 1;

        atomic_store(&w->stopping, true);
        (void) write(w->wake_fd, &one, sizeof(one));
        pthread_join(w->thread, NULL);
        close(w->wake_fd);
        w->wake_fd = -1;
}

static const struct vu_dev_ops ring_ops = {
        .start = ring_start,
        .stop = ring_stop,
};

static void conn_free(struct vfs_conn *c) {
        if (!c)
                return;
        vu_dev_done(&c->dev); /* joins every worker */
        for (unsigned q = 0; q < VU_MAX_QUEUES; q++) {
                free(c->workers[q].req);
                free(c->workers[q].scratch);
                free(c->workers[q].elem);
        }
        if (c->ll)
                fuse_ll_free(c->ll);
        pthread_rwlock_destroy(&c->session_lock);
        free(c);
}

/* Serves one connection.  Returns 1 if a stop was requested, 0 when the
 * VMM went away or broke the protocol. */
static int serve_conn(struct fs *fs, const struct virtiofs_config *cfg, int sock) {
        struct vfs_conn *c = calloc(1, sizeof(*c));
        int r, stop = 0;

        if (!c)
                return log_error_errno(-ENOMEM, "virtiofs: out of memory");
        c->fs = fs;
        c->cfg = cfg;
        c->transport = (struct fuse_ll_transport){ .name = "virtiofs", .can_splice = false, .is_virtio = true };
        pthread_rwlock_init(&c->session_lock, NULL);
        r = vu_dev_init(&c->dev, 1 + cfg->request_queues, &ring_ops, c);
        if (r >= 0)
                r = new_session(c);
        if (r < 0) {
                log_error_errno(r, "virtiofs: cannot set up the device: %m");
                conn_free(c);
                return 0;
        }
        /* a VMM that stops halfway through a message must not hang us */
        struct timeval tv = { .tv_sec = 10 };
        (void) setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

        for (;;) {
                struct pollfd pfd[2] = { { .fd = sock, .events = POLLIN }, { .fd = cfg->stop_fd, .events = POLLIN } };
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("virtiofs: poll: %m");
                        break;
                }
                if (pfd[1].revents) {
                        stop = 1;
                        break;
                }
                if (!pfd[0].revents)
                        continue;
                r = vu_dev_process(&c->dev, sock);
                if (r == -ECONNRESET) {
                        log_info("virtiofs: front-end disconnected");
                        break;
                }
                if (r < 0) {
                        log_warning_errno(r, "virtiofs: closing the connection: %m");
                        break;
                }
        }
        conn_free(c);
        return stop;
}

static int listen_on(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "virtiofs: socket path too long: %s", path);
        strcpy(sa.sun_path, path);
        /* replace a stale socket, never any other kind of file */
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(-EEXIST, "virtiofs: %s exists and is not a socket", path);
                (void) unlink(path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(negative_errno(), "virtiofs: socket: %m");
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                int r = negative_errno();
                close(fd);
                return log_error_errno(r, "virtiofs: cannot listen on %s: %m", path);
        }
        return fd;
}

int virtiofs_serve(struct fs *fs, const struct virtiofs_config *cfg) {
        int lfd, r = 0;

        if (!fs || !cfg || !cfg->socket_path || cfg->request_queues < 1 ||
            cfg->request_queues > VFS_MAX_REQUEST_QUEUES)
                return -EINVAL;
        lfd = listen_on(cfg->socket_path);
        if (lfd < 0)
                return lfd;
        log_info("virtiofs: listening on %s (%u request queue%s)", cfg->socket_path, cfg->request_queues,
                 cfg->request_queues == 1 ? "" : "s");

        for (;;) {
                struct pollfd pfd[2] = { { .fd = lfd, .events = POLLIN }, { .fd = cfg->stop_fd, .events = POLLIN } };
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = log_error_errno(negative_errno(), "virtiofs: poll: %m");
                        break;
                }
                if (pfd[1].revents)
                        break;
                if (!pfd[0].revents)
                        continue;
                int sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (sock < 0) {
                        if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                                continue;
                        r = log_error_errno(negative_errno(), "virtiofs: accept: %m");
                        break;
                }
                log_info("virtiofs: front-end connected");
                int stop = serve_conn(fs, cfg, sock);
                close(sock);
                if (stop || cfg->once)
                        break;
        }
        close(lfd);
        (void) unlink(cfg->socket_path);
        return r;
}
