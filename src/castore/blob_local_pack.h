/* What the two halves of the pack code share (blob_local_pack.c reads the
 * published packs, blob_local_pack_write.c writes, removes and flushes):
 * the on-disk format and the published packs' structures. */
#pragma once

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "castore/blob_local.h"

/* On disk, in blobs/packs/:
 *   <id>.pack   the blobs' bytes, back to back, nothing else
 *   <id>.idx    header | entries | trailer, integers little-endian:
 *     header  (32)  "CASPACK\n", u32 version (2; 1 is read too), u32 0,
 *                   u64 count, u64 pack size (bytes of <id>.pack the
 *                   entries cover)
 *     entry   (48)  digest[32], u64 offset, u32 length (1..PACK_BLOB_MAX),
 *                   u32 outboard length: 0, or the blob's 32 bytes per
 *                   group, stored in the pack right after its bytes
 *                   (version 1: always 0, and lengths up to 64 KiB);
 *                   sorted by digest, no digest twice
 *     trailer (32)  BLAKE3 of header and entries
 * <id> is the hex of the first 16 bytes of the trailer.  A flush renames
 * the pack, then the index, after a syncfs: an index implies a complete,
 * durable pack.  A pack without an index is ignored (gc removes it). */
#define PACK_MAGIC "CASPACK\n"
#define PACK_VERSION 2
#define PACK_VERSION_V1_BLOB_MAX (64u << 10)
#define PACK_HEADER_LEN 32
#define PACK_ENTRY_LEN 48
#define PACK_TRAILER_LEN CAS_DIGEST_LEN

/* A published pack.  Freed with its last reference (the table's, and one
 * per lookup reading from it), so a pack gc removes keeps working for a
 * reader that found it before.  Its index is mapped, not copied: the
 * entries cost the daemon no anonymous memory, and the kernel shares and
 * reclaims their pages.  Index files are never written once published
 * (a flush renames them into place; gc unlinks them), so the mapping
 * stays valid for the pack's life; a disk error or a truncation by
 * someone else raises SIGBUS, as it does for LMDB's mapped file. */
struct pack {
        unsigned refs;               /* atomic */
        int fd;                      /* immutable: the pack file, read with pread */
        char id[PACK_ID_LEN + 1];    /* immutable */
        uint64_t size;               /* immutable */
        size_t n;                    /* immutable */
        const uint8_t *index;        /* immutable: the mapped index file */
        size_t index_len;            /* immutable */
        uint32_t base;               /* packs_lock: ordinal of entry 0 in the pack map */
        uint8_t *dead;               /* packs_lock: bitmap of removed entries, NULL if none */
        size_t n_dead;               /* packs_lock */
        bool rewrite;                /* packs_lock: merge it at the next flush */
};

/* One entry of a pack's index, decoded. */
struct pack_entry {
        struct cas_digest digest;
        uint64_t offset;
        uint32_t length;
        uint32_t ob_len; /* its outboard, at offset + length; 0: none */
};

static inline const uint8_t *pack_digest_at(const struct pack *p, size_t i) {
        return p->index + PACK_HEADER_LEN + i * PACK_ENTRY_LEN;
}

static inline struct pack_entry pack_entry_at(const struct pack *p, size_t i) {
        const uint8_t *e = pack_digest_at(p, i);
        struct pack_entry pe;
        uint64_t off;
        uint32_t length, ob_len;

        memcpy(pe.digest.b, e, CAS_DIGEST_LEN);
        memcpy(&off, e + CAS_DIGEST_LEN, 8);
        memcpy(&length, e + CAS_DIGEST_LEN + 8, 4);
        memcpy(&ob_len, e + CAS_DIGEST_LEN + 12, 4);
        pe.offset = le64toh(off);
        pe.length = le32toh(length);
        pe.ob_len = le32toh(ob_len);
        return pe;
}

/* With packs_lock held. */
static inline bool pack_is_dead(const struct pack *p, size_t i) {
        return p->dead && (p->dead[i / 8] >> (i % 8)) & 1;
}

/* The position of d in p's index (a binary search), or -1. */
static inline ssize_t pack_find(const struct pack *p, const struct cas_digest *d) {
        size_t lo = 0, hi = p->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = memcmp(pack_digest_at(p, mid), d->b, CAS_DIGEST_LEN);

                if (c == 0)
                        return (ssize_t) mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

/* Hash map equality for the writer's entries: the digest comes first. */
static inline bool entry_eq(const void *entry, const void *key) {
        return cas_digest_equal(entry, key);
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
/* ---- the digest map (blob_local_pack_map.c); changes with packs_lock
 * exclusive, lookups with it shared ---- */

void pack_map_done(struct pack_map *m);
/* Numbers the table's packs afresh and maps their live entries, the first
 * pack holding a digest winning. */
int pack_map_rebuild(struct blob_local *l);
/* Maps the live entries of the packs just appended to the table (from
 * position first on) that no pack before them holds; rebuilds instead
 * when the map would grow too full. */
int pack_map_add(struct blob_local *l, size_t first);
/* The pack and position of d's live entry, or NULL. */
struct pack *pack_map_find(const struct blob_local *l, const struct cas_digest *d, size_t *ret_i);
/* Calls cb for each mapped live digest, with packs_lock taken shared only
 * to copy them out. */
int pack_map_list(struct blob_local *l, cas_blob_list_cb cb, void *userdata);

/* Rescans blobs/packs/ if never done, if it changed, or if force: 1 if it
 * rescanned, 0 if not, -errno.  Takes scan_lock. */
int blob_local_packs_rescan(struct blob_local *l, bool force);
