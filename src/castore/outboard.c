/* BLAKE3 subtree chaining values for verified streaming, computed with the
 * official C implementation's internal compression functions (the same
 * SIMD chunk hasher that blake3_hasher uses). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blake3_impl.h"
#include "castore/outboard.h"
#include "util/macro.h"

#define CHUNKS_PER_GROUP (CAS_GROUP_SIZE / BLAKE3_CHUNK_LEN)
#define BATCH_GROUPS 16 /* groups hashed per hash_many call */

_Static_assert(CAS_GROUP_SIZE % BLAKE3_CHUNK_LEN == 0, "a group is whole chunks");
_Static_assert(CAS_CV_LEN == BLAKE3_OUT_LEN, "chaining values are 32 bytes");

static void parent_cv(const uint8_t *left, const uint8_t *right, uint8_t flags, uint8_t out[CAS_CV_LEN]) {
        uint8_t block[BLAKE3_BLOCK_LEN];
        uint32_t cv[8];

        memcpy(block, left, CAS_CV_LEN);
        memcpy(block + CAS_CV_LEN, right, CAS_CV_LEN);
        memcpy(cv, IV, sizeof(cv));
        blake3_compress_in_place(cv, block, BLAKE3_BLOCK_LEN, 0, PARENT | flags);
        store_cv_words(out, cv);
}

/* BLAKE3's tree is left-complete: the left subtree of n > 1 leaves holds
 * the largest power of two below n.  Groups are whole power-of-two
 * subtrees of chunks, so the same rule shapes the tree above them. */
