/* A Nix binary cache over HTTP/1.1: the requests of store/cache_serve.h
 * served with libmicrohttpd, a thread per connection. */
#pragma once

#include "store/cache_serve.h"

struct httpcache;

/* Connections served at once; more wait in the listen queue's backlog or
 * are refused. */
#define HTTPCACHE_CONNECTIONS_MAX 256
/* A connection idle this long (no request, no progress sending or
 * receiving) is closed. */
#define HTTPCACHE_TIMEOUT_SECONDS 60

/* Listens on addr ("HOST:PORT", "[V6ADDR]:PORT"; port 0: any free one)
 * for s (which must outlive the server); serving starts with
 * httpcache_start, so that a process can confine itself in between.
 * -EINVAL for a bad address, -errno from socket calls.  Logged. */
int httpcache_new(struct nix_serve *s, const char *addr, struct httpcache **ret);

/* Serves on threads of its own.  0, or -EIO if libmicrohttpd cannot start
 * (logged). */
int httpcache_start(struct httpcache *h);

/* "http://HOST:PORT", the address actually bound. */
const char *httpcache_url(const struct httpcache *h);

/* Stops listening, closes every connection and waits for their threads.
 * NULL is fine. */
void httpcache_stop(struct httpcache *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct httpcache *, httpcache_stop);
