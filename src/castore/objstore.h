/* Object stores: named byte strings put, got, listed and removed whole,
 * the layer under the object-store blob service (blob_objstore.c).  One
 * ops table per transport: the file backend (file:///abs/path, objects as
 * files under the path) and memory:/// now, S3 (libcurl with SigV4) next:
 * the blob logic only sees these ops.  Keys are relative paths ("chunks/b3/ab12/ab12…"):
 * [A-Za-z0-9._-] segments separated by single '/', no segment starting
 * with '.'.  All operations are thread-safe. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "util/macro.h"

struct cas_objstore;

/* Called by list() for each key; a negative return stops the walk and is
 * returned by list(). */
typedef int (*cas_objstore_list_cb)(void *userdata, const char *key);

struct cas_objstore_ops {
        const char *name;
        /* Stores data under key, replacing any object there: atomically
         * (a reader sees the old object, none, or all of the new one) and
         * durably once it returns. */
        int (*put)(struct cas_objstore *o, const char *key, const void *data, size_t len);
        /* The whole object (malloc'ed; a 0-byte object gives a non-NULL
         * pointer), -ENOENT if absent, -EFBIG above max bytes. */
        int (*get)(struct cas_objstore *o, const char *key, size_t max, uint8_t **ret, size_t *ret_len);
        /* 0 and the object's size, or -ENOENT. */
        int (*head)(struct cas_objstore *o, const char *key, uint64_t *ret_size);
        /* Every key starting with prefix (a folder: "" or ending in '/'),
         * in no particular order. */
        int (*list)(struct cas_objstore *o, const char *prefix, cas_objstore_list_cb cb, void *userdata);
        /* -ENOENT if absent. */
        int (*remove)(struct cas_objstore *o, const char *key);
        void (*free)(struct cas_objstore *o);
};

/* Backends embed this first.  The counters are updated atomically by the
 * wrappers (no lock): tests use them to prove what a read fetched. */
struct cas_objstore {
        const struct cas_objstore_ops *ops;
        uint64_t n_get, get_bytes, n_head, n_put; /* atomic */
};

/* Opens url: file:///abs/path (the directory is created if missing) or
 * memory:/// (empty; objects live as long as the store, for tests).
 * options: NULL-terminated key, value pairs from the URL's query; a
 * backend refuses those it does not know (-EINVAL, logged, naming it). */
int cas_objstore_open(const char *url, const char *const *options, struct cas_objstore **ret);
int cas_objstore_file_new(const char *dir, struct cas_objstore **ret);
int cas_objstore_memory_new(struct cas_objstore **ret);

/* Wrappers: check the key, count, turn a NULL op into -EOPNOTSUPP. */
int cas_objstore_put(struct cas_objstore *o, const char *key, const void *data, size_t len);
int cas_objstore_get(struct cas_objstore *o, const char *key, size_t max, uint8_t **ret, size_t *ret_len);
int cas_objstore_head(struct cas_objstore *o, const char *key, uint64_t *ret_size);
int cas_objstore_list(struct cas_objstore *o, const char *prefix, cas_objstore_list_cb cb, void *userdata);
int cas_objstore_remove(struct cas_objstore *o, const char *key);
void cas_objstore_free(struct cas_objstore *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_objstore *, cas_objstore_free);

/* Whether key is well formed (see above). */
bool cas_objstore_key_valid(const char *key);