static uint64_t left_len(uint64_t n) {
        return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

static void merge(const uint8_t *cvs, uint64_t n, uint8_t flags, uint8_t out[CAS_CV_LEN]) {
        uint8_t l[CAS_CV_LEN], r[CAS_CV_LEN];
        uint64_t left;

        if (n == 1) {
                assert(flags == 0); /* a root is never a lone leaf here */
                memcpy(out, cvs, CAS_CV_LEN);
                return;
        }
        left = left_len(n);
        merge(cvs, left, 0, l);
        merge(cvs + left * CAS_CV_LEN, n - left, 0, r);
        parent_cv(l, r, flags, out);
}

/* The CV of a chunk shorter than BLAKE3_CHUNK_LEN (only a blob's last). */
static void partial_chunk_cv(const uint8_t *data, size_t len, uint64_t counter, uint8_t out[CAS_CV_LEN]) {
        size_t nblocks = len == 0 ? 1 : (len + BLAKE3_BLOCK_LEN - 1) / BLAKE3_BLOCK_LEN;
        uint32_t cv[8];

        memcpy(cv, IV, sizeof(cv));
        for (size_t b = 0; b < nblocks; b++) {
                uint8_t block[BLAKE3_BLOCK_LEN] = { 0 };
                size_t blen = MIN((size_t) BLAKE3_BLOCK_LEN, len - b * BLAKE3_BLOCK_LEN);
                uint8_t flags = (b == 0 ? CHUNK_START : 0) | (b == nblocks - 1 ? CHUNK_END : 0);

                memcpy(block, data + b * BLAKE3_BLOCK_LEN, blen);
                blake3_compress_in_place(cv, block, (uint8_t) blen, counter, flags);
        }
        store_cv_words(out, cv);
}

/* Reduces n chunk CVs of whole groups (n a multiple of CHUNKS_PER_GROUP)
 * to one CV per group, a tree level at a time, each level's PARENT
 * compressions in one SIMD call.  Pairs never straddle groups: a group's
 * chunks are a power of two and aligned. */
static void parents_level(uint8_t *cvs, size_t n, uint8_t *ret) {
        const uint8_t *inputs[BATCH_GROUPS * CHUNKS_PER_GROUP / 2] = { 0 };
        uint8_t tmp[BATCH_GROUPS * CHUNKS_PER_GROUP / 2 * CAS_CV_LEN];
        size_t groups = n / CHUNKS_PER_GROUP;
        uint32_t key[8];

        memcpy(key, IV, sizeof(key));
        for (; n > groups; n /= 2) {
                for (size_t i = 0; i < n / 2; i++)
                        inputs[i] = cvs + i * 2 * CAS_CV_LEN;
                blake3_hash_many(inputs, n / 2, 1, key, 0, false, PARENT, 0, 0, tmp);
                memcpy(cvs, tmp, n / 2 * CAS_CV_LEN);
        }
        memcpy(ret, cvs, n * CAS_CV_LEN);
}

/* CVs of up to BATCH_GROUPS groups: all their whole chunks in one SIMD
 * call, the short last chunk (if any) by itself, then each group's tree. */
static void batch_cvs(const uint8_t *data, size_t len, uint64_t g, uint8_t *ret) {
        uint8_t chunk_cvs[BATCH_GROUPS * CHUNKS_PER_GROUP * CAS_CV_LEN];
        const uint8_t *inputs[BATCH_GROUPS * CHUNKS_PER_GROUP] = { 0 };
        uint32_t key[8];
        size_t whole = len / BLAKE3_CHUNK_LEN, nchunks = whole, ngroups, full;

        assert(len > 0 && len <= BATCH_GROUPS * CAS_GROUP_SIZE);
        for (size_t i = 0; i < whole; i++)
                inputs[i] = data + i * BLAKE3_CHUNK_LEN;
        memcpy(key, IV, sizeof(key));
        blake3_hash_many(inputs, whole, BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN, key, g * CHUNKS_PER_GROUP, true, 0,
                         CHUNK_START, CHUNK_END, chunk_cvs);
        if (len % BLAKE3_CHUNK_LEN) {
                partial_chunk_cv(data + whole * BLAKE3_CHUNK_LEN, len % BLAKE3_CHUNK_LEN,
                                 g * CHUNKS_PER_GROUP + whole, chunk_cvs + whole * CAS_CV_LEN);
                nchunks++;
        }
        ngroups = (nchunks + CHUNKS_PER_GROUP - 1) / CHUNKS_PER_GROUP;
        full = nchunks / CHUNKS_PER_GROUP;
        parents_level(chunk_cvs, full * CHUNKS_PER_GROUP, ret);
        if (ngroups > full) /* the blob's short last group */
                merge(chunk_cvs + full * CHUNKS_PER_GROUP * CAS_CV_LEN, nchunks - full * CHUNKS_PER_GROUP, 0,
                      ret + full * CAS_CV_LEN);
}

void cas_group_cvs(const uint8_t *data, size_t len, uint64_t g, uint8_t *ret) {
        const size_t batch = (size_t) BATCH_GROUPS * CAS_GROUP_SIZE;

        for (size_t off = 0; off < len; off += batch) {
                batch_cvs(data + off, MIN(batch, len - off), g, ret);
                g += BATCH_GROUPS;
                ret += BATCH_GROUPS * CAS_CV_LEN;
        }
}

void cas_outboard_root(const uint8_t *cvs, uint64_t n, struct cas_digest *ret) {
        assert(n >= 2);
        merge(cvs, n, ROOT, ret->b);
}

int cas_groups_verify(const uint8_t *data, size_t len, uint64_t g, const uint8_t *trusted_cvs) {
        const size_t batch = (size_t) BATCH_GROUPS * CAS_GROUP_SIZE;
        uint8_t cvs[BATCH_GROUPS * CAS_CV_LEN];

        for (size_t off = 0; off < len; off += batch) {
                size_t n = MIN(batch, len - off);
                size_t ngroups = (n + CAS_GROUP_SIZE - 1) / CAS_GROUP_SIZE;

                batch_cvs(data + off, n, g, cvs);
                if (memcmp(cvs, trusted_cvs, ngroups * CAS_CV_LEN) != 0)
                        return -EBADMSG;
                g += BATCH_GROUPS;
                trusted_cvs += BATCH_GROUPS * CAS_CV_LEN;
        }
        return 0;
}

void cas_outboard_of(const uint8_t *data, size_t len, uint8_t *ret) {
        if (cas_outboard_groups(len) > 0)
                cas_group_cvs(data, len, 0, ret);
}

void cas_outboard_builder_init(struct cas_outboard_builder *b) {
        b->part_len = 0;
        b->groups = 0;
        b->cvs = NULL;
        b->cap = 0;
        b->error = 0;
}

static uint8_t *cvs_reserve(struct cas_outboard_builder *b, uint64_t n) {
        size_t need = (size_t) (b->groups + n) * CAS_CV_LEN;

        if (need > b->cap) {
                size_t cap = MAX(need, MAX(b->cap * 2, (size_t) 64 * CAS_CV_LEN));
                uint8_t *p = realloc(b->cvs, cap);

                if (!p) {
                        b->error = -ENOMEM;
                        return NULL;
                }
                b->cvs = p;
                b->cap = cap;
        }
        return b->cvs + b->groups * CAS_CV_LEN;
}

/* Hashes the next groups of the blob: whole ones, but for the blob's last. */
static void groups_add(struct cas_outboard_builder *b, const uint8_t *data, size_t len) {
        uint64_t n = (len + CAS_GROUP_SIZE - 1) / CAS_GROUP_SIZE;
        uint8_t *out = cvs_reserve(b, n);

        if (out)
                cas_group_cvs(data, len, b->groups, out);
        b->groups += n;
}

/* A group is hashed only once a later byte shows it is not the blob's
 * only one (which would be hashed as the root). */
void cas_outboard_builder_update(struct cas_outboard_builder *b, const void *data, size_t len) {
        const uint8_t *p = data;

        while (len > 0) {
                if (b->part_len == CAS_GROUP_SIZE) {
                        groups_add(b, b->part, CAS_GROUP_SIZE);
                        b->part_len = 0;
                }
                if (b->part_len == 0 && len > CAS_GROUP_SIZE) {
                        uint64_t n = MIN((uint64_t) (len - 1) / CAS_GROUP_SIZE, (uint64_t) BATCH_GROUPS);

                        groups_add(b, p, (size_t) n * CAS_GROUP_SIZE);
                        p += n * CAS_GROUP_SIZE;
                        len -= n * CAS_GROUP_SIZE;
                } else {
                        size_t take = MIN(len, CAS_GROUP_SIZE - b->part_len);

                        memcpy(b->part + b->part_len, p, take);
                        b->part_len += take;
                        p += take;
                        len -= take;
                }
        }
}

int cas_outboard_builder_final(struct cas_outboard_builder *b, struct cas_digest *ret, uint8_t **ret_ob,
                               size_t *ret_len) {
        if (b->groups == 0) {
                cas_digest_of(b->part, b->part_len, ret);
                *ret_ob = NULL;
                *ret_len = 0;
                cas_outboard_builder_done(b);
                return 0;
        }
        groups_add(b, b->part, b->part_len); /* the last group, maybe short: part_len > 0 */
        if (b->error < 0) {
                int r = b->error;

                cas_outboard_builder_done(b);
                return r;
        }
        cas_outboard_root(b->cvs, b->groups, ret);
        *ret_len = (size_t) b->groups * CAS_CV_LEN;
        *ret_ob = TAKE_PTR(b->cvs);
        cas_outboard_builder_done(b);
        return 0;
}

void cas_outboard_builder_done(struct cas_outboard_builder *b) {
        free(b->cvs);
        cas_outboard_builder_init(b);
}
