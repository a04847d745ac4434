/* FUSE over io_uring: rings created (restricted to URING_CMD on the
 * session descriptor) before INIT, threads that register ring entries
 * after it and then loop: wait for completions, hand each request to the
 * engine with the entry's payload buffer as its scratch (a reply is built
 * where the kernel takes it from), commit and fetch the next. */
#include "transport/fuse_uring.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fuse/fuse_ll.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/uring.h"

#define ENTRIES_PER_QUEUE 4u   /* per thread and kernel queue it serves */
#define MAX_RING_THREADS 256u

struct fuse_uring;

/* A registered entry: the kernel writes a request into hdr and payload,
 * we write the reply there. */
struct entry {
        struct fuse_uring_req_header *hdr;
        uint8_t *payload;
        struct iovec iov[2];
        uint16_t qid;
};

/* One thread and its ring; only that thread touches them while it runs,
 * except `started` (the starting thread's) and `exited`. */
struct ring_thread {
        struct fuse_uring *u;
        struct uring ring;
        struct entry *entries;
        unsigned n_entries;
        unsigned live;            /* entries the kernel still holds or gave us */
        uint8_t *req;             /* a request reassembled for the engine */
        size_t req_size;
        pthread_t thread;
        bool started;
        bool exited;              /* atomic: the thread function returned */
};

/* Fields without a note are set before the threads start and read-only
 * while they run. */
struct fuse_uring {
        struct fuse_ll *ll;
        size_t payload_size;
        int kick_signal;
        void (*ended)(void *);
        void *ended_userdata;
        bool stop;                /* atomic */
        unsigned long requests;   /* atomic: requests answered */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned reported;        /* under lock: threads that know how registration went */
        int refusal;              /* under lock: the first refusal, or 0 */
        struct ring_thread *threads;
        unsigned n_threads;
};

/* The kernel has one queue per possible CPU (num_possible_cpus()). */
static unsigned kernel_queues(void) {
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        unsigned n = 0;
        FILE *f = fopen("/sys/devices/system/cpu/possible", "re");

        if (f && getline(&line, &cap, f) > 0) {
                /* "0-3,8-11" */
                for (char *save = NULL, *tok = strtok_r(line, ",\n", &save); tok; tok = strtok_r(NULL, ",\n", &save)) {
                        unsigned a, b;
                        int k = sscanf(tok, "%u-%u", &a, &b);
                        n += k == 2 && b >= a ? b - a + 1 : k == 1 ? 1 : 0;
                }
        }
        if (f)
                fclose(f);
        if (n == 0) {
                long c = sysconf(_SC_NPROCESSORS_CONF);
                n = c > 0 ? (unsigned) c : 1;
        }
        return n;
}

/* Which kernel queues thread i of n serves, with q queues: with at least
 * as many threads as queues, queue i % q; else every queue j with
 * j % n == i.  Every queue gets entries. */
static bool serves_queue(unsigned i, unsigned n, unsigned q, unsigned qid) {
        return n >= q ? i % q == qid : qid % n == i;
}

