/* vhost-user-fs glue: the listening socket and connection loop, a poller
 * thread per started virtqueue handing chains to a pool of handler
 * threads, and the path of one FUSE request from a descriptor chain through
 * the engine back into guest memory (file data copied from the reply,
 * which the engine verified). */
#include "transport/virtiofs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport/vhost_user.h"
#include "transport/virtqueue.h"
#include "util/log.h"
#include "util/macro.h"

#define VFS_MAX_REQUEST_QUEUES (VU_MAX_QUEUES - 1)
#define VFS_MAX_THREADS 64

struct vfs_conn;
struct vfs_ring;

/* A popped chain on its way through a handler.  Jobs live in the
 * connection's slot array; a free one belongs to the free list, a queued
 * one to the queue (both under pool_lock), a taken one to the thread that
 * took it. */
struct vfs_job {
        struct vfs_ring *ring;
        struct vfs_job *next; /* pool_lock */
        struct vq_elem elem;
};

/* One running ring's poller: waits on the kick eventfd, pops chains and
 * queues them for the handlers.  Created by ring_start, joined by
 * ring_stop, both on the vhost-user thread.  The poller owns the ring's
 * available side (vq_pop, vq_enable_kick); the used side (vq_push,
 * vq_should_notify) is shared by the handlers under used_lock. */
struct vfs_ring {
        struct vfs_conn *conn;
        unsigned q;
        pthread_t thread;
        int wake_fd;                /* eventfd: ring_stop wakes the poller */
        atomic_bool stopping;       /* set by ring_stop */
        pthread_mutex_t used_lock;  /* the vq's used side */
        unsigned inflight;          /* jobs popped and not yet pushed; pool_lock */
};

/* A thread running requests from any ring.  Its buffers are its own. */
struct vfs_handler {
        struct vfs_conn *conn;
        pthread_t thread;
        bool created;
        uint8_t *req;          /* the private copy of a request */
        size_t req_size;
        uint8_t *scratch;      /* engine reply payloads */
        size_t scratch_size;
};

/* One VMM connection.  No two of its locks are held at once: a handler
 * releases session_lock before it takes the ring's used_lock to push, and
 * signals the guest (a vring's call_lock) after releasing that. */
struct vfs_conn {
        struct vu_dev dev;
        const struct virtiofs_config *cfg;
        /* The engine, for the connection's life.  It resets the session on
         * every INIT (a guest that reboots or remounts starts a new one on
         * the same device) and needs INIT to run alone: INIT runs under the
         * write lock of session_lock, every other request under the read
         * lock. */
        struct fuse_ll *ll;
        pthread_rwlock_t session_lock;

