/* Importing into the store as a Nix store path, one library call per
 * workflow: a local tree (`castore import`: import into castore, NAR hash
 * of the source beside it, proof that both passes read the same tree,
 * registration as a named root and as the path nix-store --add gives) and
 * a NAR stream (`castore nar import`). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "castore/import.h"
#include "castore/store.h"
#include "store/nar.h"
#include "store/pathinfosvc.h"

struct nix_import_opts {
        /* threads, skip_special (for both passes), progress */
        struct cas_import_opts import;
        /* Replace a root of the same name whose content differs (without
         * it: -EEXIST, nothing registered). */
        bool replace;
        /* References of the store path: each must be registered in pis
         * (else -ENOENT, checked before anything is imported); the path
         * is then the one Nix gives a content-addressed path with these
         * references (nix_register_nar_refs).  self_reference: it refers
         * to itself too. */
        const struct nix_store_path *references;
        size_t n_references;
        bool self_reference;
        /* For tests: when set, the NAR pass does not run beside the import
         * but after it, on the calling thread, and this is called between
         * the two (a test changes the tree here to see the import refused).
         * Production callers leave it NULL. */
        void (*between_passes)(void *userdata);
        void *between_passes_userdata;
};

struct nix_import_result {
        /* The imported root, named by the name given (the pointer is the
         * caller's); a symlink's target lives in mem (free()). */
        struct cas_node root;
        void *mem;
        struct cas_import_stats stats;
        /* Registered as a Nix store path too (the NAR figures are those of
         * its PathInfo). */
        bool has_store_path;
        struct nix_store_path store_path;
        uint64_t nar_size;
        uint8_t nar_sha256[NIX_SHA256_LEN];
};

/* Imports the file, symlink or directory tree at path into store and
 * registers it as the named root name and, with pis, as the
 * content-addressed "source" store path called name that `nix-store --add
 * path` would print (PathInfo with the NAR size and hash, no references,
 * CA fixed:r:sha256).  opts may be NULL (defaults).
 *
 * The NAR hash is computed from the source, on a second thread while the
 * import runs (nar_hash_local: reading the tree again costs less than
 * rendering it from the store afterwards).  The store path is registered
 * only if that pass arrives at the same castore root node as the import,
 * which proves that the NAR hashed is the NAR of the tree imported.
 *
 * Returns 0 when registered; without pis, or when name is a valid root
 * name but not a valid store path name (a warning is logged), as the named
 * root only: ret->has_store_path says which.  -ELOOP (logged): the tree is
 * nested deeper than a NAR may be; it is registered as the named root only
 * and *ret is filled as on success.  Any other error leaves *ret owning
 * nothing.  Refusals register nothing (blobs and directories already
 * stored are harmless orphans): -ESTALE the tree changed between or during
 * the two passes, -EINVAL an invalid root name or a special file (without
 * skip_special), -EEXIST a root called name exists with other content
 * (unless opts->replace; the check and the put are not atomic, so a
 * racing import of the same name may still be replaced), an error of
 * either pass.  The PathInfo is put before the
 * named root, so a failing root put can leave the store path registered
 * without the root (both describe the complete, stored tree).  All errors
 * are logged.  Thread-safe as far as the services are. */
int nix_import_tree(struct cas_store *store, struct nix_pathinfo_service *pis, const char *path, const char *name,
                    const struct nix_import_opts *opts, struct nix_import_result *ret);

/* The store paths a JSON document names, as references for an import:
 * the output of `nix path-info --json` (an array of objects with a
 * "path"), or an exportReferencesGraph-style document (such an array, or
 * an object whose members are such arrays).  Every entry's "path", in
 * order.  An entry marked "valid": false is refused.  Returns 0 and a
 * malloc'ed array; -EBADMSG with *ret_why (a static sentence) for a
 * document of another shape or a malformed path; -ENOMEM. */
int nix_references_from_json(const char *buf, size_t len, struct nix_store_path **ret, size_t *ret_n,
                             const char **ret_why);

/* Ingests the NAR that read yields (nar_ingest: strict, streaming; flags
 * NAR_INGEST_*) and registers its tree as the content-addressed store path
 * called name, the path nix-store --add of that tree gives.  source names
 * the input in messages.  The name is checked before anything is read.
 * Returns 0 and *ret_path; -EINVAL an invalid name, -EBADMSG a malformed
 * NAR ("<source>: invalid NAR at byte N: why"), a read or service error:
 * then no PathInfo is registered (blobs already stored are harmless
 * orphans).  Errors are logged, one line each. */
int nix_import_nar(struct cas_store *store, struct nix_pathinfo_service *pis, const char *name, nar_read_fn read,
                   void *userdata, const char *source, unsigned flags, struct nix_store_path *ret_path);
