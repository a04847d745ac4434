/* What the two directions of binary cache copying share (nixcache.c
 * reads, nixcache_write.c writes): the cache handle and the libcurl setup
 * (libcurl's codes map to errno in util/http_errno.h).  Not a public API. */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "store/nixcache.h"
#include "util/hashmap.h"

struct nix_cache {
        char *base; /* a directory (file://) or a URL prefix without trailing '/' */
        char *shown; /* base for messages: an http(s) URL without its credentials */
        bool http;
        bool has_info; /* nix-cache-info was found (and names /nix/store) */
};

/* A curl handle for url with the settings every transfer uses (no
 * signals, redirects followed, a connect timeout, and a transfer that
 * makes no progress for a minute fails).  NULL: out of memory. */
CURL *nix_cache_curl_new(const char *url);

/* Reads the small cache file rel (at most max bytes) whole:
 * malloc'ed, NUL-terminated.  -ENOENT when the cache has none, -EFBIG. */
int nix_cache_read_small(struct nix_cache *c, const char *rel, size_t max, char **ret, size_t *ret_len);

/* The store paths a closure walk has visited (one thread owns it). */
struct nix_path_set {
        struct hashmap map; /* entries: malloc'ed NIX_DIGEST_LEN-byte digests */
};

void nix_path_set_init(struct nix_path_set *s);
void nix_path_set_done(struct nix_path_set *s);
/* Marks p visited: 1 if it was new, 0 if seen before, -ENOMEM. */
int nix_path_set_add(struct nix_path_set *s, const struct nix_store_path *p);
/* A closure walk's step onto p at depth: abs gets p's absolute path; 1 if
 * p is new, 0 if seen before, -ELOOP (logged) past a depth of 4096,
 * -ENOMEM. */
int nix_path_set_visit(struct nix_path_set *s, const struct nix_store_path *p, unsigned depth,
                       char abs[NIX_PATH_MAX + 1]);