        pthread_mutex_t pool_lock;
        pthread_cond_t job_cond;   /* a job was queued, or shutdown */
        pthread_cond_t slot_cond;  /* a job slot was freed / a ring's inflight dropped */
        struct vfs_job *free_jobs; /* pool_lock */
        struct vfs_job *queue_head, *queue_tail; /* pool_lock */
        bool shutdown;             /* pool_lock */
        struct vfs_job *jobs;      /* njobs slots */
        unsigned njobs;
        struct vfs_handler *handlers;
        unsigned nhandlers;
        struct vfs_ring rings[VU_MAX_QUEUES];
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
 * the used length (the bytes written from the start of them). */
static uint32_t put_reply(const struct vq_elem *e, const struct fuse_ll_reply *reply) {
        struct fuse_out_header oh = reply->hdr;
        struct vq_writer w;
        uint64_t total = sizeof(oh) + (uint64_t) reply->payload_len;

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
        if (vq_writer_put(&w, &oh, sizeof(oh)) < 0 ||
            (reply->payload_len > 0 && vq_writer_put(&w, reply->payload, reply->payload_len) < 0))
                return 0; /* guest memory vanished */
        return oh.len;
}

static int ensure_scratch(struct vfs_handler *h, struct fuse_ll *ll) {
        size_t ss = fuse_ll_scratch_size(ll);

        if (ss > h->scratch_size) {
                uint8_t *p = realloc(h->scratch, ss);
                if (!p)
                        return -ENOMEM;
                h->scratch = p;
                h->scratch_size = ss;
        }
        return 0;
}

/* One FUSE request: returns the used length for the chain. */
static uint32_t handle_request(struct vfs_handler *h, const struct vfs_ring *ring, const struct vq_elem *e) {
        struct vfs_conn *c = h->conn;
        struct fuse_in_header ih;
        struct fuse_ll_reply reply;
        uint32_t len;
        ssize_t n;
        int r;

        if (e->out_len < sizeof(ih)) {
                log_debug("virtiofs: ring %u: request of %" PRIu64 " bytes has no header", ring->q, e->out_len);
                return 0;
        }
        /* The request is copied out of guest memory once; the header that
         * picks the lock below and the bytes the engine sees are the same.
         * Longer than any valid request: the engine sees the truncated
         * copy and refuses it through the header's length. */
        n = vq_elem_read(e, h->req, MIN(e->out_len, (uint64_t) h->req_size));
        if (n < (ssize_t) sizeof(ih))
                return 0; /* guest memory vanished: the ring is of no use anymore */
        memcpy(&ih, h->req, sizeof(ih));
        bool is_init = ih.opcode == FUSE_INIT;

        if (is_init)
                pthread_rwlock_wrlock(&c->session_lock);
        else
                pthread_rwlock_rdlock(&c->session_lock);

        r = ensure_scratch(h, c->ll);
        if (r < 0) {
                len = put_error(e, ih.unique, r);
                goto out;
        }
        r = fuse_ll_handle(c->ll, h->req, (size_t) n, h->scratch, h->scratch_size, &reply);
        if (r < 0 && r != -ESHUTDOWN)
                log_debug("virtiofs: ring %u: malformed request (opcode %u): %s", ring->q, ih.opcode, strerror(-r));
        len = reply.none ? 0 : put_reply(e, &reply);
        /* an INIT's session completes here, still under the lock */
        fuse_ll_reply_done(c->ll, &reply);
out:
        pthread_rwlock_unlock(&c->session_lock);
        return len;
}

/* Returns a chain to the guest and signals it if it asked for that. */
static void complete(struct vfs_ring *ring, uint16_t head, uint32_t len) {
        struct vu_dev *dev = &ring->conn->dev;
        struct vq *vq = vu_dev_vq(dev, ring->q);
        bool notify, broken;

        pthread_mutex_lock(&ring->used_lock);
        vq_push(vq, head, len);
        notify = vq_should_notify(vq);
        broken = vq_is_broken(vq);
        pthread_mutex_unlock(&ring->used_lock);
        if (notify)
                vu_dev_notify(dev, ring->q);
        if (broken)
                vu_dev_ring_broken(dev, ring->q);
}

static void *handler_main(void *p) {
        struct vfs_handler *h = p;
        struct vfs_conn *c = h->conn;

        for (;;) {
                pthread_mutex_lock(&c->pool_lock);
                while (!c->queue_head && !c->shutdown)
                        pthread_cond_wait(&c->job_cond, &c->pool_lock);
                struct vfs_job *job = c->queue_head;
                if (!job) { /* shutdown, and nothing left to do */
                        pthread_mutex_unlock(&c->pool_lock);
                        break;
                }
                c->queue_head = job->next;
                if (!c->queue_head)
                        c->queue_tail = NULL;
                pthread_mutex_unlock(&c->pool_lock);

                struct vfs_ring *ring = job->ring;
                uint32_t len = handle_request(h, ring, &job->elem);
                complete(ring, job->elem.head, len);

                pthread_mutex_lock(&c->pool_lock);
                job->next = c->free_jobs;
                c->free_jobs = job;
                assert(ring->inflight > 0);
                ring->inflight--;
                pthread_cond_broadcast(&c->slot_cond);
                pthread_mutex_unlock(&c->pool_lock);
        }
        return NULL;
}

/* A free job slot for the ring's poller; NULL once the ring is stopping. */
static struct vfs_job *take_slot(struct vfs_ring *ring) {
        struct vfs_conn *c = ring->conn;
        struct vfs_job *job = NULL;

