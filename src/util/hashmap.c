/* Open-addressing hash table: linear probing, backward-shift deletion,
 * grows at 70% load. */
#include "util/hashmap.h"

#include <errno.h>
#include <stdlib.h>

void hashmap_init(struct hashmap *m, hashmap_eq_fn eq) {
        *m = (struct hashmap){ .eq = eq };
}

void hashmap_done(struct hashmap *m) {
        free(m->slots);
        m->slots = NULL;
        m->mask = m->count = 0;
}

void hashmap_done_free(struct hashmap *m) {
        for (size_t i = 0; m->slots && i <= m->mask; i++)
                free(m->slots[i].entry);
        hashmap_done(m);
}

void *hashmap_get(const struct hashmap *m, uint64_t hash, const void *key) {
        if (!m->slots)
                return NULL;
        for (size_t i = hash & m->mask;; i = (i + 1) & m->mask) {
                const struct hashmap_slot *s = &m->slots[i];
                if (!s->entry)
                        return NULL;
                if (s->hash == hash && m->eq(s->entry, key))
                        return s->entry;
        }
}

static void insert_slot(struct hashmap_slot *slots, size_t mask, uint64_t hash, void *entry) {
        size_t i = hash & mask;

        while (slots[i].entry)
                i = (i + 1) & mask;
        slots[i] = (struct hashmap_slot){ hash, entry };
}

static int grow(struct hashmap *m) {
        size_t cap = m->slots ? (m->mask + 1) * 2 : 16;
        struct hashmap_slot *slots = calloc(cap, sizeof(*slots));

        if (!slots)
                return -ENOMEM;
        if (m->slots)
                for (size_t i = 0; i <= m->mask; i++)
                        if (m->slots[i].entry)
                                insert_slot(slots, cap - 1, m->slots[i].hash, m->slots[i].entry);
        free(m->slots);
        m->slots = slots;
        m->mask = cap - 1;
        return 0;
}

int hashmap_put(struct hashmap *m, uint64_t hash, void *entry) {
        if (!m->slots || (m->count + 1) * 10 > (m->mask + 1) * 7) {
                int r = grow(m);
                if (r < 0)
                        return r;
        }
        insert_slot(m->slots, m->mask, hash, entry);
        m->count++;
        return 0;
}

void *hashmap_remove(struct hashmap *m, uint64_t hash, const void *key) {
        size_t i, j;
        void *found;

        if (!m->slots)
                return NULL;
        for (i = hash & m->mask;; i = (i + 1) & m->mask) {
                if (!m->slots[i].entry)
                        return NULL;
                if (m->slots[i].hash == hash && m->eq(m->slots[i].entry, key))
                        break;
        }
        found = m->slots[i].entry;
        /* shift back the following entries of the cluster that may move */
        for (j = (i + 1) & m->mask; m->slots[j].entry; j = (j + 1) & m->mask) {
                if (!hash_probe_may_fill(i, j, m->slots[j].hash & m->mask))
                        continue;
                m->slots[i] = m->slots[j];
                i = j;
        }
        m->slots[i] = (struct hashmap_slot){ 0, NULL };
        m->count--;
        return found;
}

void hashmap_foreach(const struct hashmap *m, bool (*fn)(void *entry, void *userdata), void *userdata) {
        if (!m->slots)
                return;
        for (size_t i = 0; i <= m->mask; i++)
                if (m->slots[i].entry && !fn(m->slots[i].entry, userdata))
                        return;
}

uint64_t hash_bytes(const void *data, size_t len) {
        const unsigned char *p = data;
        uint64_t h = 0xcbf29ce484222325ULL;

        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= 0x100000001b3ULL;
        }
        return hash_u64(h);
}
