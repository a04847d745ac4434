/* The figures of `castore info`: the castore usage (castore/usage.h) plus
 * the Nix layer's PathInfos and the dedup ratio's numerator, the file
 * bytes of every registered tree. */
#pragma once

#include "castore/usage.h"
#include "store/pathinfosvc.h"

struct nix_store_info {
        struct cas_usage cas;
        uint64_t store_paths; /* PathInfos */
        uint64_t nar_bytes;   /* their NAR sizes added up */
        /* The distinct trees named by roots and store paths (a root and
         * the store path of the same import are one tree; so are two
         * names of one tree) and the sizes of the files in them, each
         * occurrence counted (cas_tree_bytes).  tree_bytes / cas.blob_bytes
         * is the dedup ratio. */
        uint64_t trees;
        uint64_t tree_bytes;
};

/* Fills *ret; pis may be NULL (no store paths).  Errors as
 * cas_store_usage: -EBADMSG (corrupt records skipped, *ret filled all the
 * same), -EOPNOTSUPP (a backend that cannot list), -ENOENT (a directory of
 * a registered tree is missing), a service's error.  Logs nothing of its
 * own.  Reads a moving store: figures taken while an import runs may not
 * add up. */
int nix_store_info(struct cas_store *store, struct nix_pathinfo_service *pis, struct nix_store_info *ret);