        pthread_mutex_lock(&c->pool_lock);
        while (!c->free_jobs && !atomic_load(&ring->stopping))
                pthread_cond_wait(&c->slot_cond, &c->pool_lock);
        if (!atomic_load(&ring->stopping)) {
                job = c->free_jobs;
                c->free_jobs = job->next;
        }
        pthread_mutex_unlock(&c->pool_lock);
        return job;
}

static void release_slot(struct vfs_conn *c, struct vfs_job *job) {
        pthread_mutex_lock(&c->pool_lock);
        job->next = c->free_jobs;
        c->free_jobs = job;
        pthread_cond_broadcast(&c->slot_cond);
        pthread_mutex_unlock(&c->pool_lock);
}

static void queue_job(struct vfs_conn *c, struct vfs_job *job) {
        pthread_mutex_lock(&c->pool_lock);
        job->next = NULL;
        if (c->queue_tail)
                c->queue_tail->next = job;
        else
                c->queue_head = job;
        c->queue_tail = job;
        job->ring->inflight++;
        pthread_cond_signal(&c->job_cond);
        pthread_mutex_unlock(&c->pool_lock);
}

/* Hands the ring's chains to the handlers until it is empty.  -EIO if the
 * guest broke it. */
static int drain(struct vfs_ring *ring, struct vq *vq) {
        struct vfs_conn *c = ring->conn;

        for (;;) {
                struct vfs_job *job = take_slot(ring);
                if (!job)
                        return 0; /* stopping */
                int r = vq_pop(vq, &job->elem);
                if (r > 0) {
                        job->ring = ring;
                        queue_job(c, job);
                        continue;
                }
                uint16_t head = job->elem.head;
                release_slot(c, job);
                if (r == 0) {
                        if (vq_enable_kick(vq))
                                continue;
                        return vq_is_broken(vq) ? -EIO : 0;
                }
                if (r != -EPROTO)
                        return -EIO; /* -EIO, -EFAULT: the ring is broken */
                log_debug("virtiofs: ring %u: malformed descriptor chain %u", ring->q, head);
                complete(ring, head, 0);
        }
}

static void *ring_main(void *p) {
        struct vfs_ring *ring = p;
        struct vu_dev *dev = &ring->conn->dev;
        struct vq *vq = vu_dev_vq(dev, ring->q);
        int kick = dev->vring[ring->q].kick_fd;
        bool serving = true;

        for (;;) {
                if (serving && drain(ring, vq) < 0) {
                        vu_dev_ring_broken(dev, ring->q);
                        serving = false;
                }
                struct pollfd pfd[2] = { { .fd = ring->wake_fd, .events = POLLIN },
                                         { .fd = serving ? kick : -1, .events = POLLIN } };
                if (atomic_load(&ring->stopping))
                        break;
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("virtiofs: ring %u: poll: %m", ring->q);
                        break;
                }
                if (pfd[0].revents)
                        break;
                if (pfd[1].revents & POLLIN) {
                        uint64_t v;
                        /* non-blocking (vhost_user.c): EAGAIN if someone
                         * else took the kick; end of file if it is not an
                         * eventfd at all (it would be readable forever) */
                        if (read(kick, &v, sizeof(v)) == 0) {
                                log_warning("virtiofs: ring %u: kick fd is not an eventfd; not serving the ring",
                                            ring->q);
                                serving = false;
                        }
                }
                if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL))
                        serving = false; /* wait for the stop */
        }
        return NULL;
}

