/* An open-addressing hash table of entry pointers (linear probing with
 * backward-shift deletion, no tombstones).  Entries are the caller's
 * objects; the table stores a pointer and the key's 64-bit hash, and asks
 * the caller's eq() to compare an entry with a key.  Not thread-safe: the
 * owner says which lock protects each table. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef bool (*hashmap_eq_fn)(const void *entry, const void *key);

struct hashmap_slot {
        uint64_t hash;
        void *entry; /* NULL: empty slot */
};

struct hashmap {
        struct hashmap_slot *slots;
        size_t mask;  /* capacity - 1 (capacity is a power of two), 0 if none */
        size_t count;
        hashmap_eq_fn eq;
};

void hashmap_init(struct hashmap *m, hashmap_eq_fn eq);
void hashmap_done(struct hashmap *m); /* frees the table, not the entries */
/* hashmap_done, after free() of every entry (entries made by malloc) */
void hashmap_done_free(struct hashmap *m);

/* The entry matching key, or NULL. */
void *hashmap_get(const struct hashmap *m, uint64_t hash, const void *key);
/* Inserts entry (whose key hashes to hash); the caller makes sure no equal
 * key is present (hashmap_get first).  0 or -ENOMEM. */
int hashmap_put(struct hashmap *m, uint64_t hash, void *entry);
/* Removes and returns the entry matching key, or NULL. */
void *hashmap_remove(struct hashmap *m, uint64_t hash, const void *key);

/* Visits every entry; fn returns false to stop.  The table must not be
 * changed during the walk. */
void hashmap_foreach(const struct hashmap *m, bool (*fn)(void *entry, void *userdata), void *userdata);

/* Backward-shift deletion in a linear-probing table with a hole at slot
 * i: may the entry in slot j (a later slot of the same cluster), whose
 * home slot is home, move back into the hole?  Yes unless home lies in
 * (i, j], cyclically.  For this table and others with the same probing. */
static inline bool hash_probe_may_fill(size_t i, size_t j, size_t home) {
        return i <= j ? (home <= i || home > j) : (home <= i && home > j);
}

/* 64-bit hash of bytes (FNV-1a folded through a murmur3 finaliser): fast,
 * not cryptographic.  For keys that are digests, use their first 8 bytes. */
uint64_t hash_bytes(const void *data, size_t len);
static inline uint64_t hash_u64(uint64_t x) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
}
