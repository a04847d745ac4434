/* What the two halves of the pack code share (blob_local_pack.c reads the
 * published packs, blob_local_pack_write.c writes, removes and flushes):
 * the on-disk format and the published packs' structures. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "castore/blob_local.h"

/* On disk, in blobs/packs/:
 *   <id>.pack   the blobs' bytes, back to back, nothing else
 *   <id>.idx    header | entries | trailer, integers little-endian:
 *     header  (32)  "CASPACK\n", u32 version (1), u32 0, u64 count,
 *                   u64 pack size (bytes of <id>.pack the entries cover)
 *     entry   (48)  digest[32], u64 offset, u32 length (1..PACK_BLOB_MAX), u32 0;
 *                   sorted by digest, no digest twice
 *     trailer (32)  BLAKE3 of header and entries
 * <id> is the hex of the first 16 bytes of the trailer.  A flush renames
 * the pack, then the index, after a syncfs: an index implies a complete,
 * durable pack.  A pack without an index is ignored (gc removes it). */
#define PACK_MAGIC "CASPACK\n"
#define PACK_VERSION 1
#define PACK_HEADER_LEN 32
#define PACK_ENTRY_LEN 48
#define PACK_TRAILER_LEN CAS_DIGEST_LEN

struct pack_entry {
        struct cas_digest digest;
        uint64_t offset;
        uint32_t length;
        bool dead;         /* packs_lock: removed, rewritten away at the next flush */
        struct pack *pack; /* immutable */
};

/* A published pack.  Freed with its last reference (the table's, and one
 * per lookup reading from it), so a pack gc removes keeps working for a
 * reader that found it before. */
struct pack {
        unsigned refs;               /* atomic */
        int fd;                      /* immutable: the pack file, read with pread */
        char id[PACK_ID_LEN + 1];    /* immutable */
        uint64_t size;               /* immutable */
        size_t n;                    /* immutable */
        struct pack_entry *entries;  /* immutable but for .dead; sorted by digest */
        size_t n_dead;               /* packs_lock */
        bool rewrite;                /* packs_lock: merge it at the next flush */
};

/* Hash map equality for both entry types: the digest comes first in each. */
static inline bool entry_eq(const void *entry, const void *key) {
        return cas_digest_equal(entry, key);
}

static inline int entry_cmp(const void *a, const void *b) {
        return memcmp(a, b, CAS_DIGEST_LEN); /* the digest comes first */
}

static inline bool is_pack_id(const char *s, size_t n) {
        if (n != PACK_ID_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* Drops a reference; the last one closes and frees the pack.  NULL is
 * ignored. */
void blob_local_pack_unref(struct pack *p);
/* Rescans blobs/packs/ if never done, if it changed, or if force: 1 if it
 * rescanned, 0 if not, -errno.  Takes scan_lock. */
int blob_local_packs_rescan(struct blob_local *l, bool force);