static int ring_start(void *userdata, struct vu_dev *dev, unsigned q) {
        struct vfs_conn *c = userdata;
        struct vfs_ring *ring = &c->rings[q];
        int r;

        ring->conn = c;
        ring->q = q;
        atomic_store(&ring->stopping, false);
        ring->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (ring->wake_fd < 0)
                return negative_errno();
        r = pthread_create(&ring->thread, NULL, ring_main, ring);
        if (r != 0) {
                close(ring->wake_fd);
                ring->wake_fd = -1;
                return -r;
        }
        return 0;
}

static void ring_stop(void *userdata, struct vu_dev *dev, unsigned q) {
        struct vfs_conn *c = userdata;
        struct vfs_ring *ring = &c->rings[q];
        uint64_t one = 1;

        pthread_mutex_lock(&c->pool_lock);
        atomic_store(&ring->stopping, true);
        pthread_cond_broadcast(&c->slot_cond); /* a poller waiting for a slot */
        pthread_mutex_unlock(&c->pool_lock);
        if (write(ring->wake_fd, &one, sizeof(one)) < 0)
                log_error_errno(-errno, "Cannot wake the queue thread: %m"); /* an eventfd far from overflow: never */
        pthread_join(ring->thread, NULL);
        close(ring->wake_fd);
        ring->wake_fd = -1;
        /* chains taken from the ring are answered before it counts as
         * stopped: GET_VRING_BASE reports them as done, and guest memory
         * may be unmapped right after */
        pthread_mutex_lock(&c->pool_lock);
        while (ring->inflight > 0)
                pthread_cond_wait(&c->slot_cond, &c->pool_lock);
        pthread_mutex_unlock(&c->pool_lock);
}

static const struct vu_dev_ops ring_ops = {
        .start = ring_start,
        .stop = ring_stop,
};

static unsigned default_threads(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n < 1 ? 1 : n > 8 ? 8 : (unsigned) n;
}

/* The handler threads and their job slots. */
static int pool_start(struct vfs_conn *c) {
        unsigned n = c->cfg->threads ? c->cfg->threads : default_threads();
        int r;

        c->handlers = calloc(n, sizeof(*c->handlers));
        /* two slots a handler: the pollers can queue the next chain while
         * every handler is busy */
        c->jobs = calloc(2 * n, sizeof(*c->jobs));
        if (!c->handlers || !c->jobs)
                return -ENOMEM;
        c->nhandlers = n;
        c->njobs = 2 * n;
        for (unsigned i = 0; i < c->njobs; i++) {
                c->jobs[i].next = c->free_jobs;
                c->free_jobs = &c->jobs[i];
        }
        for (unsigned i = 0; i < n; i++) {
                struct vfs_handler *h = &c->handlers[i];
                h->conn = c;
                h->req_size = fuse_ll_request_size(c->ll);
                h->req = malloc(h->req_size);
                if (!h->req)
                        return -ENOMEM;
                r = pthread_create(&h->thread, NULL, handler_main, h);
                if (r != 0)
                        return -r;
                h->created = true;
        }
        return 0;
}

static void pool_stop(struct vfs_conn *c) {
        pthread_mutex_lock(&c->pool_lock);
        c->shutdown = true;
        pthread_cond_broadcast(&c->job_cond);
        pthread_mutex_unlock(&c->pool_lock);
        for (unsigned i = 0; i < c->nhandlers; i++) {
                if (c->handlers[i].created)
                        pthread_join(c->handlers[i].thread, NULL);
                free(c->handlers[i].req);
                free(c->handlers[i].scratch);
        }
        free(c->handlers);
        free(c->jobs);
        c->handlers = NULL;
        c->jobs = NULL;
        c->nhandlers = 0;
}

