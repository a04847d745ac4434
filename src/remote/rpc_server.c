/* The gRPC server: one thread waits for calls and hands each to a thread
 * of its own (an idle one kept from an earlier call, else a new one),
 * which runs the method's handler with blocking receive and send
 * functions and ends the call with the handler's status.  See rpc.h. */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "remote/rpc.h"
#include "remote/rpc_internal.h"
#include "util/log.h"

/* Calls running at once; more are refused with RESOURCE_EXHAUSTED. */
#define MAX_CALLS 512
/* How long a call may wait for its peer to take or send a message. */
#define PEER_WAIT_MS 60000
/* How long a call thread waits for the next call before it ends. */
#define IDLE_SECONDS 10

struct method {
        char *path;
        rpc_handler handler;
        void *userdata;
};

struct rpc_server {
        grpc_server *server;
        grpc_completion_queue *cq; /* new-call notifications and shutdown */
        struct method *methods;    /* set before start, read-only after */
        size_t n_methods;
        char **sockets; /* unix socket paths, removed by free */
        size_t n_sockets;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t idle;    /* threads dropped to 0 */
        pthread_cond_t work;    /* a call was queued for an idle thread, or stopping */
        unsigned running;       /* call threads alive (lock) */
        unsigned n_idle;        /* of them, waiting for a call and not yet given one (lock) */
        struct rpc_call *queue; /* calls given to idle threads, not yet taken (lock) */
        bool stopping;          /* (lock) */
};

struct rpc_call {
        struct rpc_server *server;
        grpc_call *call;
        grpc_completion_queue *cq;
        grpc_call_details details;
        grpc_metadata_array metadata;
        char *method;
        const struct method *m;
        struct rpc_call *next; /* in the server's queue */
        bool sent_initial;
        enum rpc_status status;
        char *message;
};

static int shutdown_tag;

int rpc_server_new(struct rpc_server **ret) {
        struct rpc_server *s = calloc(1, sizeof(*s));
        grpc_arg args[] = {
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                  .value.integer = RPC_MAX_MESSAGE },
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = RPC_MAX_MESSAGE },
                /* gRPC binds TCP ports with SO_REUSEPORT by default: a second
                 * daemon on a port in use would start and take half of the
                 * connections to its own store.  Refuse it, as for sockets. */
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0 },
        };
        grpc_channel_args cargs = { .num_args = ELEMENTSOF(args), .args = args };

        if (!s)
                return -ENOMEM;
        grpc_init();
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->idle, NULL);
        pthread_cond_init(&s->work, NULL);
        s->server = grpc_server_create(&cargs, NULL);
        s->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->cq, NULL);
        *ret = s;
        return 0;
}

