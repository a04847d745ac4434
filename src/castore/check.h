/* The store checker: re-hashes every blob and directory of a store, checks
 * that every reference (directory -> blob, directory -> directory, named
 * root -> node) resolves with the size it claims, and reports each corrupt
 * or missing object through a callback.  Upper layers (the Nix PathInfos,
 * src/store/check.h) add their checks as layers that report through the
 * same checker. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "castore/store.h"

enum cas_problem_kind {
        CAS_PROBLEM_BLOB_CORRUPT = 1, /* content does not hash to the blob's digest */
        CAS_PROBLEM_BLOB_UNREADABLE,  /* a blob cannot be read (error says why) */
        CAS_PROBLEM_BLOB_MISSING,     /* a referenced blob is absent */
        CAS_PROBLEM_BLOB_SIZE,        /* a referenced blob has another size than the reference says */
        CAS_PROBLEM_DIR_CORRUPT,      /* a directory record does not decode, hashes to another digest,
                                       * is not canonical, or has a wrong stored size */
        CAS_PROBLEM_DIR_MISSING,      /* a referenced directory is absent */
        CAS_PROBLEM_DIR_UNREADABLE,   /* a referenced directory cannot be read (error says why) */
        CAS_PROBLEM_DIR_SIZE,         /* a referenced directory is larger than the reference claims */
        CAS_PROBLEM_CORRUPT_RECORDS,  /* a database listing skipped corrupt records (name: which
                                       * database; each record was logged) */
        /* Upper layers number their own kinds from here (NIX_PROBLEM_*). */
        CAS_PROBLEM_LAYER_BASE = 100,
};

/* One problem, valid during the callback only. */
struct cas_problem {
        int kind;                 /* enum cas_problem_kind, or an upper layer's */
        bool has_digest;
        struct cas_digest digest; /* the blob or directory at fault, if has_digest */
        const char *name;         /* the named object at fault (store path, database), or NULL */
        const char *referrer;     /* where the bad reference was found, e.g. `entry "f" of directory
                                   * b3:...`, `root "v"`, `store path /nix/store/...`; or NULL */
        int error;                /* *_UNREADABLE: the -errno; else 0 */
        bool repaired;            /* the repair option removed the object */
        const char *message;      /* all of the above as one line (no newline): what verify prints */
};

/* Called once per problem.  Calls are serialised (never two at once) but
 * may come from any of the checker's threads. */
typedef void (*cas_problem_fn)(void *userdata, const struct cas_problem *p);

struct cas_checker;

/* A check of an upper layer, run after castore's own; it reports through
 * c (cas_check_report, cas_check_node).  A negative return stops the
 * check with that error. */
struct cas_check_layer {
        int (*run)(struct cas_checker *c, void *userdata);
        void *userdata;
};

struct cas_check_opts {
        /* Remove blobs whose content does not hash to their digest: a blob
         * that rotted in place keeps its size, so a writer finding it would
         * store nothing; removed, the next import of a tree holding it
         * stores it again.  The store's blob service must allow removal. */
        bool repair;
        unsigned threads;                    /* blob hashing workers; 0: one per CPU */
        bool progress;                       /* a progress line on stderr (util/progress.h) */
        const struct cas_check_layer *layers; /* run in order after castore's checks */
        size_t n_layers;
};

struct cas_check_stats {
        uint64_t blobs, directories, roots; /* objects checked */
        uint64_t problems;                  /* problems reported, layers' included */
};

/* Checks store: every blob (hashed by a worker pool as it is listed),
 * every directory record (decoding, digest, canonical encoding, stored
 * size, references), every named root, then the layers.  Problems go to
 * fn; a database listing that skipped corrupt records is one problem
 * (CAS_PROBLEM_CORRUPT_RECORDS), and the check goes on.
 *
 * Returns 0 when the check ran to its end, whatever it found (see
 * ret_stats->problems, filled in any case); -errno when it could not
 * (a listing failed, out of memory, a layer's error), logged.  Memory
 * grows with the number of corrupt blobs, not with the store. */
int cas_check_store(struct cas_store *store, const struct cas_check_opts *opts, cas_problem_fn fn, void *userdata,
                    struct cas_check_stats *ret_stats);

/* ---- for layers ---- */

struct cas_store *cas_checker_store(struct cas_checker *c);

/* Reports a problem: p's fields as given, its message formatted from
 * fmt.  Thread-safe. */
void cas_check_report(struct cas_checker *c, const struct cas_problem *p, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Checks that the node a record refers to is present with the size it
 * claims (a directory: at least as large as claimed; a file: exactly);
 * referrer says where the reference was found.  A blob already reported
 * corrupt or unreadable, or a directory whose own record is corrupt, is
 * not reported again. */
void cas_check_node(struct cas_checker *c, const struct cas_node *n, const char *referrer);

/* For a layer's listing that skips corrupt records and then fails with
 * -EBADMSG: reports one CAS_PROBLEM_CORRUPT_RECORDS problem for the
 * database called what and returns 0.  Other errors are logged and
 * returned. */
int cas_check_listed(struct cas_checker *c, int r, const char *what);
