/* gRPC client calls as blocking functions on gRPC core, plus what client
 * and server share: status codes, addresses, byte buffers, completion
 * queue waits.  See rpc.h for the call model. */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/rpc.h"
#include "remote/rpc_internal.h"
#include "util/log.h"

/* A call that fails because the server is not there is tried once more
 * after the channel had this long to reconnect (a daemon restart). */
#define RECONNECT_WAIT_MS 3000

struct rpc_channel {
        grpc_channel *channel;
        char *target;
        unsigned timeout_ms;
};

static const struct {
        enum rpc_status status;
        int err;
        const char *name;
} status_map[] = {
        { RPC_OK, 0, "OK" },
        { RPC_CANCELLED, ECANCELED, "CANCELLED" },
        { RPC_UNKNOWN, EIO, "UNKNOWN" },
        { RPC_INVALID_ARGUMENT, EINVAL, "INVALID_ARGUMENT" },
        { RPC_DEADLINE_EXCEEDED, ETIMEDOUT, "DEADLINE_EXCEEDED" },
        { RPC_NOT_FOUND, ENOENT, "NOT_FOUND" },
        { RPC_ALREADY_EXISTS, EEXIST, "ALREADY_EXISTS" },
        { RPC_PERMISSION_DENIED, EACCES, "PERMISSION_DENIED" },
        { RPC_RESOURCE_EXHAUSTED, E2BIG, "RESOURCE_EXHAUSTED" },
        { RPC_FAILED_PRECONDITION, EBUSY, "FAILED_PRECONDITION" },
        { RPC_ABORTED, EAGAIN, "ABORTED" },
        { RPC_OUT_OF_RANGE, ERANGE, "OUT_OF_RANGE" },
        { RPC_UNIMPLEMENTED, EOPNOTSUPP, "UNIMPLEMENTED" },
        { RPC_INTERNAL, EIO, "INTERNAL" },
        { RPC_UNAVAILABLE, ECONNREFUSED, "UNAVAILABLE" },
        { RPC_DATA_LOSS, EBADMSG, "DATA_LOSS" },
};

int rpc_status_to_errno(enum rpc_status s) {
        for (size_t i = 0; i < ELEMENTSOF(status_map); i++)
                if (status_map[i].status == s)
                        return -status_map[i].err;
        return -EIO;
}

enum rpc_status rpc_errno_to_status(int r) {
        if (r >= 0)
                return RPC_OK;
        if (r == -ENOMEM || r == -ENOSPC)
                return RPC_RESOURCE_EXHAUSTED;
        if (r == -EBADMSG || r == -EPROTO)
                return RPC_INVALID_ARGUMENT;
        for (size_t i = 1; i < ELEMENTSOF(status_map); i++)
                if (-status_map[i].err == r && status_map[i].status != RPC_UNKNOWN)
                        return status_map[i].status;
        return RPC_INTERNAL;
}

const char *rpc_status_name(enum rpc_status s) {
        for (size_t i = 0; i < ELEMENTSOF(status_map); i++)
                if (status_map[i].status == s)
                        return status_map[i].name;
        return "UNKNOWN";
}

int rpc_target_from_url(const char *url, char **ret, const char **ret_why) {
        const char *why = NULL;
        char *t = NULL;

        if (strncmp(url, "grpc+unix://", 12) == 0) {
                const char *p = url + 12;
                if (*p != '/')
                        why = "grpc+unix:// takes an absolute path and no host (grpc+unix:///path/to/socket)";
                else if (asprintf(&t, "unix:%s", p) < 0)
                        return -ENOMEM;
        } else if (strncmp(url, "grpc+http://", 12) == 0) {
                const char *p = url + 12;
                size_t n = strcspn(p, "/?");
                if (n == 0 || !memchr(p, ':', n))
                        why = "grpc+http:// needs HOST:PORT";
                else if (p[n] && strcmp(p + n, "/") != 0)
                        why = "grpc+http:// takes no path or options";
                else if (!(t = strndup(p, n)))
                        return -ENOMEM;
        } else
                why = "not a gRPC address (grpc+unix:///path or grpc+http://host:port)";
        if (why) {
                if (ret_why)
                        *ret_why = why;
                return -EINVAL;
        }
        *ret = t;
        return 0;
}

/* ---- shared with rpc_server.c ---- */