static void conn_free(struct vfs_conn *c) {
        if (!c)
                return;
        vu_dev_done(&c->dev); /* stops every ring: pollers joined, chains answered */
        pool_stop(c);
        for (unsigned q = 0; q < VU_MAX_QUEUES; q++)
                pthread_mutex_destroy(&c->rings[q].used_lock);
        if (c->ll)
                fuse_ll_free(c->ll);
        pthread_cond_destroy(&c->job_cond);
        pthread_cond_destroy(&c->slot_cond);
        pthread_mutex_destroy(&c->pool_lock);
        pthread_rwlock_destroy(&c->session_lock);
        free(c);
}

/* A front-end connecting while another is served gets hung up on at once
 * (rather than waiting in the backlog, its handshake stuck) and a log. */
static void refuse_second(int lfd) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return;
        log_warning("virtiofs: another front-end connected while one is served; closing it");
        close(fd);
}

/* Serves one connection.  Returns 1 if a stop was requested, 0 when the
 * VMM went away or broke the protocol. */
static int serve_conn(struct fs *fs, const struct virtiofs_config *cfg, int lfd, int sock) {
        /* No descriptors for the kernel (file data is copied into guest
         * memory from the reply); the guest mounts as it likes. */
        static const struct fuse_ll_caps caps = { .name = "virtiofs", .calls_reply_done = true };
        struct vfs_conn *c = calloc(1, sizeof(*c));
        int r, stop = 0;

        if (!c)
                return log_error_errno(-ENOMEM, "virtiofs: out of memory");
        c->cfg = cfg;
        pthread_rwlock_init(&c->session_lock, NULL);
        pthread_mutex_init(&c->pool_lock, NULL);
        pthread_cond_init(&c->job_cond, NULL);
        pthread_cond_init(&c->slot_cond, NULL);
        for (unsigned q = 0; q < VU_MAX_QUEUES; q++) {
                pthread_mutex_init(&c->rings[q].used_lock, NULL);
                c->rings[q].wake_fd = -1;
        }
        r = vu_dev_init(&c->dev, 1 + cfg->request_queues, &ring_ops, c);
        if (r >= 0)
                r = fuse_ll_new(fs, &caps, &cfg->ll, &c->ll);
        if (r >= 0)
                r = pool_start(c);
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
                struct pollfd pfd[3] = { { .fd = sock, .events = POLLIN },
                                         { .fd = cfg->stop_fd, .events = POLLIN },
                                         { .fd = lfd, .events = POLLIN } };
                if (poll(pfd, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("virtiofs: poll: %m");
                        break;
                }
                if (pfd[1].revents) {
                        stop = 1;
                        break;
                }
                /* the served connection first: a front-end that went away
                 * and reconnected is served again, not refused */
                if (pfd[0].revents) {
                        r = vu_dev_process(&c->dev, sock);
                        if (r == -ECONNRESET) {
                                log_info("virtiofs: front-end disconnected");
                                break;
                        }
                        if (r < 0) {
                                log_warning_errno(r, "virtiofs: closing the connection: %m");
                                break;
                        }
                        continue;
                }
                if (pfd[2].revents)
                        refuse_second(lfd);
        }
        conn_free(c);
        return stop;
}

/* Whether something accepts connections on the unix socket at path. */
static bool socket_alive(const struct sockaddr_un *sa) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        return fd >= 0 && connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) == 0;
}

/* PATH.lock, flock()ed for as long as we serve PATH: a second castore
 * virtiofs on the same socket is refused without disturbing the first
 * (connecting to it would look like a VMM).  A lock file that was
 * replaced between our open and our lock is tried again. */
