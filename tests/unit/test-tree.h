/* Building small trees in a store for unit tests: a file node whose
 * content is stored, a directory node whose Directory is stored. */
#pragma once

#include <string.h>

#include "castore/store.h"
#include "test.h"

static inline struct cas_node test_file_node(struct cas_store *s, const char *name, const void *content, size_t len) {
        struct cas_node n = { .kind = CAS_NODE_FILE, .name = name, .name_len = strlen(name), .size = len };

        CHECK_OK(cas_blob_put(s->blobs, content, len, 0, &n.digest));
        return n;
}

/* Stores a directory of the nodes given and returns its node named name. */
static inline struct cas_node test_dir_node(struct cas_store *s, const char *name, const struct cas_node *nodes,
                                            size_t n) {
        struct cas_directory *d;
        struct cas_node ret = { .kind = CAS_NODE_DIRECTORY, .name = name, .name_len = strlen(name) };

        CHECK_OK(cas_directory_new(nodes, n, &d, NULL));
        CHECK_OK(cas_dir_put(s->dirs, &d, 1, 0, NULL));
        ret.digest = d->digest;
        ret.size = d->size;
        cas_directory_free(d);
        return ret;
}