gpr_timespec rpc_deadline(unsigned ms) {
        return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis((int64_t) ms, GPR_TIMESPAN));
}

grpc_byte_buffer *rpc_buffer_new(const void *data, size_t len) {
        grpc_slice s = grpc_slice_from_copied_buffer(data, len);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        return bb;
}

int rpc_buffer_take(grpc_byte_buffer *bb, uint8_t **ret, size_t *ret_len) {
        grpc_byte_buffer_reader reader;
        int r = 0;

        if (!grpc_byte_buffer_reader_init(&reader, bb)) {
                grpc_byte_buffer_destroy(bb);
                return -EBADMSG; /* a compression we cannot undo */
        }
        grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
        size_t len = GRPC_SLICE_LENGTH(s);
        uint8_t *p = malloc(len ? len : 1);
        if (p) {
                memcpy(p, GRPC_SLICE_START_PTR(s), len);
                *ret = p;
                *ret_len = len;
        } else
                r = -ENOMEM;
        grpc_slice_unref(s);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_destroy(bb);
        return r;
}

/* Starts a batch and waits for it (tag: the ops array).  0 when the batch
 * succeeded, -EPIPE when it failed (the call is over: read its status),
 * -ETIMEDOUT when wait_ms passed (the call is then cancelled, and the
 * batch reaped). */
int rpc_batch(grpc_call *call, grpc_completion_queue *cq, grpc_op *ops, size_t n, unsigned wait_ms) {
        grpc_call_error e = grpc_call_start_batch(call, ops, n, ops, NULL);
        if (e != GRPC_CALL_OK)
                return log_debug_errno(-EIO, "gRPC batch refused: %s", grpc_call_error_to_string(e));
        return rpc_batch_wait(call, cq, ops, wait_ms);
}

int rpc_batch_wait(grpc_call *call, grpc_completion_queue *cq, void *tag, unsigned wait_ms) {
        gpr_timespec deadline = wait_ms ? rpc_deadline(wait_ms) : gpr_inf_future(GPR_CLOCK_MONOTONIC);
        grpc_event ev = grpc_completion_queue_next(cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
                grpc_call_cancel(call, NULL);
                ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                return -ETIMEDOUT;
        }
        if (ev.type != GRPC_OP_COMPLETE || ev.tag != tag)
                return -EIO;
        return ev.success ? 0 : -EPIPE;
}

void rpc_cq_free(grpc_completion_queue *cq) {
        if (!cq)
                return;
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN)
                ;
        grpc_completion_queue_destroy(cq);
}

/* ---- channels ---- */

int rpc_channel_new(const char *target, unsigned timeout_ms, struct rpc_channel **ret) {
        grpc_arg args[] = {
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                  .value.integer = RPC_MAX_MESSAGE },
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = RPC_MAX_MESSAGE },
                /* a restarted daemon is found again within a second */
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 100 },
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = 100 },
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 1000 },
                /* castore's own retry (below) is the only one */
                { .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0 },
        };
        grpc_channel_args cargs = { .num_args = ELEMENTSOF(args), .args = args };
        struct rpc_channel *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->target = strdup(target);
        if (!c->target) {
                free(c);
                return -ENOMEM;
        }
        c->timeout_ms = timeout_ms ? timeout_ms : 30000;
        grpc_init();
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        c->channel = grpc_channel_create(target, creds, &cargs);
        grpc_channel_credentials_release(creds);
        if (!c->channel) {
                rpc_channel_free(c);
                return -EINVAL;
        }
        *ret = c;
        return 0;
}

void rpc_channel_free(struct rpc_channel *c) {
        if (!c)
                return;
        if (c->channel) {
                grpc_channel_destroy(c->channel);
                grpc_shutdown();
        }
        free(c->target);
        free(c);
}

const char *rpc_channel_target(const struct rpc_channel *c) {
        return c->target;
}

static grpc_call *call_new(struct rpc_channel *c, grpc_completion_queue *cq, const char *method,
                           gpr_timespec deadline) {
        grpc_slice m = grpc_slice_from_copied_string(method);
        grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                                   deadline, NULL);
        grpc_slice_unref(m);
        return call;
}