static void *map_buffer(size_t len) {
        /* untouched pages cost nothing: most requests use a few bytes */
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

static int thread_setup(struct ring_thread *t, struct fuse_uring *u, int fd, unsigned i, unsigned queues) {
        unsigned k = 0;

        t->u = u;
        t->ring.fd = -1;
        for (unsigned q = 0; q < queues; q++)
                if (serves_queue(i, u->n_threads, queues, q))
                        t->n_entries += ENTRIES_PER_QUEUE;
        t->entries = calloc(t->n_entries, sizeof(*t->entries));
        if (!t->entries)
                return -ENOMEM;
        for (unsigned q = 0; q < queues; q++) {
                if (!serves_queue(i, u->n_threads, queues, q))
                        continue;
                for (unsigned j = 0; j < ENTRIES_PER_QUEUE; j++, k++) {
                        struct entry *e = &t->entries[k];
                        e->qid = q;
                        e->hdr = calloc(1, sizeof(*e->hdr));
                        e->payload = map_buffer(u->payload_size);
                        if (!e->hdr || !e->payload)
                                return -ENOMEM;
                        e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
                        e->iov[1] = (struct iovec){ e->payload, u->payload_size };
                }
        }
        return uring_open(&t->ring, t->n_entries, IORING_OP_URING_CMD, fd);
}

static void thread_cleanup(struct ring_thread *t) {
        uring_close(&t->ring);
        for (unsigned k = 0; t->entries && k < t->n_entries; k++) {
                free(t->entries[k].hdr);
                if (t->entries[k].payload)
                        munmap(t->entries[k].payload, t->u->payload_size);
        }
        free(t->entries);
        free(t->req);
}

int fuse_uring_new(int fd, unsigned threads, size_t payload_size, int kick_signal, struct fuse_uring **ret) {
        struct fuse_uring *u;
        unsigned queues = kernel_queues();
        int r = 0;

        if (fd < 0 || payload_size < sizeof(struct fuse_in_header) || !ret)
                return -EINVAL;
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->payload_size = payload_size;
        u->kick_signal = kick_signal;
        pthread_mutex_init(&u->lock, NULL);
        pthread_cond_init(&u->cond, NULL);
        u->n_threads = MIN(MAX(threads, 1u), MAX_RING_THREADS);
        u->threads = calloc(u->n_threads, sizeof(*u->threads));
        if (!u->threads)
                r = -ENOMEM;
        for (unsigned i = 0; r >= 0 && i < u->n_threads; i++)
                r = thread_setup(&u->threads[i], u, fd, i, queues);
        if (r < 0) {
                fuse_uring_free(u);
                return r;
        }
        *ret = u;
        return 0;
}

/* --- the threads --- */

/* Queues the command for entry k: REGISTER or COMMIT_AND_FETCH.  The SQ
 * has room for every entry, each has one command at most, and every
 * wait submits them: a full queue is a kernel that stopped taking them. */
static int queue_cmd(struct ring_thread *t, unsigned k, uint32_t op, uint64_t commit_id) {
        struct entry *e = &t->entries[k];
        struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
        struct fuse_uring_cmd_req *cmd;

        if (!sqe && uring_submit(&t->ring, 0) >= 0)
                sqe = uring_get_sqe(&t->ring);
        if (!sqe)
                return -EBUSY;
        sqe->opcode = IORING_OP_URING_CMD;
        sqe->cmd_op = op;
        sqe->addr = (uintptr_t) e->iov;
        sqe->len = 2;
        sqe->user_data = k;
        cmd = (struct fuse_uring_cmd_req *) sqe->cmd;
        cmd->commit_id = commit_id;
        cmd->qid = e->qid;
        return 0;
}

/* The request in e, as the engine takes it: header, first argument,
 * payload.  Its length, or -EPROTO if the sizes do not add up. */
static ssize_t gather_request(struct ring_thread *t, const struct entry *e) {
        const struct fuse_uring_req_header *h = e->hdr;
        struct fuse_in_header in;
        size_t payload = h->ring_ent_in_out.payload_sz, op_len;

        memcpy(&in, h->in_out, sizeof(in));
        if (in.len < sizeof(in) + payload || in.len > t->req_size || payload > t->u->payload_size)
                return -EPROTO;
        op_len = in.len - sizeof(in) - payload;
        if (op_len > sizeof(h->op_in))
                return -EPROTO;
        memcpy(t->req, &in, sizeof(in));
        memcpy(t->req + sizeof(in), h->op_in, op_len);
        memcpy(t->req + sizeof(in) + op_len, e->payload, payload);
        return in.len;
}

/* Answers the request in entry k and queues its commit: 0, or -errno
 * if the entry is lost. */
static int serve_entry(struct ring_thread *t, unsigned k) {
        struct entry *e = &t->entries[k];
        struct fuse_uring_req_header *h = e->hdr;
        uint64_t commit_id = h->ring_ent_in_out.commit_id;
        struct fuse_ll_reply rep = { .none = true };
        ssize_t len = gather_request(t, e);

        /* the entry's payload buffer is the engine's scratch: no copy */
        if (len >= 0)
                (void) fuse_ll_handle(t->u->ll, t->req, len, e->payload, t->u->payload_size, &rep);
        if (rep.none) {
                /* malformed, or nothing to answer (FORGET does not come
                 * this way): the entry must be committed all the same */
                rep = (struct fuse_ll_reply){ .hdr = { .len = sizeof(rep.hdr), .error = -EIO, .unique = commit_id } };
        }
        memcpy(h->in_out, &rep.hdr, sizeof(rep.hdr));
        if (rep.payload_len > 0 && rep.payload != e->payload)
                memmove(e->payload, rep.payload, rep.payload_len);
        h->ring_ent_in_out.payload_sz = rep.payload_len;
        fuse_ll_reply_done(t->u->ll, &rep);
        __atomic_fetch_add(&t->u->requests, 1, __ATOMIC_RELAXED);
        return queue_cmd(t, k, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, commit_id);
}

/* Registers every entry.  A refusal comes back at once; an accepted
 * entry completes only when a request arrives.  0 or the first refusal;
 * t->live counts the entries submitted (refused ones are reaped later). */
static int register_entries(struct ring_thread *t) {
        int r = 0;

        for (unsigned k = 0; r >= 0 && k < t->n_entries; k++)
                r = queue_cmd(t, k, FUSE_IO_URING_CMD_REGISTER, 0);
        if (r < 0)
                return r;
        do
                r = uring_submit(&t->ring, 0);
        while (r == -EINTR);
        if (r < 0)
                return r;
        t->live = t->n_entries;
        /* look without consuming: requests may already be there */
        for (unsigned i = *t->ring.cq_head; i != __atomic_load_n(t->ring.cq_tail, __ATOMIC_ACQUIRE); i++)
                if (t->ring.cqes[i & *t->ring.cq_mask].res < 0)
                        return t->ring.cqes[i & *t->ring.cq_mask].res;
        return 0;
}

/* For a thread that could not start: a registration the kernel must
 * refuse (no iovecs), on the thread's idle ring.  A refused registration
 * makes the kernel drop io_uring for the connection, so that it stops
 * holding requests back for queues no thread will register, and sends
 * them through the device instead. */
static void refuse_io_uring(struct ring_thread *t) {
        struct io_uring_sqe *sqe = uring_get_sqe(&t->ring);
        struct fuse_uring_cmd_req *cmd;

        if (!sqe)
                return;
        sqe->opcode = IORING_OP_URING_CMD;
        sqe->cmd_op = FUSE_IO_URING_CMD_REGISTER;
        cmd = (struct fuse_uring_cmd_req *) sqe->cmd;
        cmd->qid = t->entries[0].qid;
        if (uring_submit(&t->ring, 0) < 0)
                log_error("Cannot make the kernel drop FUSE io_uring: requests may hang");
}

static void report(struct fuse_uring *u, int r) {
        pthread_mutex_lock(&u->lock);
        u->reported++;
        if (r < 0 && u->refusal == 0)
                u->refusal = r;
        pthread_cond_broadcast(&u->cond);
        pthread_mutex_unlock(&u->lock);
}

/* Handles what completed.  false once no entry is left (the connection
 * ended: the kernel completes its entries with ENOTCONN). */
static bool reap(struct ring_thread *t) {
        struct io_uring_cqe *cqe;

        while ((cqe = uring_peek(&t->ring))) {
                unsigned k = (unsigned) cqe->user_data;
                int res = cqe->res;

                uring_advance(&t->ring);
                if (k >= t->n_entries)
                        continue;
                if (res < 0) {
                        if (res != -ENOTCONN && res != -ECANCELED)
                                log_warning_errno(res, "FUSE io_uring entry failed: %m");
                        t->live--;
                        continue;
                }
                if (serve_entry(t, k) < 0) {
                        log_error("FUSE io_uring submission queue full: entry dropped");
                        t->live--;
                }
        }
        return t->live > 0;
}

static void serve(struct ring_thread *t) {
        int r;

        while (!__atomic_load_n(&t->u->stop, __ATOMIC_ACQUIRE)) {
                r = uring_submit(&t->ring, 1);
                if (r < 0 && r != -EINTR) {
                        log_error_errno(r, "Waiting on the FUSE io_uring failed: %m");
                        return;
                }
                if (!reap(t))
                        return;
        }
}

static void *thread_main(void *arg) {
        struct ring_thread *t = arg;
        struct fuse_uring *u = t->u;
        sigset_t ss;
        int r;

        sigemptyset(&ss);
        sigaddset(&ss, u->kick_signal);
        pthread_sigmask(SIG_UNBLOCK, &ss, NULL);
        r = register_entries(t);
        report(u, r);
        /* after a refusal too: the kernel may still send requests to the
         * entries it took (if every queue has one) */
        if (t->live > 0)
                serve(t);
        if (r >= 0 && !__atomic_load_n(&u->stop, __ATOMIC_ACQUIRE) && u->ended)
                u->ended(u->ended_userdata);
        __atomic_store_n(&t->exited, true, __ATOMIC_RELEASE);
        return NULL;
}

static void stop_threads(struct fuse_uring *u) {
        __atomic_store_n(&u->stop, true, __ATOMIC_RELEASE);
        for (unsigned i = 0; i < u->n_threads; i++) {
                struct ring_thread *t = &u->threads[i];
                if (!t->started)
                        continue;
                /* the signal interrupts io_uring_enter; repeat it in case
                 * it came just before the thread entered it */
                while (!__atomic_load_n(&t->exited, __ATOMIC_ACQUIRE)) {
                        pthread_kill(t->thread, u->kick_signal);
                        struct timespec ts = { 0, 20 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
                pthread_join(t->thread, NULL);
                t->started = false;
        }
}

int fuse_uring_start(struct fuse_uring *u, struct fuse_ll *ll, void (*ended)(void *), void *userdata) {
        unsigned started = 0;
        int r = 0;

        if (!u || !ll)
                return -EINVAL;
        u->ll = ll;
        u->ended = ended;
        u->ended_userdata = userdata;
        for (unsigned i = 0; i < u->n_threads; i++) {
                struct ring_thread *t = &u->threads[i];
                t->req_size = fuse_ll_request_size(ll);
                t->req = malloc(t->req_size);
                r = t->req ? -pthread_create(&t->thread, NULL, thread_main, t) : -ENOMEM;
                if (r < 0) {
                        log_error_errno(r, "Cannot start a FUSE io_uring thread: %m");
                        refuse_io_uring(t);
                        break;
                }
                t->started = true;
                started++;
        }
        pthread_mutex_lock(&u->lock);
        while (u->reported < started)
                pthread_cond_wait(&u->cond, &u->lock);
        if (r >= 0)
                r = u->refusal;
        pthread_mutex_unlock(&u->lock);
        return r;
}

unsigned long fuse_uring_requests(const struct fuse_uring *u) {
        return u ? __atomic_load_n(&u->requests, __ATOMIC_RELAXED) : 0;
}

void fuse_uring_free(struct fuse_uring *u) {
        if (!u)
                return;
        if (u->threads) {
                stop_threads(u);
                for (unsigned i = 0; i < u->n_threads; i++)
                        if (u->threads[i].u)
                                thread_cleanup(&u->threads[i]);
                free(u->threads);
        }
        pthread_mutex_destroy(&u->lock);
        pthread_cond_destroy(&u->cond);
        free(u);
}
