/* The binary cache's HTTP/1.1 transport (httpcache.h) on libmicrohttpd,
 * the only file that includes it.  libmicrohttpd parses requests, keeps
 * connections alive and times them out; a thread per connection means a
 * slow or vanished client holds up only its own thread.  Requests map
 * onto store/cache_serve.h:
 *   GET|HEAD /nix-cache-info
 *   GET|HEAD /<hash32>.narinfo
 *   GET|HEAD /nar/<narhash32>.nar     (Range: bytes=a-b, a-, -n)
 *   HEAD     /nar/<upload name>       (200 while the upload is pending)
 *   PUT      /nar/<name>.nar[.xz|.zst|.bz2|.br], /<hash32>.narinfo,
 *            /nix-cache-info (accepted, ignored) */
#include "transport/httpcache.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/io.h"
#include "util/log.h"

/* Largest body of a PUT other than a NAR. */
#define SMALL_BODY_MAX NIX_NARINFO_MAX

struct httpcache {
        struct nix_serve *serve;
        struct MHD_Daemon *daemon;
        int fd;
        char url[128];
};

enum put_kind { PUT_NONE, PUT_NAR, PUT_NARINFO, PUT_IGNORED };

/* One request, from its first call to the completion callback. */
struct request {
        enum put_kind put;
        struct nix_upload *upload; /* PUT_NAR while the body arrives */
        int upload_r;              /* the first feeding error */
        char *body;                /* PUT_NARINFO: the body so far */
        size_t body_len;
        bool too_big;
        unsigned status;           /* the response queued (0: none yet), for the log line */
        uint64_t length;           /* response body length, for the log line */
        char *line;                /* "METHOD URL", for the log line */
};

/* A NAR being sent: its stream, started at the first read (a HEAD never reads). */
struct nar_response {
        struct nix_serve *serve;
        struct nix_pathinfo *pi;
        uint64_t offset, length;
        struct nar_stream *stream;
        bool failed;
};

static const char *strna(const char *s) {
        return s ? s : "?";
}

/* ---- responses ---- */