static int lock_socket(const char *path, char **ret_lock) {
        _cleanup_free_ char *lock = NULL;
        struct stat a, b;

        if (asprintf(&lock, "%s.lock", path) < 0)
                return -ENOMEM;
        for (;;) {
                _cleanup_close_ int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

                if (fd < 0)
                        return log_error_errno(negative_errno(), "virtiofs: cannot open %s: %m", lock);
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        if (errno == EWOULDBLOCK)
                                return log_error_errno(-EADDRINUSE, "virtiofs: another castore virtiofs serves %s",
                                                       path);
                        return log_error_errno(negative_errno(), "virtiofs: cannot lock %s: %m", lock);
                }
                if (fstat(fd, &a) == 0 && stat(lock, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
                        *ret_lock = TAKE_PTR(lock);
                        return TAKE_FD(fd);
                }
        }
}

/* The socket is owner-only, or owner and a group (0660): the
 * one who can connect drives the device, and reads the store. */
static int listen_on(const char *path, bool group, gid_t socket_gid) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        mode_t old;
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "virtiofs: socket path too long: %s", path);
        strcpy(sa.sun_path, path);
        /* replace a stale socket, never any other kind of file, nor one
         * that another program (not castore: it holds the lock) serves */
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(-EEXIST, "virtiofs: %s exists and is not a socket", path);
                if (socket_alive(&sa))
                        return log_error_errno(-EADDRINUSE, "virtiofs: another program serves %s", path);
                (void) unlink(path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(negative_errno(), "virtiofs: socket: %m");
        old = umask(0177); /* no window with a wider mode */
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? negative_errno() : 0;
        umask(old);
        if (r >= 0 && group && (chown(path, (uid_t) -1, socket_gid) < 0 || chmod(path, 0660) < 0))
                r = negative_errno();
        if (r >= 0 && listen(fd, 1) < 0)
                r = negative_errno();
        if (r < 0) {
                close(fd);
                return log_error_errno(r, "virtiofs: cannot listen on %s: %m", path);
        }
        return fd;
}

/* Ends serving: the socket and its lock file go (the lock is still held,
 * so nobody else took them over). */
static void unlisten(const struct virtiofs_config *cfg, int lfd, int lock_fd, const char *lock) {
        close(lfd);
        if (lock_fd < 0)
                return; /* a socket handed to us (--fd) is its owner's */
        (void) unlink(cfg->socket_path);
        (void) unlink(lock);
        close(lock_fd);
}

int virtiofs_serve(struct fs *fs, const struct virtiofs_config *cfg) {
        _cleanup_free_ char *lock = NULL;
        int lfd, lock_fd = -1, r = 0;

        if (!fs || !cfg || (!cfg->socket_path && cfg->listen_fd < 0) || cfg->request_queues < 1 ||
            cfg->request_queues > VFS_MAX_REQUEST_QUEUES || cfg->threads > VFS_MAX_THREADS)
                return -EINVAL;
        if (cfg->listen_fd >= 0)
                lfd = cfg->listen_fd;
        else {
                lock_fd = lock_socket(cfg->socket_path, &lock);
                if (lock_fd < 0)
                        return lock_fd;
                lfd = listen_on(cfg->socket_path, cfg->socket_group, cfg->socket_gid);
                if (lfd < 0) {
                        (void) unlink(lock);
                        close(lock_fd);
                        return lfd;
                }
        }
        if (cfg->confine) {
                /* before any connection or handler thread */
                r = cfg->confine(cfg->confine_userdata);
                if (r < 0) {
                        unlisten(cfg, lfd, lock_fd, lock);
                        return r;
                }
        }
        log_info("virtiofs: listening on %s (%u request queue%s, %u thread%s)",
                 cfg->socket_path ? cfg->socket_path : "a socket handed over",
                 cfg->request_queues, cfg->request_queues == 1 ? "" : "s", cfg->threads ? cfg->threads : default_threads(),
                 (cfg->threads ? cfg->threads : default_threads()) == 1 ? "" : "s");
        if (cfg->ready)
                cfg->ready(cfg->confine_userdata);

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
                int stop = serve_conn(fs, cfg, lfd, sock);
                close(sock);
                if (stop || cfg->once)
                        break;
        }
        unlisten(cfg, lfd, lock_fd, lock);
        return r;
}
