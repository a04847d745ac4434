/* The /dev/fuse transport: mount, INIT on the calling thread, then worker
 * threads each reading requests from their own cloned device descriptor
 * into private buffers and writing replies with writev (file data is in
 * the reply, verified and copied by the engine).  Where INIT negotiated
 * FUSE over io_uring, ring threads serve the requests instead and one
 * worker reads what still comes through the device (FORGET, INTERRUPT).
 * The calling thread waits for a signal or for the connection to end,
 * then unmounts and stops workers. */
#include "transport/devfuse.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fuse/fuse_ll.h"
#include "transport/fuse_uring.h"
#include "transport/fusemount.h"
#include "util/log.h"
#include "util/macro.h"

#define MAX_THREADS 256
#define KICK_SIGNAL SIGUSR1

struct devfuse;

/* One worker thread and its private resources; only the thread itself
 * touches them while it runs. */
struct worker {
        struct devfuse *df;
        pthread_t thread;
        bool started;
        int fd;                /* cloned device descriptor, or the session's */
        uint8_t *req;
        size_t req_size;
        uint8_t *scratch;
        size_t scratch_size;
        bool exited;           /* atomic: the thread function returned */
};

/* Fields are written before the workers start and read-only afterwards,
 * except `stop` (atomic). */
struct devfuse {
        const struct devfuse_options *o;
        struct fs *fs;
        struct fuse_ll *ll;
        int fd;                /* session descriptor */
        bool helper;           /* mounted through fusermount3 */
        int event_fd;          /* workers report the end of the connection */
        int signal_fd;
        struct fusemount_watcher watcher; /* unmounts for a confined daemon; fd -1 if none */
        bool stop;             /* atomic */
        struct worker *workers;
        unsigned n_workers;
        struct fuse_uring *uring; /* FUSE io_uring rings while they may be used, else NULL */
        bool uring_serving;       /* the kernel took the rings' entries */
};

static void kick_handler(int sig) {
        /* only there to interrupt a blocking read() */
}

/* --- passthrough: backing files are registered on the session descriptor --- */

static int backing_open(void *ctx, int fd) {
        struct devfuse *df = ctx;
        struct fuse_backing_map map = { .fd = fd };
        int id = ioctl(df->fd, FUSE_DEV_IOC_BACKING_OPEN, &map);

        return id < 0 ? negative_errno() : id;
}

static int backing_close(void *ctx, int id) {
        struct devfuse *df = ctx;
        uint32_t v = id;

        return ioctl(df->fd, FUSE_DEV_IOC_BACKING_CLOSE, &v) < 0 ? negative_errno() : 0;
}

/* Whether we may register backing files (CAP_SYS_ADMIN), tried with a file
 * we can always open.  0 or -errno. */
static int backing_probe(void *ctx) {
        _cleanup_close_ int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        int id;

        if (fd < 0)
                return negative_errno();
        id = backing_open(ctx, fd);
        if (id < 0)
                return id;
        (void) backing_close(ctx, id);
        return 0;
}

/* --- FUSE over io_uring --- */

static bool uring_ready(void *ctx) {
        struct devfuse *df = ctx;
        return df->uring != NULL;
}

static void notify_main(struct devfuse *df);

static void uring_ended(void *userdata) {
        notify_main(userdata);
}

/* Before INIT: rings, so that INIT may negotiate io_uring.  Without them
 * (io_uring disabled or not permitted here) the device is read. */
static int uring_setup(struct devfuse *df, unsigned threads) {
        int r;

        if (df->o->io_uring == DEVFUSE_IO_URING_OFF)
                return 0;
        r = fuse_uring_new(df->fd, threads, fuse_ll_scratch_size(df->ll), KICK_SIGNAL, &df->uring);
        if (r >= 0)
                return 0;
        if (df->o->io_uring == DEVFUSE_IO_URING_ON)
                return log_error_errno(r, "Cannot set up io_uring (--io-uring=on): %m");
        log_info("FUSE over io_uring not available (io_uring set-up: %s); reading /dev/fuse", strerror(-r));
        return 0;
}

