/* Named roots: a registry of name -> root node (the root of an imported
 * tree).  What the filesystem root shows before the Nix layer adds store
 * paths.  Names follow the node name rules.  Backends: memory:// and LMDB.
 * Thread-safe. */
#pragma once

#include "util/macro.h"
#include "castore/directory.h"

struct cas_root_service;

/* Called in ascending name order; node is borrowed for the call. */
typedef int (*cas_root_list_cb)(void *userdata, const struct cas_node *n);

struct cas_root_ops {
        const char *name;
        /* *ret's strings live in *ret_mem (free()).  -ENOENT if absent. */
        int (*get)(struct cas_root_service *s, const char *name, size_t len, struct cas_node *ret,
                   void **ret_mem);
        /* Adds or replaces the root named n->name. */
        int (*put)(struct cas_root_service *s, const struct cas_node *n);
        int (*remove)(struct cas_root_service *s, const char *name, size_t len);
        int (*list)(struct cas_root_service *s, cas_root_list_cb cb, void *userdata);
        void (*free)(struct cas_root_service *s);
};

struct cas_root_service {
        const struct cas_root_ops *ops;
};

/* A valid Directory entry name without control characters (0x00-0x1f,
 * 0x7f).  Invalid names cannot be stored and are never found. */
bool cas_root_name_valid(const char *name, size_t len);

int cas_root_get(struct cas_root_service *s, const char *name, size_t len, struct cas_node *ret, void **ret_mem);
int cas_root_put(struct cas_root_service *s, const struct cas_node *n);
int cas_root_remove(struct cas_root_service *s, const char *name, size_t len);
int cas_root_list(struct cas_root_service *s, cas_root_list_cb cb, void *userdata);
void cas_root_service_free(struct cas_root_service *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_root_service *, cas_root_service_free);

int cas_root_memory_new(struct cas_root_service **ret);
struct cas_lmdb;
int cas_root_lmdb_new(struct cas_lmdb *db, struct cas_root_service **ret);
