/* Unit tests for the open-addressing hash table, including deletion in the
 * middle of probe clusters (checked against a plain array model). */
#include "util/hashmap.h"
#include "util/macro.h"
#include "test.h"

struct item {
        uint64_t key;
        bool present;
};

static bool eq(const void *entry, const void *key) {
        return ((const struct item *) entry)->key == *(const uint64_t *) key;
}

/* A weak hash so that clusters and wrap-around happen often. */
static uint64_t weak(uint64_t k) {
        return k % 7;
}

static void test_model(void) {
        static struct item items[4000];
        struct hashmap m;
        uint64_t seed = 1;

        hashmap_init(&m, eq);
        for (size_t i = 0; i < ELEMENTSOF(items); i++)
                items[i].key = i;
        for (int step = 0; step < 200000; step++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                struct item *it = &items[(seed >> 33) % ELEMENTSOF(items)];
                uint64_t h = weak(it->key); /* one hash per key, weak on purpose */
                if (it->present) {
                        CHECK(hashmap_get(&m, h, &it->key) == it);
                        CHECK(hashmap_remove(&m, h, &it->key) == it);
                        it->present = false;
                } else {
                        CHECK(hashmap_get(&m, h, &it->key) == NULL);
                        CHECK_OK(hashmap_put(&m, h, it));
                        it->present = true;
                }
        }
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(items); i++) {
                uint64_t h = weak(items[i].key);
                CHECK((hashmap_get(&m, h, &items[i].key) != NULL) == items[i].present);
                n += items[i].present;
        }
        CHECK_EQ(m.count, n);
        hashmap_done(&m);
}

static bool count_cb(void *entry, void *userdata) {
        (void) entry;
        (*(size_t *) userdata)++;
        return true;
}

static void test_foreach_and_hash(void) {
        struct item a = { .key = 1 }, b = { .key = 2 };
        struct hashmap m;
        size_t n = 0;

        hashmap_init(&m, eq);
        CHECK(hashmap_get(&m, 0, &a.key) == NULL);
        CHECK(hashmap_remove(&m, 0, &a.key) == NULL);
        CHECK_OK(hashmap_put(&m, hash_u64(1), &a));
        CHECK_OK(hashmap_put(&m, hash_u64(2), &b));
        hashmap_foreach(&m, count_cb, &n);
        CHECK_EQ(n, 2);
        hashmap_done(&m);
        CHECK(hash_bytes("a", 1) != hash_bytes("b", 1));
        CHECK(hash_bytes("", 0) == hash_bytes("", 0));
}

int main(void) {
        RUN(test_model);
        RUN(test_foreach_and_hash);
        return 0;
}