int rpc_server_add_method(struct rpc_server *s, const char *method, rpc_handler h, void *userdata) {
        struct method *m = reallocarray(s->methods, s->n_methods + 1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        s->methods = m;
        m[s->n_methods] = (struct method){ .path = strdup(method), .handler = h, .userdata = userdata };
        if (!m[s->n_methods].path)
                return -ENOMEM;
        s->n_methods++;
        return 0;
}

/* Whether something already answers on a unix socket path. */
static bool socket_in_use(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return false;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        r = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
        close(fd);
        return r == 0;
}

static int listen_unix(struct rpc_server *s, const char *target, unsigned mode) {
        const char *path = target + 5; /* "unix:" */
        char **v;

        if (socket_in_use(path))
                return log_error_errno(-EADDRINUSE, "%s: another server is listening there", path);
        v = reallocarray(s->sockets, s->n_sockets + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        s->sockets = v;
        if (!(v[s->n_sockets] = strdup(path)))
                return -ENOMEM;
        /* no window in which the socket has the umask's mode */
        mode_t old = umask(0177);
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        int port = grpc_server_add_http2_port(s->server, target, creds);
        grpc_server_credentials_release(creds);
        umask(old);
        if (port == 0)
                return log_error_errno(-EADDRNOTAVAIL, "Cannot listen on %s", path);
        s->n_sockets++;
        if (chmod(path, mode ? mode : 0600) < 0)
                return log_error_errno(-errno, "Cannot set the mode of %s: %m", path);
        return 0;
}

int rpc_server_listen(struct rpc_server *s, const char *url, unsigned mode) {
        _cleanup_free_ char *target = NULL;
        const char *why;
        int r;

        r = rpc_target_from_url(url, &target, &why);
        if (r < 0)
                return log_error_errno(r, "%s: %s", url, why);
        if (strncmp(target, "unix:", 5) == 0)
                return listen_unix(s, target, mode);
        grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
        int port = grpc_server_add_http2_port(s->server, target, creds);
        grpc_server_credentials_release(creds);
        if (port == 0)
                return log_error_errno(-EADDRNOTAVAIL, "Cannot listen on %s (in use, or not an address of this host)",
                                       url);
        return 0;
}

int rpc_server_start(struct rpc_server *s) {
        grpc_server_start(s->server);
        s->started = true;
        return 0;
}

/* ---- calls ---- */

static struct rpc_call *call_new(struct rpc_server *s) {
        struct rpc_call *c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->server = s;
        c->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_call_details_init(&c->details);
        grpc_metadata_array_init(&c->metadata);
        return c;
}

static void call_free(struct rpc_call *c) {
        if (c->call)
                grpc_call_unref(c->call);
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->metadata);
        rpc_cq_free(c->cq);
        free(c->method);
        free(c->message);
        free(c);
}

const char *rpc_call_method(const struct rpc_call *c) {
        return c->method;
}

int rpc_call_fail(struct rpc_call *c, enum rpc_status status, const char *fmt, ...) {
        va_list ap;

        free(c->message);
        c->message = NULL;
        va_start(ap, fmt);
        if (vasprintf(&c->message, fmt, ap) < 0)
                c->message = NULL;
        va_end(ap);
        c->status = status;
        log_debug("%s: %s: %s", c->method, rpc_status_name(status), c->message ? c->message : "");
        int r = rpc_status_to_errno(status);
        return r < 0 ? r : -EIO;
}

int rpc_call_recv(struct rpc_call *c, uint8_t **ret, size_t *ret_len) {
        grpc_byte_buffer *in = NULL;
        grpc_op op = { .op = GRPC_OP_RECV_MESSAGE };
        int r;

        op.data.recv_message.recv_message = &in;
        r = rpc_batch(c->call, c->cq, &op, 1, PEER_WAIT_MS);
        if (r < 0)
                return r == -ETIMEDOUT ? rpc_call_fail(c, RPC_DEADLINE_EXCEEDED, "no message from the client") : -EPIPE;
        if (!in)
                return 0;
        r = rpc_buffer_take(in, ret, ret_len);
        return r < 0 ? r : 1;
}

int rpc_call_send(struct rpc_call *c, const void *msg, size_t len) {
        grpc_op ops[2] = {};
        size_t n = 0;
        int r;

        if (!c->sent_initial)
                ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = rpc_buffer_new(msg, len);
        r = rpc_batch(c->call, c->cq, ops, n, PEER_WAIT_MS);
        grpc_byte_buffer_destroy(ops[n - 1].data.send_message.send_message);
        c->sent_initial = true;
        if (r == -ETIMEDOUT)
                return rpc_call_fail(c, RPC_DEADLINE_EXCEEDED, "the client took no message");
        return r < 0 ? -EPIPE : 0;
}

/* Ends the call with status (and c->message). */
static void call_finish(struct rpc_call *c, enum rpc_status status) {
        grpc_op ops[3] = {};
        int cancelled = 0;
        size_t n = 0;

        grpc_slice details = c->message ? grpc_slice_from_copied_string(c->message) : grpc_empty_slice();
        if (!c->sent_initial)
                ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code) status;
        ops[n++].data.send_status_from_server.status_details = &details;
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &cancelled;
        (void) rpc_batch(c->call, c->cq, ops, n, PEER_WAIT_MS);
        grpc_slice_unref(details);
}

static void call_serve(struct rpc_call *c) {
        enum rpc_status status;

        int r = c->m->handler(c, c->m->userdata);
        if (r >= 0)
                status = RPC_OK;
        else if (c->status != RPC_OK)
                status = c->status;
        else {
                status = rpc_errno_to_status(r);
                if (!c->message)
                        c->message = strdup(strerror(-r)); /* NULL: an empty message */
        }
        call_finish(c, status);
        call_free(c);
}

/* Serves its first call, then whatever dispatch gives it while idle,
 * until IDLE_SECONDS pass without one or the server stops. */