/* After INIT: keeps the rings only if INIT negotiated io_uring. */
static int uring_negotiated(struct devfuse *df) {
        if (!df->uring || fuse_ll_io_uring(df->ll))
                return 0;
        fuse_uring_free(df->uring);
        df->uring = NULL;
        if (df->o->io_uring == DEVFUSE_IO_URING_ON)
                return log_error_errno(-EOPNOTSUPP, "The kernel does not offer FUSE over io_uring (--io-uring=on; "
                                                    "is the fuse module's enable_uring parameter Y?)");
        log_info("The kernel does not offer FUSE over io_uring; reading /dev/fuse");
        return 0;
}

/* After confinement: the ring threads register their entries.  If the
 * kernel refuses them, it sends requests through the device (the rings
 * stay, for what it may still send there). */
static int uring_start(struct devfuse *df) {
        int r;

        if (!df->uring)
                return 0;
        r = fuse_uring_start(df->uring, df->ll, uring_ended, df);
        df->uring_serving = r >= 0;
        if (r >= 0)
                return 0;
        if (df->o->io_uring == DEVFUSE_IO_URING_ON)
                return log_error_errno(r, "FUSE io_uring entries not registered (--io-uring=on): %m");
        log_warning("FUSE io_uring entries not registered (%s); reading /dev/fuse", strerror(-r));
        return 0;
}

static const struct fuse_ll_backing_ops backing_ops = {
        .open = backing_open,
        .close = backing_close,
        .probe = backing_probe,
};

/* --- replies --- */

static int write_msg(struct worker *w, const struct iovec *iov, int n) {
        ssize_t k;

        do
                k = writev(w->fd, iov, n);
        while (k < 0 && errno == EINTR);
        if (k < 0) {
                /* ENOENT: the request was interrupted or aborted meanwhile */
                if (errno == ENOENT)
                        return 0;
                return negative_errno();
        }
        return 0;
}

static int send_reply(struct worker *w, const struct fuse_ll_reply *rep) {
        struct iovec iov[2];
        int n = 0;

        iov[n++] = (struct iovec){ (void *) &rep->hdr, sizeof(rep->hdr) };
        if (rep->payload_len > 0)
                iov[n++] = (struct iovec){ (void *) rep->payload, rep->payload_len };
        return write_msg(w, iov, n);
}

/* --- workers --- */

static int worker_setup(struct worker *w, struct devfuse *df, bool clone) {
        w->df = df;
        w->fd = df->fd;
        if (clone) {
                int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
                uint32_t session = df->fd;
                if (fd >= 0 && ioctl(fd, FUSE_DEV_IOC_CLONE, &session) == 0)
                        w->fd = fd;
                else {
                        /* still correct: the workers then share one descriptor */
                        log_debug_errno(negative_errno(), "Cloning the FUSE descriptor failed: %m");
                        if (fd >= 0)
                                close(fd);
                }
        }
        w->req_size = fuse_ll_request_size(df->ll);
        w->scratch_size = fuse_ll_scratch_size(df->ll);
        w->req = malloc(w->req_size);
        w->scratch = malloc(w->scratch_size);
        if (!w->req || !w->scratch)
                return -ENOMEM;
        return 0;
}

static void worker_cleanup(struct worker *w) {
        if (w->fd >= 0 && w->fd != w->df->fd)
                close(w->fd);
        w->fd = -1;
        free(w->req);
        free(w->scratch);
}

static void notify_main(struct devfuse *df) {
        uint64_t one = 1;
        (void) !write(df->event_fd, &one, sizeof(one));
}

/* Reads one request; 1 if one is in w->req (length in *ret_len), 0 to
 * retry, -errno when the connection is gone or broken. */