/* The status a finished call reported, as -errno (logged at debug). */
static int status_result(struct rpc_channel *c, const char *method, grpc_status_code st, grpc_slice details) {
        if (st == GRPC_STATUS_OK)
                return 0;
        log_debug("%s %s: %s: %.*s", c->target, method, rpc_status_name((enum rpc_status) st),
                  (int) GRPC_SLICE_LENGTH(details), (const char *) GRPC_SLICE_START_PTR(details));
        return rpc_status_to_errno((enum rpc_status) st);
}

struct status_buf {
        grpc_metadata_array initial, trailing;
        grpc_status_code status;
        grpc_slice details;
};

static void status_init(struct status_buf *sb) {
        memset(sb, 0, sizeof(*sb));
        grpc_metadata_array_init(&sb->initial);
        grpc_metadata_array_init(&sb->trailing);
        sb->status = GRPC_STATUS_UNKNOWN;
        sb->details = grpc_empty_slice();
}

static void status_done(struct status_buf *sb) {
        grpc_metadata_array_destroy(&sb->initial);
        grpc_metadata_array_destroy(&sb->trailing);
        grpc_slice_unref(sb->details);
}

static void op_recv_status(grpc_op *op, struct status_buf *sb) {
        op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        op->data.recv_status_on_client.trailing_metadata = &sb->trailing;
        op->data.recv_status_on_client.status = &sb->status;
        op->data.recv_status_on_client.status_details = &sb->details;
}

/* The four ops that open a call with one request message: send the
 * initial metadata (waiting for a connection if wait_ready), the message
 * and the half-close, receive the server's initial metadata (without it
 * a later message receive never completes). */
static void ops_request(grpc_op *ops, bool wait_ready, grpc_byte_buffer *out, grpc_metadata_array *initial) {
        ops[0] = (grpc_op){ .op = GRPC_OP_SEND_INITIAL_METADATA,
                            .flags = wait_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0 };
        ops[1] = (grpc_op){ .op = GRPC_OP_SEND_MESSAGE };
        ops[1].data.send_message.send_message = out;
        ops[2] = (grpc_op){ .op = GRPC_OP_SEND_CLOSE_FROM_CLIENT };
        ops[3] = (grpc_op){ .op = GRPC_OP_RECV_INITIAL_METADATA };
        ops[3].data.recv_initial_metadata.recv_initial_metadata = initial;
}

/* One attempt of a unary call, as one batch (a status receive would wait
 * for an unread reply otherwise). */
static int unary_once(struct rpc_channel *c, const char *method, const void *req, size_t req_len, bool wait_ready,
                      unsigned wait_ms, uint8_t **ret, size_t *ret_len) {
        grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
        grpc_call *call = call_new(c, cq, method, rpc_deadline(wait_ms));
        grpc_byte_buffer *out = rpc_buffer_new(req, req_len), *in = NULL;
        struct status_buf sb;
        grpc_op ops[6] = {};
        int r;

        status_init(&sb);
        ops_request(ops, wait_ready, out, &sb.initial);
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &in;
        op_recv_status(&ops[5], &sb);
        r = rpc_batch(call, cq, ops, ELEMENTSOF(ops), wait_ms + 1000);
        if (r == 0)
                r = status_result(c, method, sb.status, sb.details);
        if (r == 0 && !in)
                r = log_debug_errno(-EPROTO, "%s %s: OK without a reply", c->target, method);
        if (r == 0)
                r = rpc_buffer_take(TAKE_PTR(in), ret, ret_len);
        if (in)
                grpc_byte_buffer_destroy(in);
        grpc_byte_buffer_destroy(out);
        status_done(&sb);
        grpc_call_unref(call);
        rpc_cq_free(cq);
        return r;
}

int rpc_unary(struct rpc_channel *c, const char *method, const void *req, size_t req_len, uint8_t **ret,
              size_t *ret_len) {
        int r = unary_once(c, method, req, req_len, false, c->timeout_ms, ret, ret_len);
        if (r != -ECONNREFUSED)
                return r;
        /* the server may be restarting: give the channel time to reconnect */
        unsigned wait = c->timeout_ms < RECONNECT_WAIT_MS ? c->timeout_ms : RECONNECT_WAIT_MS;
        r = unary_once(c, method, req, req_len, true, wait, ret, ret_len);
        return r == -ETIMEDOUT ? -ECONNREFUSED : r;
}

/* ---- server streams ---- */

struct rpc_stream {
        struct rpc_channel *channel;
        const char *method;
        grpc_completion_queue *cq;
        grpc_call *call;
        struct status_buf sb;
        bool ended;
        bool got_any;   /* a message arrived: no retry any more */
        bool retried;
        uint8_t *req;   /* kept for the one retry */
        size_t req_len;
};