static void *call_thread(void *p) {
        struct rpc_call *c = p;
        struct rpc_server *s = c->server;

        for (;;) {
                call_serve(c);
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += IDLE_SECONDS;
                pthread_mutex_lock(&s->lock);
                s->n_idle++;
                while (!s->queue && !s->stopping)
                        if (pthread_cond_timedwait(&s->work, &s->lock, &until) == ETIMEDOUT)
                                break;
                c = s->queue;
                if (!c)
                        break; /* still counted idle: undo that below */
                s->queue = c->next; /* dispatch took us off the idle count */
                pthread_mutex_unlock(&s->lock);
        }
        s->n_idle--;
        if (--s->running == 0)
                pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static const struct method *find_method(struct rpc_server *s, const char *path) {
        for (size_t i = 0; i < s->n_methods; i++)
                if (strcmp(s->methods[i].path, path) == 0)
                        return &s->methods[i];
        return NULL;
}

/* Refuses a call on the accepting thread (no handler thread). */
static void call_refuse(struct rpc_call *c, enum rpc_status status, const char *msg) {
        c->message = strdup(msg);
        call_finish(c, status);
        call_free(c);
}

static void dispatch(struct rpc_server *s, struct rpc_call *c) {
        pthread_attr_t attr;
        pthread_t t;

        c->method = strndup((const char *) GRPC_SLICE_START_PTR(c->details.method),
                            GRPC_SLICE_LENGTH(c->details.method));
        c->m = c->method ? find_method(s, c->method) : NULL;
        if (!c->m) {
                log_debug("Unknown method %s", c->method ? c->method : "?");
                return call_refuse(c, RPC_UNIMPLEMENTED, "unknown method");
        }
        pthread_mutex_lock(&s->lock);
        if (s->n_idle > 0) {
                /* an idle thread takes it (appended, so calls keep their order) */
                struct rpc_call **tail = &s->queue;
                while (*tail)
                        tail = &(*tail)->next;
                *tail = c;
                s->n_idle--;
                pthread_cond_signal(&s->work);
                pthread_mutex_unlock(&s->lock);
                return;
        }
        bool full = s->running >= MAX_CALLS;
        if (!full)
                s->running++;
        pthread_mutex_unlock(&s->lock);
        if (full)
                return call_refuse(c, RPC_RESOURCE_EXHAUSTED, "too many calls at once");
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&t, &attr, call_thread, c);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                pthread_mutex_lock(&s->lock);
                s->running--;
                pthread_mutex_unlock(&s->lock);
                call_refuse(c, RPC_RESOURCE_EXHAUSTED, "cannot start a thread");
        }
}

int rpc_server_run(struct rpc_server *s) {
        struct rpc_call *pending = NULL;
        bool shut = false;

        if (!s->started)
                return -EINVAL;
        while (!shut || pending) {
                if (!pending && !shut) {
                        pending = call_new(s);
                        if (!pending)
                                return -ENOMEM;
                        grpc_call_error e = grpc_server_request_call(s->server, &pending->call, &pending->details,
                                                                     &pending->metadata, pending->cq, s->cq, pending);
                        if (e != GRPC_CALL_OK) {
                                call_free(pending);
                                return log_error_errno(-EIO, "gRPC: %s", grpc_call_error_to_string(e));
                        }
                }
                grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                if (ev.type != GRPC_OP_COMPLETE)
                        break;
                if (ev.tag == &shutdown_tag) {
                        shut = true;
                        continue;
                }
                struct rpc_call *c = ev.tag;
                pending = NULL;
                if (!ev.success || shut) {
                        call_free(c);
                        continue;
                }
                dispatch(s, c);
        }
        pthread_mutex_lock(&s->lock);
        while (s->running > 0)
                pthread_cond_wait(&s->idle, &s->lock);
        pthread_mutex_unlock(&s->lock);
        return 0;
}

void rpc_server_stop(struct rpc_server *s) {
        pthread_mutex_lock(&s->lock);
        bool first = !s->stopping;
        s->stopping = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->lock);
        if (!first)
                return;
        grpc_server_shutdown_and_notify(s->server, s->cq, &shutdown_tag);
        grpc_server_cancel_all_calls(s->server);
}

void rpc_server_free(struct rpc_server *s) {
        if (!s)
                return;
        if (s->started && !s->stopping) {
                rpc_server_stop(s);
                (void) rpc_server_run(s);
        }
        grpc_server_destroy(s->server);
        rpc_cq_free(s->cq);
        for (size_t i = 0; i < s->n_methods; i++)
                free(s->methods[i].path);
        free(s->methods);
        for (size_t i = 0; i < s->n_sockets; i++) {
                (void) unlink(s->sockets[i]);
                free(s->sockets[i]);
        }
        free(s->sockets);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->idle);
        pthread_cond_destroy(&s->work);
        free(s);
        grpc_shutdown();
}
