/* The castore data model: nodes (directory, file, symlink) and Directory
 * messages, with canonical protobuf encoding, decoding and validation
 * (SPEC §1).  A struct cas_directory is immutable once built and may be
 * shared read-only between threads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"
#include "castore/digest.h"

#define CAS_NAME_MAX 255
#define CAS_TARGET_MAX 4095

enum cas_node_kind {
        CAS_NODE_DIRECTORY = 1,
        CAS_NODE_FILE = 2,
        CAS_NODE_SYMLINK = 3,
};

/* One entry of a Directory, or a root node.  Byte strings carry explicit
 * lengths; inside a struct cas_directory they are also NUL-terminated (NUL
 * is not allowed in names or targets).  Who owns name/target is said by
 * whoever hands the node out. */
struct cas_node {
        enum cas_node_kind kind;
        bool executable;          /* files only */
        uint16_t name_len;
        uint16_t target_len;      /* symlinks only */
        const char *name;
        const char *target;       /* symlinks only */
        struct cas_digest digest; /* directories and files */
        uint64_t size;            /* dirs: recursive entry count; files: bytes */
};

/* A validated Directory: entries of all three kinds merged into one array
 * sorted by name (names are unique across kinds, so the order is total),
 * plus the digest of its canonical encoding.  One allocation. */
struct cas_directory {
        struct cas_digest digest;
        uint64_t size;       /* len(entries) + sum of child directory sizes */
        size_t n_entries;
        size_t n_dirs, n_files, n_symlinks;
        struct cas_node *entries;
};

/* Why a message was refused; cas_verr_str() gives a sentence. */
enum cas_verr {
        CAS_VERR_NONE = 0,
        CAS_VERR_PROTOBUF,       /* not a parseable protobuf message */
        CAS_VERR_NAME_EMPTY,
        CAS_VERR_NAME_DOT,       /* "." or ".." */
        CAS_VERR_NAME_TOO_LONG,
        CAS_VERR_NAME_NUL,
        CAS_VERR_NAME_SLASH,
        CAS_VERR_UNSORTED,       /* a list is not strictly ascending */
        CAS_VERR_DUPLICATE,      /* same name in two lists */
        CAS_VERR_DIGEST_LEN,
        CAS_VERR_TARGET_EMPTY,
        CAS_VERR_TARGET_TOO_LONG,
        CAS_VERR_TARGET_NUL,
        CAS_VERR_SIZE_OVERFLOW,
        CAS_VERR_SIZE_MISMATCH,  /* claimed child size below (or, strict, != ) the real one */
        CAS_VERR_MISSING_CHILD,  /* a child directory is not in the store */
        CAS_VERR_NODE_EMPTY,     /* a Node message with no node set */
        _CAS_VERR_MAX,
};
const char *cas_verr_str(enum cas_verr v);

/* Flags for decoding and validation. */
enum {
        CAS_DECODE_STRICT_SIZE = 1 << 0, /* child sizes must be exact, not >= */
        CAS_NODE_ALLOW_EMPTY_NAME = 1 << 1, /* root nodes for CalculateNAR */
};

/* Validation of single fields.  Return CAS_VERR_NONE if valid. */
enum cas_verr cas_name_check(const char *name, size_t len);
enum cas_verr cas_target_check(const char *target, size_t len);

/* Builds a Directory from nodes in any order: copies names and targets,
 * sorts, validates (names, targets, uniqueness, size overflow) and computes
 * the digest.  Returns 0, -EBADMSG (with *ret_why set if non-NULL) or
 * -ENOMEM.  *ret is owned by the caller (cas_directory_free). */
int cas_directory_new(const struct cas_node *nodes, size_t n, struct cas_directory **ret,
                      enum cas_verr *ret_why);

/* Parses and validates an encoded Directory; the digest is computed from
 * our own canonical re-encoding, never from buf.  Unknown fields are
 * ignored (as upstream does).  Errors as cas_directory_new. */
int cas_directory_decode(const void *buf, size_t len, unsigned flags, struct cas_directory **ret,
                         enum cas_verr *ret_why);

/* Canonical protobuf encoding.  *ret_buf is malloc'ed, owned by the caller. */
int cas_directory_encode(const struct cas_directory *d, uint8_t **ret_buf, size_t *ret_len);

void cas_directory_free(struct cas_directory *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cas_directory *, cas_directory_free);

/* Binary search by name: the entry or NULL. */
const struct cas_node *cas_directory_find(const struct cas_directory *d, const char *name,
                                          size_t name_len);

/* Is a claimed child size acceptable for a child whose real size is
 * `actual`?  Lenient: claimed >= actual; strict: equal. */
static inline bool cas_size_ok(uint64_t claimed, uint64_t actual, unsigned flags) {
        return (flags & CAS_DECODE_STRICT_SIZE) ? claimed == actual : claimed >= actual;
}

/* Node messages (root nodes of named roots and PathInfo).  Decoding
 * validates the node (name unless CAS_NODE_ALLOW_EMPTY_NAME, digest length,
 * target).  The decoded node's strings live in *ret_mem (free() it). */
int cas_node_encode(const struct cas_node *n, uint8_t **ret_buf, size_t *ret_len);
int cas_node_decode(const void *buf, size_t len, unsigned flags, struct cas_node *ret,
                    void **ret_mem, enum cas_verr *ret_why);
enum cas_verr cas_node_check(const struct cas_node *n, unsigned flags);

/* Deep copy of a node into one allocation (*ret_mem holds the strings). */
int cas_node_copy(const struct cas_node *n, struct cas_node *ret, void **ret_mem);

/* Whether two nodes, names aside, describe the same content: kind, digest
 * and size (a directory's digest covers everything below it), the
 * executable bit of a file, the target of a symlink. */
bool cas_node_same_content(const struct cas_node *a, const struct cas_node *b);

int cas_name_compare(const char *a, size_t alen, const char *b, size_t blen);