static int read_request(struct worker *w, size_t *ret_len) {
        ssize_t k = read(w->fd, w->req, w->req_size);

        if (k >= 0) {
                *ret_len = k;
                return 1;
        }
        switch (errno) {
        case EINTR:
        case EAGAIN:
        case ENOENT: /* the request was interrupted before we got it */
                return 0;
        default:
                return negative_errno(); /* ENODEV: unmounted; ECONNABORTED: aborted */
        }
}

static void *worker_main(void *arg) {
        struct worker *w = arg;
        struct devfuse *df = w->df;
        struct fuse_ll_reply rep;
        sigset_t ss;
        size_t len;
        int r, k;

        sigemptyset(&ss);
        sigaddset(&ss, KICK_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &ss, NULL);
        while (!__atomic_load_n(&df->stop, __ATOMIC_ACQUIRE)) {
                r = read_request(w, &len);
                if (r == 0)
                        continue;
                if (r < 0) {
                        if (r != -ENODEV && r != -ECONNABORTED)
                                log_error_errno(r, "Reading from /dev/fuse failed: %m");
                        break;
                }
                r = fuse_ll_handle(df->ll, w->req, len, w->scratch, w->scratch_size, &rep);
                k = rep.none ? 0 : send_reply(w, &rep);
                fuse_ll_reply_done(df->ll, &rep);
                if (k == -ENODEV)
                        break;
                if (k < 0)
                        log_warning_errno(k, "Replying to the kernel failed: %m");
                if (r == -ESHUTDOWN)
                        break;
        }
        __atomic_store_n(&w->exited, true, __ATOMIC_RELEASE);
        notify_main(df);
        return NULL;
}

/* --- session --- */

/* Answers requests on the calling thread until INIT is done. */
static int handle_init(struct devfuse *df, struct worker *w) {
        struct fuse_ll_reply rep;
        struct pollfd p[2] = { { df->fd, POLLIN, 0 }, { df->signal_fd, POLLIN, 0 } };
        size_t len;
        int r;

        for (;;) {
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (p[1].revents)
                        return -EINTR;
                r = read_request(w, &len);
                if (r == 0)
                        continue;
                if (r < 0)
                        return log_error_errno(r, "Reading INIT from /dev/fuse failed: %m");
                struct fuse_in_header h = {};
                struct fuse_init_in in = {};
                memcpy(&h, w->req, MIN(len, sizeof(h)));
                if (len > sizeof(h))
                        memcpy(&in, w->req + sizeof(h), MIN(len - sizeof(h), sizeof(in)));
                r = fuse_ll_handle(df->ll, w->req, len, w->scratch, w->scratch_size, &rep);
                int k = rep.none ? 0 : send_reply(w, &rep);
                fuse_ll_reply_done(df->ll, &rep);
                if (k < 0)
                        return log_error_errno(k, "Answering INIT failed: %m");
                if (h.opcode != FUSE_INIT)
                        continue;
                if (r < 0 || rep.hdr.error != 0)
                        return -EPROTO;
                /* a kernel with a newer major version asks again */
                if (in.major == FUSE_KERNEL_VERSION)
                        return 0;
        }
}

/* Reads through the daemon benefit from a readahead window larger than
 * the default 128 KiB: several 1 MiB requests in flight.  Best effort
 * (needs root; passthrough reads use the blob file's own readahead). */
static void raise_readahead(const char *mountpoint, uint32_t max_read) {
        char path[64], val[32], fstype[64];
        dev_t dev;
        int fd;

        /* the mount table, not stat(): no request before workers run */
        if (fusemount_find(mountpoint, fstype, &dev) < 0)
                return;
        snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(dev), minor(dev));
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        snprintf(val, sizeof(val), "%u", 4 * (max_read / 1024));
        (void) !write(fd, val, strlen(val));
        close(fd);
}

/* Idle blob readers keep files open: allow as many as the hard limit. */
static void raise_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static unsigned default_threads(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned) n : 1;
}

