/* Fuzz target for the object-store blob service's reads of untrusted
 * objects: a true blob T is written (memory:/// object store, 512-byte
 * average chunks), then the input damages its index, outboard and chunk
 * objects (bit flips, truncations, an index replaced by input bytes).
 * Whatever they hold, every byte a verified read returns must be T's.
 *
 * Input: [1 byte size selector][2 bytes seed] then records, each [1 byte
 * op] and its operands:
 *   op % 4 == 0: xor   [1 byte target][4 byte offset][1 byte value]
 *   op % 4 == 1: cut   [1 byte target][4 byte length]
 *   op % 4 == 2: index [2 byte length][that many bytes]: the new index
 *   op % 4 == 3: read  [4 byte offset][3 byte length]
 * target 0 is the index, 1 the outboard, k >= 2 chunk (k - 2) mod n in
 * key order. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "castore/blob_objstore.h"
#include "castore/vblob.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t sizes[] = { 0, 1, 600, 5000, 16384, 16385, 40000, 70000 };

struct keys {
        char *v[1024];
        size_t n;
};

static int add_key(void *userdata, const char *key) {
        struct keys *k = userdata;

        if (k->n < 1024)
                k->v[k->n++] = strdup(key);
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static uint32_t rd(const uint8_t *p, size_t n) {
        uint32_t v = 0;

        for (size_t i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

/* The key target t names: "" if there is none. */
static const char *target_key(const struct keys *chunks, const char *index, const char *ob, uint8_t t) {
        if (t == 0)
                return index;
        if (t == 1)
                return ob;
        return chunks->n ? chunks->v[(t - 2) % chunks->n] : "";
}

static void mutate(struct cas_objstore *o, const char *key, bool cut, uint32_t at, uint8_t x) {
        uint8_t *obj;
        size_t len;

        if (!*key || cas_objstore_get(o, key, 1 << 26, &obj, &len) < 0)
                return;
        if (cut)
                len = MIN(len, (size_t) at);
        else if (len > 0)
                obj[at % len] ^= x;
        (void) cas_objstore_put(o, key, obj, len);
        free(obj);
}

static void check_read(struct cas_vblob *v, const uint8_t *t, size_t n, uint32_t off, uint32_t len) {
        uint8_t *buf = malloc(len ? len : 1);
        ssize_t got;

        if (!buf)
                abort();
        got = cas_vblob_pread(v, buf, len, off);
        if (got > 0 && ((uint64_t) off + (uint64_t) got > n || memcmp(buf, t + off, (size_t) got) != 0))
                abort(); /* a byte that is not T's */
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct cas_objstore *o = NULL;
        struct cas_blob_service *s = NULL;
        struct cas_vblob *v = NULL;
        struct keys chunks = {};
        struct cas_digest d;
        char index[128], ob[128];
        uint32_t reads[64][2];
        size_t n_reads = 0;

        if (size < 3)
                return 0;
        log_set_max_level(LOG_LEVEL_ERR - 1);
        size_t n = sizes[data[0] % ELEMENTSOF(sizes)];
        uint32_t seed = rd(data + 1, 2);
        uint8_t *t = malloc(n ? n : 1);
        if (!t)
                abort();
        for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                t[i] = (uint8_t) (seed >> 16);
        }
        if (cas_objstore_memory_new(&o) < 0 || cas_blob_objstore_new(o, 512, &s) < 0 ||
            cas_blob_put(s, t, n, 0, &d) < 0)
                abort();
        const char *hex = CAS_DIGEST_HEX(&d);
        snprintf(index, sizeof(index), "blobs/b3/%.4s/%s", hex, hex);
        snprintf(ob, sizeof(ob), "outboards/b3/%.4s/%s", hex, hex);
        (void) cas_objstore_list(o, "chunks/", add_key, &chunks);
        qsort(chunks.v, chunks.n, sizeof(char *), cmp_str);

        for (size_t i = 3; i < size;) {
                uint8_t op = data[i++] % 4;
                if (op == 0 && i + 6 <= size) {
                        mutate(o, target_key(&chunks, index, ob, data[i]), false, rd(data + i + 1, 4), data[i + 5]);
                        i += 6;
                } else if (op == 1 && i + 5 <= size) {
                        mutate(o, target_key(&chunks, index, ob, data[i]), true, rd(data + i + 1, 4), 0);
                        i += 5;
                } else if (op == 2 && i + 2 <= size) {
                        size_t len = MIN((size_t) rd(data + i, 2), size - i - 2);
                        (void) cas_objstore_put(o, index, data + i + 2, len);
                        i += 2 + len;
                } else if (op == 3 && i + 7 <= size) {
                        if (n_reads < ELEMENTSOF(reads)) {
                                reads[n_reads][0] = rd(data + i, 4) % (uint32_t) (n + 1);
                                reads[n_reads++][1] = rd(data + i + 4, 3);
                        }
                        i += 7;
                } else
                        break;
        }
        if (cas_vblob_open(s, &d, n, &v) >= 0) {
                check_read(v, t, n, 0, (uint32_t) n);
                for (size_t i = 0; i < n_reads; i++)
                        check_read(v, t, n, reads[i][0], reads[i][1]);
                cas_vblob_close(v);
        }
        for (size_t i = 0; i < chunks.n; i++)
                free(chunks.v[i]);
        cas_blob_service_free(s);
        free(t);
        return 0;
}