static void stream_end_call(struct rpc_stream *s) {
        if (s->call) {
                if (!s->ended)
                        grpc_call_cancel(s->call, NULL);
                grpc_call_unref(s->call);
                s->call = NULL;
        }
        status_done(&s->sb);
        rpc_cq_free(s->cq);
        s->cq = NULL;
}

/* Starts the call: the request goes out, the server's initial metadata
 * comes back.  A failure shows in the status the first next reads. */
static int stream_start(struct rpc_stream *s, bool wait_ready) {
        struct rpc_channel *c = s->channel;
        grpc_op ops[4] = {};
        int r;

        status_init(&s->sb);
        s->ended = false;
        s->cq = grpc_completion_queue_create_for_next(NULL);
        s->call = call_new(c, s->cq, s->method, gpr_inf_future(GPR_CLOCK_MONOTONIC));
        grpc_byte_buffer *out = rpc_buffer_new(s->req, s->req_len);
        ops_request(ops, wait_ready, out, &s->sb.initial);
        r = rpc_batch(s->call, s->cq, ops, ELEMENTSOF(ops),
                      wait_ready && c->timeout_ms > RECONNECT_WAIT_MS ? RECONNECT_WAIT_MS : c->timeout_ms);
        grpc_byte_buffer_destroy(out);
        if (r == -ETIMEDOUT)
                s->ended = true;
        return r == -EPIPE ? 0 : r;
}