static void stop_workers(struct devfuse *df) {
        __atomic_store_n(&df->stop, true, __ATOMIC_RELEASE);
        for (unsigned i = 0; i < df->n_workers; i++) {
                struct worker *w = &df->workers[i];
                if (!w->started)
                        continue;
                /* the signal interrupts a blocking read; repeat it in case it
                 * arrived just before the thread entered read() */
                while (!__atomic_load_n(&w->exited, __ATOMIC_ACQUIRE)) {
                        pthread_kill(w->thread, KICK_SIGNAL);
                        struct timespec ts = { 0, 20 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
                pthread_join(w->thread, NULL);
                w->started = false;
        }
}

static void do_unmount(struct devfuse *df) {
        int r = fusemount_unmount(df->o->mountpoint, false, df->helper);
        if (r == -EBUSY) {
                log_notice("%s is busy: detaching it lazily", df->o->mountpoint);
                r = fusemount_unmount(df->o->mountpoint, true, df->helper);
        }
        if (r < 0 && r != -EINVAL && r != -ENOENT)
                log_warning_errno(r, "Unmounting %s failed: %m", df->o->mountpoint);
}

int devfuse_serve(struct fs *fs, const struct devfuse_options *o) {
        /* mount_kernel and fusermount3 both mount MS_RDONLY */
        struct fuse_ll_caps caps = {
                .name = "fuse",
                .readonly_mount = true,
                .calls_reply_done = true,
                .backing = &backing_ops,
                .io_uring_ready = uring_ready,
        };
        /* max_pages 0: the engine's largest read, 1 MiB; with replies
         * copied from memory nothing here limits it any more */
        struct fuse_ll_config cfg = {};
        struct fusemount_options mo = { .subtype = "castore" };
        struct devfuse df = { .o = o, .fs = fs, .fd = -1, .event_fd = -1, .signal_fd = -1, .watcher.fd = -1 };
        struct sigaction sa = { .sa_handler = kick_handler };
        sigset_t ss, old;
        bool mounted = false;
        unsigned n;
        int r;

        if (!fs || !o || !o->mountpoint)
                return -EINVAL;
        n = o->threads ? MIN(o->threads, (unsigned) MAX_THREADS) : default_threads();
        caps.ctx = &df;
        cfg.passthrough = o->passthrough != DEVFUSE_PASSTHROUGH_OFF;
        cfg.debug = o->debug;
        mo.fsname = o->fsname ? o->fsname : "castore";
        mo.allow_other = o->allow_other;

        /* signals: SIGINT/SIGTERM/SIGHUP through a signalfd on this thread,
         * the kick signal interrupts workers' reads (no SA_RESTART) */
        sigemptyset(&ss);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, KICK_SIGNAL);
        pthread_sigmask(SIG_BLOCK, &ss, &old);
        sigaction(KICK_SIGNAL, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        sigdelset(&ss, KICK_SIGNAL);
        df.signal_fd = signalfd(-1, &ss, SFD_CLOEXEC);
        df.event_fd = eventfd(0, EFD_CLOEXEC);
        if (df.signal_fd < 0 || df.event_fd < 0) {
                r = log_error_errno(negative_errno(), "Setting up signal handling failed: %m");
                goto out;
        }

        r = fuse_ll_new(fs, &caps, &cfg, &df.ll);
        if (r < 0)
                goto out;
        df.workers = calloc(n, sizeof(*df.workers));
        if (!df.workers) {
                r = -ENOMEM;
                goto out;
        }
        df.n_workers = n;
        for (unsigned i = 0; i < n; i++)
                df.workers[i].fd = -1;

        r = fusemount_mount(o->mountpoint, &mo, &df.fd, &df.helper);
        if (r < 0) {
                r = log_error_errno(r, "Mounting %s failed: %m", o->mountpoint);
                goto out;
        }
        mounted = true;
        r = uring_setup(&df, n);
        if (r < 0)
                goto out;

        /* INIT on this thread, with buffers of its own */
        struct worker init_w = {};
        r = worker_setup(&init_w, &df, false);
        if (r >= 0)
                r = handle_init(&df, &init_w);
        worker_cleanup(&init_w);
        if (r < 0) {
                if (r == -EINTR)
                        r = 0; /* a signal before INIT: just unmount */
                goto out;
        }
        r = uring_negotiated(&df);
        if (r < 0)
                goto out;
        /* the engine decided on passthrough at INIT (and tried one
         * registration); --passthrough=on only insists on it */
        if (o->passthrough == DEVFUSE_PASSTHROUGH_ON && !fuse_ll_passthrough(df.ll)) {
                r = fuse_ll_passthrough_error(df.ll);
                if (r == -ENOPROTOOPT)
                        r = log_error_errno(-EOPNOTSUPP, "The kernel does not offer FUSE passthrough (--passthrough=on)");
                else
                        r = log_error_errno(r, "FUSE passthrough is not allowed here (--passthrough=on): %m");
                goto out;
        }
        raise_nofile();
        for (unsigned i = 0; i < n; i++) {
                r = worker_setup(&df.workers[i], &df, i > 0);
                if (r < 0)
                        goto out;
        }
        raise_readahead(o->mountpoint, fuse_ll_max_read(df.ll));
        if (o->confine) {
                r = fusemount_watch(o->mountpoint, df.helper, &df.watcher);
                if (r < 0) {
                        log_error_errno(r, "Cannot start the unmount watcher: %m");
                        goto out;
                }
                r = o->confine(o->confine_userdata, df.uring != NULL);
                if (r < 0)
                        goto out;
        }
        r = uring_start(&df);
        if (r < 0)
                goto out;
        /* with io_uring, the device brings only FORGET and INTERRUPT */
        for (unsigned i = 0; i < (df.uring_serving ? 1 : n); i++) {
                r = -pthread_create(&df.workers[i].thread, NULL, worker_main, &df.workers[i]);
                if (r < 0) {
                        log_error_errno(r, "Starting worker threads failed: %m");
                        goto out;
                }
                df.workers[i].started = true;
        }
        log_info("Serving %s with %u threads%s%s", o->mountpoint, n, df.uring_serving ? " over io_uring" : "",
                 fuse_ll_passthrough(df.ll) ? ", passthrough available" : "");
        if (o->ready)
                o->ready(o->ready_userdata);

        /* wait for a signal or for a worker to see the connection end */
        for (;;) {
                struct pollfd p[2] = { { df.signal_fd, POLLIN, 0 }, { df.event_fd, POLLIN, 0 } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents) {
                        struct signalfd_siginfo si;
                        if (read(df.signal_fd, &si, sizeof(si)) == sizeof(si))
                                log_info("Signal %u: unmounting %s", si.ssi_signo, o->mountpoint);
                        break;
                }
                if (p[1].revents)
                        break; /* unmounted from outside, or DESTROY */
        }
        r = 0;

out:
        if (mounted && df.watcher.fd >= 0)
                fusemount_watcher_unmount(&df.watcher);
        else if (mounted)
                do_unmount(&df);
        if (df.uring)
                log_info("FUSE over io_uring: %lu requests answered through the rings", fuse_uring_requests(df.uring));
        /* ring threads stop before the engine goes; the kernel cancels their entries */
        fuse_uring_free(df.uring);
        if (df.workers) {
                stop_workers(&df);
                for (unsigned i = 0; i < df.n_workers; i++)
                        if (df.workers[i].df)
                                worker_cleanup(&df.workers[i]);
                free(df.workers);
        }
        /* the engine closes backing files on the session descriptor */
        fuse_ll_free(df.ll);
        /* closing the last descriptor aborts the connection: users of a
         * lazily detached mount get ENOTCONN instead of hanging */
        if (df.fd >= 0)
                close(df.fd);
        if (df.signal_fd >= 0)
                close(df.signal_fd);
        if (df.event_fd >= 0)
                close(df.event_fd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r;
}