static enum MHD_Result reply(struct MHD_Connection *c, struct request *rq, unsigned status, struct MHD_Response *resp,
                             const char *type) {
        enum MHD_Result ret;

        if (!resp)
                return MHD_NO; /* out of memory: MHD closes the connection */
        if (type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        rq->status = status;
        ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* A text body (copied). */
static enum MHD_Result reply_text(struct MHD_Connection *c, struct request *rq, unsigned status, const char *text,
                                  size_t len, const char *type) {
        rq->length = len;
        return reply(c, rq, status, MHD_create_response_from_buffer(len, (void *) text, MHD_RESPMEM_MUST_COPY),
                     type);
}

/* An error status with a one-line reason. */
static enum MHD_Result reply_error(struct MHD_Connection *c, struct request *rq, unsigned status, const char *why) {
        char line[512];
        int n = snprintf(line, sizeof(line), "%s\n", why);

        return reply_text(c, rq, status, line, (size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1,
                          "text/plain");
}

/* The status and reason of a library error. */
static enum MHD_Result reply_errno(struct MHD_Connection *c, struct request *rq, int r, const char *why) {
        unsigned status;

        switch (r) {
        case -ENOENT:
                status = MHD_HTTP_NOT_FOUND;
                break;
        case -EINVAL:
        case -EBADMSG:
                status = MHD_HTTP_BAD_REQUEST;
                break;
        case -EPERM:
        case -EACCES:
                status = MHD_HTTP_FORBIDDEN;
                break;
        default:
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
        if (!why)
                why = r == -ENOENT ? "not found" : r == -EINVAL ? "malformed name" : strerror(-r);
        return reply_error(c, rq, status, why);
}

static ssize_t nar_reader(void *cls, uint64_t pos, char *buf, size_t max) {
        struct nar_response *nr = cls;
        char name[NIX_BASENAME_MAX + 1];
        ssize_t n;
        int r;

        (void) pos;
        if (nr->failed)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        if (!nr->stream) {
                r = nix_serve_nar_open(nr->serve, nr->pi, nr->offset, nr->length, &nr->stream);
                if (r < 0) {
                        nix_store_path_basename(&nr->pi->path, name);
                        log_warning_errno(r, "Cannot render the NAR of %s: %m", name);
                        nr->failed = true;
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                }
        }
        n = nar_stream_read(nr->stream, buf, max);
        if (n > 0)
                return n;
        if (n == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        /* never padded: the client sees the response cut short */
        nix_store_path_basename(&nr->pi->path, name);
        log_warning_errno((int) n, "NAR of %s cut short, connection closed: %m", name);
        nr->failed = true;
        return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void nar_response_free(void *cls) {
        struct nar_response *nr = cls;

        nar_stream_free(nr->stream);
        nix_pathinfo_free(nr->pi);
        free(nr);
}

/* Parses a Range header against size: 1 with the window, 0 to ignore it
 * (absent, malformed, several ranges: the whole NAR is sent), -ERANGE
 * when unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *ret_offset, uint64_t *ret_length) {
        unsigned long long a = 0, b = 0;
        bool has_a, has_b;
        char *end;

        if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
                return 0;
        h += 6;
        has_a = *h >= '0' && *h <= '9';
        if (has_a) {
                errno = 0;
                a = strtoull(h, &end, 10);
                if (errno)
                        return 0;
                h = end;
        }
        if (*h++ != '-')
                return 0;
        has_b = *h >= '0' && *h <= '9';
        if (has_b) {
                errno = 0;
                b = strtoull(h, &end, 10);
                if (errno)
                        return 0;
                h = end;
        }
        if (*h != 0 || (!has_a && !has_b) || (has_a && has_b && b < a))
                return 0;
        if (!has_a) { /* the last b bytes */
                if (b == 0 || size == 0)
                        return -ERANGE;
                *ret_offset = b >= size ? 0 : size - b;
        } else {
                if (a >= size)
                        return -ERANGE;
                *ret_offset = a;
                if (has_b && b < size)
                        size = b + 1;
        }
        *ret_length = size - *ret_offset;
        return 1;
}

static enum MHD_Result serve_nar(struct MHD_Connection *c, struct request *rq, struct nix_serve *s, const char *name,
                                 bool head) {
        _cleanup_(nix_pathinfo_freep) struct nix_pathinfo *pi = NULL;
        struct nar_response *nr;
        struct MHD_Response *resp;
        uint64_t offset = 0, length, file_size;
        unsigned status = MHD_HTTP_OK;
        char range[96];
        int r;

        r = nix_serve_nar_lookup(s, name, &pi);
        if (r < 0 && head && nix_serve_upload_pending(s, name, &file_size) > 0)
                return reply_text(c, rq, MHD_HTTP_OK, "", 0, "application/x-nix-nar");
        if (r < 0)
                return reply_errno(c, rq, r == -EINVAL ? -ENOENT : r, NULL);
        length = pi->nar_size;
        r = parse_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE), pi->nar_size,
                        &offset, &length);
        if (r == -ERANGE) {
                snprintf(range, sizeof(range), "bytes */%" PRIu64, pi->nar_size);
                resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
                if (resp)
                        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, range);
                return reply(c, rq, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp, NULL);
        }
        nr = calloc(1, sizeof(*nr));
        if (!nr)
                return MHD_NO;
        *nr = (struct nar_response){ .serve = s, .pi = TAKE_PTR(pi), .offset = offset, .length = length };
        resp = MHD_create_response_from_callback(length, 256 * 1024, nar_reader, nr, nar_response_free);
        if (!resp) {
                nar_response_free(nr);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        if (r > 0) {
                snprintf(range, sizeof(range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, offset,
                         offset + length - 1, nr->pi->nar_size);
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, range);
                status = MHD_HTTP_PARTIAL_CONTENT;
        }
        rq->length = length;
        return reply(c, rq, status, resp, "application/x-nix-nar");
}

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcmp(s + n - k, suffix) == 0;
}

static enum MHD_Result serve_get(struct MHD_Connection *c, struct request *rq, struct nix_serve *s, const char *url,
                                 bool head) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        if (strcmp(url, "/nix-cache-info") == 0) {
                r = nix_serve_cache_info(s, &text, &len);
                if (r < 0)
                        return reply_errno(c, rq, r, NULL);
                return reply_text(c, rq, MHD_HTTP_OK, text, len, "text/x-nix-cache-info");
        }
        if (strncmp(url, "/nar/", 5) == 0)
                return serve_nar(c, rq, s, url + 5, head);
        if (ends_with(url, ".narinfo") && !strchr(url + 1, '/')) {
                r = nix_serve_narinfo(s, url + 1, strlen(url + 1) - strlen(".narinfo"), &text, &len);
                if (r < 0)
                        return reply_errno(c, rq, r, NULL);
                return reply_text(c, rq, MHD_HTTP_OK, text, len, "text/x-nix-narinfo");
        }
        return reply_error(c, rq, MHD_HTTP_NOT_FOUND, "not found");
}

