/* BLAKE3 verified streaming: a blob's outboard is the chaining values of
 * its 16 KiB groups, from which any byte range can be checked against the
 * blob's digest by hashing only the groups the range covers.  The format
 * is documented in docs/OUTBOARD.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "castore/digest.h"

#define CAS_GROUP_SHIFT 14
#define CAS_GROUP_SIZE (1u << CAS_GROUP_SHIFT) /* 16 BLAKE3 chunks */
#define CAS_CV_LEN 32

/* Number of groups of a blob of `size` bytes; a blob of at most one group
 * (including the empty blob) has no outboard and is verified whole. */
static inline uint64_t cas_outboard_groups(uint64_t size) {
        return size <= CAS_GROUP_SIZE ? 0 : (size + CAS_GROUP_SIZE - 1) >> CAS_GROUP_SHIFT;
}

/* Bytes of the outboard of a blob of `size` bytes: 32 per group. */
static inline uint64_t cas_outboard_len(uint64_t size) {
        return cas_outboard_groups(size) * CAS_CV_LEN;
}

/* Length of group `g` of a blob of `size` bytes (the last one may be short). */
static inline size_t cas_group_len(uint64_t size, uint64_t g) {
        uint64_t start = g << CAS_GROUP_SHIFT;

        return size - start < CAS_GROUP_SIZE ? (size_t) (size - start) : CAS_GROUP_SIZE;
}

/* The chaining values of `n` consecutive groups starting at group `g`
 * (group g's data at data[0], each full but possibly the last, which ends
 * at data + len): the non-root CV of each group's subtree.  n * CAS_CV_LEN
 * bytes go to ret.  Uses the SIMD chunk hasher over all chunks at once. */
void cas_group_cvs(const uint8_t *data, size_t len, uint64_t g, uint8_t *ret);

/* Merges the outboard's n >= 2 group CVs into the blob's root digest,
 * following BLAKE3's tree shape.  An outboard is trusted only if this
 * equals the blob's digest (then every CV in it is authentic). */
void cas_outboard_root(const uint8_t *cvs, uint64_t n, struct cas_digest *ret);

/* Checks n groups read from a blob of `size` bytes starting at group g
 * against their trusted CVs: 0 or -EBADMSG. */
int cas_groups_verify(const uint8_t *data, size_t len, uint64_t g, const uint8_t *trusted_cvs);

/* Computes the outboard of a whole in-memory blob (cas_outboard_len(len)
 * bytes to ret). */
void cas_outboard_of(const uint8_t *data, size_t len, uint8_t *ret);

/* Hashes a stream into its digest and, for blobs of more than one group,
 * its outboard, in one pass (a blob writer's hasher).  Not thread-safe. */
struct cas_outboard_builder {
        uint8_t part[CAS_GROUP_SIZE]; /* the group being filled */
        size_t part_len;
        uint64_t groups;              /* CVs done */
        uint8_t *cvs;                 /* groups * CAS_CV_LEN, cap bytes */
        size_t cap;
        int error;                    /* -ENOMEM, reported by final */
};

void cas_outboard_builder_init(struct cas_outboard_builder *b);
void cas_outboard_builder_update(struct cas_outboard_builder *b, const void *data, size_t len);
/* The digest, and the outboard (malloc'ed, NULL with length 0 for a blob
 * of one group or less).  0 or -ENOMEM.  Frees the builder's memory. */
int cas_outboard_builder_final(struct cas_outboard_builder *b, struct cas_digest *ret, uint8_t **ret_ob,
                               size_t *ret_len);
/* Frees the builder's memory without a result. */
void cas_outboard_builder_done(struct cas_outboard_builder *b);