int rpc_stream_open(struct rpc_channel *c, const char *method, const void *req, size_t req_len,
                    struct rpc_stream **ret) {
        struct rpc_stream *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->channel = c;
        s->method = method;
        s->req = malloc(req_len ? req_len : 1);
        if (!s->req) {
                free(s);
                return -ENOMEM;
        }
        memcpy(s->req, req, req_len);
        s->req_len = req_len;
        r = stream_start(s, false);
        if (r < 0) {
                rpc_stream_close(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int stream_status(struct rpc_stream *s) {
        grpc_op op = {};
        op_recv_status(&op, &s->sb);
        int r = rpc_batch(s->call, s->cq, &op, 1, s->channel->timeout_ms);
        s->ended = true;
        if (r < 0)
                return r;
        return status_result(s->channel, s->method, s->sb.status, s->sb.details);
}

static int stream_recv(struct rpc_stream *s, uint8_t **ret, size_t *ret_len) {
        grpc_byte_buffer *in = NULL;
        grpc_op op = {};
        int r;

        if (s->ended)
                return -EPIPE;
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &in;
        r = rpc_batch(s->call, s->cq, &op, 1, s->channel->timeout_ms);
        if (r == -ETIMEDOUT) {
                s->ended = true;
                return log_debug_errno(r, "%s %s: no message within %u ms", s->channel->target, s->method,
                                       s->channel->timeout_ms);
        }
        if (r == 0 && in) {
                s->got_any = true;
                r = rpc_buffer_take(in, ret, ret_len);
                return r < 0 ? r : 1;
        }
        if (in)
                grpc_byte_buffer_destroy(in);
        /* the end of the stream, or the call failed: the status says which */
        return stream_status(s);
}

int rpc_stream_next(struct rpc_stream *s, uint8_t **ret, size_t *ret_len) {
        int r = stream_recv(s, ret, ret_len);
        if (r != -ECONNREFUSED || s->got_any || s->retried)
                return r;
        /* the server may be restarting: give the channel time to reconnect */
        s->retried = true;
        stream_end_call(s);
        r = stream_start(s, true);
        if (r < 0)
                return r == -ETIMEDOUT ? -ECONNREFUSED : r;
        r = stream_recv(s, ret, ret_len);
        return r == -ETIMEDOUT && !s->got_any ? -ECONNREFUSED : r;
}

void rpc_stream_close(struct rpc_stream *s) {
        if (!s)
                return;
        stream_end_call(s);
        free(s->req);
        free(s);
}

/* ---- client streams ---- */

struct rpc_upload {
        struct rpc_channel *channel;
        const char *method;
        grpc_completion_queue *cq;
        grpc_call *call;
        grpc_op pending; /* the message being sent while the caller goes on */
        bool in_flight;
        bool failed; /* a send failed: the status tells why */
};

/* Waits for the message in flight: 0 (also when it failed: then
 * u->failed, and finish reports the server's status) or -ETIMEDOUT. */
static int upload_wait(struct rpc_upload *u) {
        if (!u->in_flight)
                return 0;
        int r = rpc_batch_wait(u->call, u->cq, &u->pending, u->channel->timeout_ms);
        grpc_byte_buffer_destroy(u->pending.data.send_message.send_message);
        u->in_flight = false;
        if (r == -EPIPE || r == -EIO)
                u->failed = true;
        return r == -ETIMEDOUT ? r : 0;
}

int rpc_upload_open(struct rpc_channel *c, const char *method, struct rpc_upload **ret) {
        struct rpc_upload *u = calloc(1, sizeof(*u));
        grpc_op op = {};
        int r;

        if (!u)
                return -ENOMEM;
        u->channel = c;
        u->method = method;
        u->cq = grpc_completion_queue_create_for_next(NULL);
        u->call = call_new(c, u->cq, method, gpr_inf_future(GPR_CLOCK_MONOTONIC));
        op.op = GRPC_OP_SEND_INITIAL_METADATA;
        op.flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
        r = rpc_batch(u->call, u->cq, &op, 1, c->timeout_ms < RECONNECT_WAIT_MS ? c->timeout_ms : RECONNECT_WAIT_MS);
        if (r == -EPIPE)
                u->failed = true;
        else if (r < 0) {
                rpc_upload_cancel(u);
                return r == -ETIMEDOUT ? -ECONNREFUSED : r;
        }
        *ret = u;
        return 0;
}

/* One message in flight: the caller prepares the next one meanwhile. */
int rpc_upload_send(struct rpc_upload *u, const void *msg, size_t len) {
        int r = upload_wait(u);
        if (r < 0 || u->failed)
                return r; /* failed: finish reports the server's status */
        u->pending = (grpc_op){ .op = GRPC_OP_SEND_MESSAGE };
        u->pending.data.send_message.send_message = rpc_buffer_new(msg, len);
        grpc_call_error e = grpc_call_start_batch(u->call, &u->pending, 1, &u->pending, NULL);
        if (e != GRPC_CALL_OK) {
                grpc_byte_buffer_destroy(u->pending.data.send_message.send_message);
                return log_debug_errno(-EIO, "gRPC batch refused: %s", grpc_call_error_to_string(e));
        }
        u->in_flight = true;
        return 0;
}

int rpc_upload_finish(struct rpc_upload *u, uint8_t **ret, size_t *ret_len) {
        grpc_byte_buffer *in = NULL;
        struct status_buf sb;
        grpc_op ops[4] = {};
        int r;

        r = upload_wait(u);
        if (r < 0) {
                rpc_upload_cancel(u);
                return r;
        }
        status_init(&sb);
        ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[1].data.recv_initial_metadata.recv_initial_metadata = &sb.initial;
        ops[2].op = GRPC_OP_RECV_MESSAGE;
        ops[2].data.recv_message.recv_message = &in;
        op_recv_status(&ops[3], &sb);
        /* after a failed send, closing is refused: only ask for the status */
        r = u->failed ? rpc_batch(u->call, u->cq, ops + 1, 3, u->channel->timeout_ms)
                      : rpc_batch(u->call, u->cq, ops, 4, u->channel->timeout_ms);
        if (r == 0 || r == -EPIPE)
                r = status_result(u->channel, u->method, sb.status, sb.details);
        if (r == 0 && !in)
                r = -EPROTO;
        if (r == 0)
                r = rpc_buffer_take(TAKE_PTR(in), ret, ret_len);
        if (in)
                grpc_byte_buffer_destroy(in);
        status_done(&sb);
        grpc_call_unref(u->call);
        u->call = NULL;
        rpc_upload_cancel(u);
        return r;
}

void rpc_upload_cancel(struct rpc_upload *u) {
        if (!u)
                return;
        if (u->call) {
                grpc_call_cancel(u->call, NULL);
                if (u->in_flight) /* cancelled: it completes at once */
                        (void) rpc_batch_wait(u->call, u->cq, &u->pending, 0);
                grpc_call_unref(u->call);
        }
        if (u->in_flight)
                grpc_byte_buffer_destroy(u->pending.data.send_message.send_message);
        rpc_cq_free(u->cq);
        free(u);
}