/* ---- uploads ---- */

/* The first call of a PUT: decides what its body is.  A response queued
 * here (a refusal) means the body is never read. */
static enum MHD_Result put_begin(struct MHD_Connection *c, struct request *rq, struct nix_serve *s,
                                 const char *url) {
        int r;

        if (strcmp(url, "/nix-cache-info") == 0) {
                rq->put = PUT_IGNORED;
                return MHD_YES;
        }
        if (strncmp(url, "/nar/", 5) == 0) {
                r = nix_serve_upload_begin(s, url + 5, &rq->upload);
                if (r == -EPERM)
                        return reply_error(c, rq, MHD_HTTP_FORBIDDEN, "uploads are not allowed here");
                if (r == -EINVAL)
                        return reply_error(c, rq, MHD_HTTP_BAD_REQUEST, "not a NAR file name (.nar[.xz|.zst|.bz2|.br])");
                if (r < 0)
                        return reply_errno(c, rq, r, NULL);
                rq->put = PUT_NAR;
                return MHD_YES;
        }
        if (ends_with(url, ".narinfo") && !strchr(url + 1, '/')) {
                rq->put = PUT_NARINFO;
                return MHD_YES;
        }
        return reply_error(c, rq, MHD_HTTP_NOT_FOUND, "nothing to upload here");
}

static void put_data(struct request *rq, const char *data, size_t len) {
        char *b;

        switch (rq->put) {
        case PUT_NAR:
                if (rq->upload_r >= 0)
                        rq->upload_r = nix_upload_write(rq->upload, data, len);
                break; /* after a failure the rest is read and dropped */
        case PUT_NARINFO:
                if (rq->too_big || rq->body_len + len > SMALL_BODY_MAX) {
                        rq->too_big = true;
                        break;
                }
                b = realloc(rq->body, rq->body_len + len);
                if (!b) {
                        rq->too_big = true;
                        break;
                }
                memcpy(b + rq->body_len, data, len);
                rq->body = b;
                rq->body_len += len;
                break;
        default:
                break;
        }
}

static enum MHD_Result put_end(struct MHD_Connection *c, struct request *rq, struct nix_serve *s, const char *url) {
        const char *why = NULL;
        int r;

        switch (rq->put) {
        case PUT_NAR:
                r = nix_upload_finish(TAKE_PTR(rq->upload), &why);
                if (r < 0)
                        return reply_errno(c, rq, r, why);
                return reply_text(c, rq, MHD_HTTP_OK, "", 0, NULL);
        case PUT_NARINFO:
                if (rq->too_big)
                        return reply_error(c, rq, MHD_HTTP_CONTENT_TOO_LARGE, "narinfo too large");
                r = nix_serve_upload_narinfo(s, url + 1, strlen(url + 1) - strlen(".narinfo"), rq->body ? rq->body : "",
                                             rq->body_len, &why);
                if (r < 0)
                        return reply_errno(c, rq, r, why);
                return reply_text(c, rq, MHD_HTTP_OK, "", 0, NULL);
        default:
                return reply_text(c, rq, MHD_HTTP_OK, "", 0, NULL);
        }
}

