/* gRPC plumbing on gRPC core's C API, the one place that knows it: calls
 * as blocking functions (unary, server streaming, client streaming) for
 * the remote service backends, a server that runs each incoming call on
 * its own thread for the daemon, and the mapping between gRPC status
 * codes and errno.  Messages are opaque bytes here; the callers encode
 * them with protobuf-c.
 *
 * Every client call has a deadline: a unary call the channel's timeout, a
 * stream the timeout for each message (a stalled peer fails with
 * -ETIMEDOUT, never hangs).  Channels reconnect by themselves: a call while
 * the server is down fails at once with -ECONNREFUSED, the next one after
 * it is back succeeds. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"

/* Largest message either side receives (RESOURCE_EXHAUSTED above it). */
#define RPC_MAX_MESSAGE (16u << 20)

/* gRPC status codes (the same numbers as grpc/status.h). */
enum rpc_status {
        RPC_OK = 0,
        RPC_CANCELLED = 1,
        RPC_UNKNOWN = 2,
        RPC_INVALID_ARGUMENT = 3,
        RPC_DEADLINE_EXCEEDED = 4,
        RPC_NOT_FOUND = 5,
        RPC_ALREADY_EXISTS = 6,
        RPC_PERMISSION_DENIED = 7,
        RPC_RESOURCE_EXHAUSTED = 8,
        RPC_FAILED_PRECONDITION = 9,
        RPC_ABORTED = 10,
        RPC_OUT_OF_RANGE = 11,
        RPC_UNIMPLEMENTED = 12,
        RPC_INTERNAL = 13,
        RPC_UNAVAILABLE = 14,
        RPC_DATA_LOSS = 15,
};

/* NOT_FOUND -ENOENT, INVALID_ARGUMENT -EINVAL, RESOURCE_EXHAUSTED -E2BIG,
 * DEADLINE_EXCEEDED -ETIMEDOUT, UNAVAILABLE -ECONNREFUSED, UNIMPLEMENTED
 * -EOPNOTSUPP, DATA_LOSS -EBADMSG, others -EIO. */
int rpc_status_to_errno(enum rpc_status s);
enum rpc_status rpc_errno_to_status(int r);
const char *rpc_status_name(enum rpc_status s);

/* An address as snix spells it, turned into a gRPC target:
 * grpc+unix:///abs/path -> "unix:/abs/path" (a host is invalid),
 * grpc+http://host:port -> "host:port".  *ret malloc'ed; -EINVAL (with
 * *ret_why) for anything else. */
int rpc_target_from_url(const char *url, char **ret, const char **ret_why);

/* ---- client ---- */

struct rpc_channel;
struct rpc_stream;
struct rpc_upload;

/* target: from rpc_target_from_url.  timeout_ms: each call's deadline. */
int rpc_channel_new(const char *target, unsigned timeout_ms, struct rpc_channel **ret);
void rpc_channel_free(struct rpc_channel *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rpc_channel *, rpc_channel_free);
const char *rpc_channel_target(const struct rpc_channel *c);

/* One request, one reply (malloc'ed into *ret).  A status other than OK
 * is returned as -errno (rpc_status_to_errno), its message logged at
 * debug level. */
int rpc_unary(struct rpc_channel *c, const char *method, const void *req, size_t req_len, uint8_t **ret,
              size_t *ret_len);

/* A server stream: the request goes out with the open; next gives 1 and a
 * message (malloc'ed), 0 at the end of an OK stream, or -errno. */
int rpc_stream_open(struct rpc_channel *c, const char *method, const void *req, size_t req_len,
                    struct rpc_stream **ret);
int rpc_stream_next(struct rpc_stream *s, uint8_t **ret, size_t *ret_len);
/* Cancels the call if it has not ended. */
void rpc_stream_close(struct rpc_stream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rpc_stream *, rpc_stream_close);

/* A client stream: send messages, then finish for the one reply (frees
 * u whatever the outcome); cancel drops the call. */
int rpc_upload_open(struct rpc_channel *c, const char *method, struct rpc_upload **ret);
int rpc_upload_send(struct rpc_upload *u, const void *msg, size_t len);
int rpc_upload_finish(struct rpc_upload *u, uint8_t **ret, size_t *ret_len);
void rpc_upload_cancel(struct rpc_upload *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rpc_upload *, rpc_upload_cancel);

/* ---- server ---- */

struct rpc_server;
struct rpc_call;

/* A handler runs on its own thread.  It reads requests with
 * rpc_call_recv, answers with rpc_call_send, and returns 0 for OK or the
 * value of rpc_call_fail (or a bare -errno, mapped by
 * rpc_errno_to_status). */
typedef int (*rpc_handler)(struct rpc_call *c, void *userdata);

int rpc_server_new(struct rpc_server **ret);
/* method: "/package.Service/Method".  Before rpc_server_start. */
int rpc_server_add_method(struct rpc_server *s, const char *method, rpc_handler h, void *userdata);
/* url: grpc+unix:///abs/path (created with mode 0600 unless mode is given)
 * or grpc+http://host:port.  Before rpc_server_start. */
int rpc_server_listen(struct rpc_server *s, const char *url, unsigned mode);
int rpc_server_start(struct rpc_server *s);
/* Serves until rpc_server_stop; returns after every call has ended. */
int rpc_server_run(struct rpc_server *s);
/* From any thread (not a signal handler): refuse new calls, cancel the
 * running ones, make rpc_server_run return. */
void rpc_server_stop(struct rpc_server *s);
void rpc_server_free(struct rpc_server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rpc_server *, rpc_server_free);

/* 1 and a message (malloc'ed), 0 once the client has half-closed, -errno
 * (the client went away). */
int rpc_call_recv(struct rpc_call *c, uint8_t **ret, size_t *ret_len);
int rpc_call_send(struct rpc_call *c, const void *msg, size_t len);
/* Sets the status the call ends with and returns -errno for it, so a
 * handler can `return rpc_call_fail(c, RPC_NOT_FOUND, "...")`. */
int rpc_call_fail(struct rpc_call *c, enum rpc_status status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
const char *rpc_call_method(const struct rpc_call *c);
