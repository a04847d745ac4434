/* The digest map of the local blob backend's published packs: 11 to 21
 * bytes per packed blob (8-byte slots, 3/8 to 3/4 full), since the
 * entries themselves are read from the mapped indexes. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blob_local_pack.h"
#include "util/log.h"

#define SLOT_EMPTY 0
#define ORDINAL_MAX (UINT32_MAX - 1) /* 1 + ordinal must fit the slot's low half */

static uint32_t fingerprint(const uint8_t *digest) {
        uint32_t f;

        memcpy(&f, digest + 8, sizeof(f));
        return f;
}

static uint64_t slot_make(const uint8_t *digest, uint32_t ordinal) {
        return (uint64_t) fingerprint(digest) << 32 | (uint64_t) (ordinal + 1);
}

void pack_map_done(struct pack_map *m) {
        free(m->slots);
        *m = (struct pack_map){};
}

/* The pack holding ordinal o: the last one whose base is not above it
 * (an empty pack shares its base with the next). */
static struct pack *pack_of(const struct blob_local *l, uint32_t o) {
        size_t lo = 0, hi = l->n_packs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (l->packs[mid]->base <= o)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo > 0 ? l->packs[lo - 1] : NULL;
}

/* The first slot of d and the next ones of its probe sequence. */
static size_t slot_first(const struct pack_map *m, const uint8_t *digest) {
        uint64_t h;

        memcpy(&h, digest, sizeof(h));
        return (size_t) h & (m->cap - 1);
}

struct pack *pack_map_find(const struct blob_local *l, const struct cas_digest *d, size_t *ret_i) {
        const struct pack_map *m = &l->pack_map;
        uint32_t f = fingerprint(d->b);

        if (m->cap == 0)
                return NULL;
        for (size_t s = slot_first(m, d->b);; s = (s + 1) & (m->cap - 1)) {
                uint64_t v = m->slots[s];
                uint32_t o;
                struct pack *p;

                if (v == SLOT_EMPTY)
                        return NULL;
                if ((uint32_t) (v >> 32) != f)
                        continue;
                o = (uint32_t) v - 1;
                p = pack_of(l, o);
                if (!p || o - p->base >= p->n)
                        continue; /* cannot happen: the slots follow the table */
                if (memcmp(pack_digest_at(p, o - p->base), d->b, CAS_DIGEST_LEN) != 0 ||
                    pack_is_dead(p, o - p->base))
                        continue;
                *ret_i = o - p->base;
                return p;
        }
}

static void slot_put(struct pack_map *m, const uint8_t *digest, uint32_t ordinal) {
        size_t s = slot_first(m, digest);

        while (m->slots[s] != SLOT_EMPTY)
                s = (s + 1) & (m->cap - 1);
        m->slots[s] = slot_make(digest, ordinal);
        m->count++;
}

/* Maps p's live entries that no mapped pack holds. */
static void map_entries(struct blob_local *l, struct pack *p) {
        size_t unused;

        for (size_t i = 0; i < p->n; i++) {
                const uint8_t *digest = pack_digest_at(p, i);

                if (pack_is_dead(p, i) || pack_map_find(l, (const struct cas_digest *) digest, &unused))
                        continue;
                slot_put(&l->pack_map, digest, p->base + (uint32_t) i);
        }
}

/* A capacity at most 3/4 full with n slots in use. */
static size_t cap_for(size_t n) {
        size_t cap = 1024;

        while (cap / 4 * 3 < n)
                cap *= 2;
        return cap;
}

int pack_map_rebuild(struct blob_local *l) {
        struct pack_map *m = &l->pack_map;
        uint64_t total = 0;

        for (size_t i = 0; i < l->n_packs; i++)
                total += l->packs[i]->n;
        pack_map_done(m);
        if (total > ORDINAL_MAX || total > SIZE_MAX / 16)
                return log_error_errno(-E2BIG, "Too many packed blobs to map (%" PRIu64 ")", total);
        m->cap = cap_for((size_t) total);
        m->slots = calloc(m->cap, sizeof(*m->slots));
        if (!m->slots) {
                m->cap = 0;
                return -ENOMEM;
        }
        for (size_t i = 0; i < l->n_packs; i++) {
                l->packs[i]->base = m->next_base;
                m->next_base += (uint32_t) l->packs[i]->n;
        }
        for (size_t i = 0; i < l->n_packs; i++)
                map_entries(l, l->packs[i]);
        return 0;
}

int pack_map_add(struct blob_local *l, size_t first) {
        struct pack_map *m = &l->pack_map;
        uint64_t n = 0;

        for (size_t i = first; i < l->n_packs; i++)
                n += l->packs[i]->n;
        if (m->cap == 0 || n > ORDINAL_MAX - m->next_base || m->count + n > m->cap / 4 * 3)
                return pack_map_rebuild(l);
        /* every base first: pack_of needs them in order */
        for (size_t i = first; i < l->n_packs; i++) {
                l->packs[i]->base = m->next_base;
                m->next_base += (uint32_t) l->packs[i]->n;
        }
        for (size_t i = first; i < l->n_packs; i++)
                map_entries(l, l->packs[i]);
        return 0;
}

int pack_map_list(struct blob_local *l, cas_blob_list_cb cb, void *userdata) {
        _cleanup_free_ struct cas_digest *v = NULL;
        size_t n = 0;
        int r;

        pthread_rwlock_rdlock(&l->packs_lock);
        v = malloc(MAX(l->pack_map.count, (size_t) 1) * sizeof(*v));
        for (size_t s = 0; v && s < l->pack_map.cap; s++) {
                uint64_t slot = l->pack_map.slots[s];
                uint32_t o = (uint32_t) slot - 1;
                struct pack *p;

                if (slot == SLOT_EMPTY || !(p = pack_of(l, o)) || o - p->base >= p->n || pack_is_dead(p, o - p->base))
                        continue;
                memcpy(v[n++].b, pack_digest_at(p, o - p->base), CAS_DIGEST_LEN);
        }
        pthread_rwlock_unlock(&l->packs_lock);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = cb(userdata, &v[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}