/* ---- libmicrohttpd's callbacks ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct httpcache *h = cls;
        struct request *rq = *con_cls;
        bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;

        (void) version;
        if (!rq) {
                rq = calloc(1, sizeof(*rq));
                if (!rq)
                        return MHD_NO;
                *con_cls = rq;
                if (asprintf(&rq->line, "%s %s", method, url) < 0)
                        rq->line = NULL;
                return put ? put_begin(c, rq, h->serve, url) : MHD_YES;
        }
        if (rq->status != 0) {
                /* refused at the first call: the rest of the body is dropped */
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (put && *upload_data_size > 0) {
                put_data(rq, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (put)
                return put_end(c, rq, h->serve, url);
        if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
                return serve_get(c, rq, h->serve, url, strcmp(method, MHD_HTTP_METHOD_HEAD) == 0);
        return reply_error(c, rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        struct request *rq = *con_cls;
        char addr[INET6_ADDRSTRLEN] = "?";

        (void) cls;
        if (!rq)
                return;
        if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                const void *a = sa->sa_family == AF_INET6 ? (const void *) &((const struct sockaddr_in6 *) sa)->sin6_addr
                                                          : (const void *) &((const struct sockaddr_in *) sa)->sin_addr;
                inet_ntop(sa->sa_family, a, addr, sizeof(addr));
        }
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
                log_debug("%s \"%s\" %u %" PRIu64, addr, strna(rq->line), rq->status, rq->length);
        else
                log_debug("%s \"%s\" %u %" PRIu64 " not completed (%s)", addr, strna(rq->line), rq->status,
                          rq->length, toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                                      : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client gone" : "error");
        nix_upload_free(rq->upload); /* a client gone mid-upload */
        free(rq->body);
        free(rq->line);
        free(rq);
        *con_cls = NULL;
}

/* libmicrohttpd's own messages: its format strings */
_printf_(2, 0) static void on_mhd_error(void *cls, const char *fmt, va_list ap) {
        char line[512];

        (void) cls;
        vsnprintf(line, sizeof(line), fmt, ap);
        line[strcspn(line, "\n")] = 0;
        log_warning("HTTP: %s", line);
}

/* ---- listening ---- */

/* Splits "HOST:PORT" / "[V6]:PORT" and binds a listening socket. */
static int listen_on(const char *addr, int *ret_fd) {
        _cleanup_free_ char *host = NULL;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai = NULL;
        const char *colon = strrchr(addr, ':');
        int fd, r, one = 1;

        if (!colon || colon == addr || !colon[1])
                return log_error_errno(-EINVAL, "--listen %s: expected HOST:PORT", addr);
        if (addr[0] == '[' && colon[-1] == ']')
                host = strndup(addr + 1, (size_t) (colon - addr - 2));
        else
                host = strndup(addr, (size_t) (colon - addr));
        if (!host)
                return -ENOMEM;
        r = getaddrinfo(host, colon + 1, &hints, &ai);
        if (r != 0)
                return log_error_errno(-EINVAL, "--listen %s: %s", addr, gai_strerror(r));
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
                r = negative_errno();
                freeaddrinfo(ai);
                return log_error_errno(r, "--listen %s: cannot create a socket: %m", addr);
        }
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
                r = negative_errno();
                freeaddrinfo(ai);
                close(fd);
                return log_error_errno(r, "--listen %s: cannot listen: %m", addr);
        }
        freeaddrinfo(ai);
        *ret_fd = fd;
        return 0;
}

static void format_url(int fd, char *ret, size_t size) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;

        if (getsockname(fd, (struct sockaddr *) &ss, &len) == 0) {
                if (ss.ss_family == AF_INET6) {
                        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
                        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                        port = ntohs(in6->sin6_port);
                        snprintf(ret, size, "http://[%s]:%u", host, port);
                        return;
                }
                const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                port = ntohs(in->sin_port);
        }
        snprintf(ret, size, "http://%s:%u", host, port);
}

int httpcache_new(struct nix_serve *s, const char *addr, struct httpcache **ret) {
        _cleanup_(httpcache_stopp) struct httpcache *h = NULL;
        int r;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->serve = s;
        h->fd = -1;
        r = listen_on(addr, &h->fd);
        if (r < 0)
                return r;
        format_url(h->fd, h->url, sizeof(h->url));
        *ret = TAKE_PTR(h);
        return 0;
}

int httpcache_start(struct httpcache *h) {
        h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                             MHD_USE_POLL | MHD_USE_ERROR_LOG,
                                     0, NULL, NULL, on_request, h,
                                     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, h,
                                     MHD_OPTION_LISTEN_SOCKET, (MHD_socket) h->fd,
                                     MHD_OPTION_CONNECTION_LIMIT, (unsigned) HTTPCACHE_CONNECTIONS_MAX,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) HTTPCACHE_TIMEOUT_SECONDS,
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                     MHD_OPTION_END);
        if (!h->daemon)
                return log_error_errno(-EIO, "Cannot start the HTTP server on %s", h->url);
        h->fd = -1; /* libmicrohttpd closes it when it stops */
        return 0;
}

const char *httpcache_url(const struct httpcache *h) {
        return h->url;
}

void httpcache_stop(struct httpcache *h) {
        if (!h)
                return;
        if (h->daemon)
                MHD_stop_daemon(h->daemon);
        if (h->fd >= 0)
                close(h->fd);
        free(h);
}
