/* Fuzz target for NAR ingestion: the input is a NAR stream, read in
 * chunks of a size chosen from its length so splits land everywhere, and
 * ingested serially or with its files stored by worker threads (the
 * length's parity chooses).  Whatever the parser accepts must render back
 * to exactly the input bytes (the strict grammar admits one encoding per
 * tree) with the same hash, through the read-ahead or serially. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/nar.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
        const uint8_t *p;
        size_t len, pos, chunk;
};

static ssize_t input_read(void *userdata, void *buf, size_t len) {
        struct input *in = userdata;
        size_t n = MIN(MIN(len, in->len - in->pos), in->chunk);

        memcpy(buf, in->p + in->pos, n);
        in->pos += n;
        return (ssize_t) n;
}

struct output {
        const uint8_t *want;
        size_t len, pos;
};

static int output_write(void *userdata, const void *buf, size_t len) {
        struct output *out = userdata;

        if (len > out->len - out->pos || memcmp(out->want + out->pos, buf, len) != 0)
                abort(); /* re-rendering differs from the accepted input */
        out->pos += len;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const size_t chunks[] = { SIZE_MAX, 1, 7, 8, 13, 4096 };
        struct cas_blob_service *blobs = NULL;
        struct cas_dir_service *dirs = NULL;
        struct input in = { .p = data, .len = size, .chunk = chunks[size % ELEMENTSOF(chunks)] };
        struct nar_ingest_result res;
        int r;

        log_set_max_level(LOG_LEVEL_ERR - 1); /* quiet */
        if (cas_blob_memory_new(&blobs) < 0 || cas_dir_memory_new(&dirs) < 0)
                abort();
        r = nar_ingest(blobs, dirs, input_read, &in, (size & 1) ? 0 : NAR_INGEST_SERIAL, &res);
        if (r >= 0) {
                struct output out = { .want = data, .len = size };
                uint8_t sha[NIX_SHA256_LEN];
                uint64_t len;

                if (res.nar_size != size)
                        abort();
                if (nar_render(blobs, dirs, &res.root, (size & 2) ? NAR_RENDER_SERIAL : 0, output_write, &out, &len,
                               sha) < 0)
                        abort();
                if (out.pos != size || len != size || memcmp(sha, res.nar_sha256, sizeof(sha)) != 0)
                        abort();
                free(res.mem);
        } else if (r == -EBADMSG && !res.error)
                abort(); /* every malformation names its rule */
        cas_dir_service_free(dirs);
        cas_blob_service_free(blobs);
        return 0;
}

#ifdef FUZZ_MUTATOR
/* Structure-aware mutator: the input is parsed as the NAR's strings (u64
 * little-endian length, bytes, zero padding to 8; a tail that does not
 * parse is kept now and then), then one string's bytes are mutated, or a
 * grammar token or a whole entry is inserted, or strings are replaced,
 * duplicated, deleted or swapped, and the result is written back with
 * correct lengths and padding. */
#include "mutator.h"

#define MUT_MAX_STRS 4096
#define MUT_BUF_SIZE 65536

struct mut_str {
        const uint8_t *p;
        size_t len;
};

static const char *const mut_tokens[] = {
        "nix-archive-1", "(", ")", "type", "regular", "directory", "symlink", "entry",
        "name", "node", "contents", "executable", "target", "", "a", "b", ".", "..", "a/b",
};

/* NULL-terminated runs of tokens: whole entries and whole small NARs. */
static const char *const mut_snippets[][16] = {
        { "entry", "(", "name", "f", "node", "(", "type", "regular", "contents", "x", ")", ")", NULL },
        { "entry", "(", "name", "g", "node", "(", "type", "regular", "executable", "", "contents", "", ")", ")",
          NULL },
        { "entry", "(", "name", "l", "node", "(", "type", "symlink", "target", "f", ")", ")", NULL },
        { "entry", "(", "name", "d", "node", "(", "type", "directory", ")", ")", NULL },
        { "nix-archive-1", "(", "type", "regular", "contents", "x", ")", NULL },
        { "nix-archive-1", "(", "type", "directory", ")", NULL },
        { "nix-archive-1", "(", "type", "symlink", "target", "x", ")", NULL },
};

static struct mut_str mut_token(const char *s) {
        return (struct mut_str) { .p = (const uint8_t *) s, .len = strlen(s) };
}

/* Parses strings from data; *ret_tail is where parsing stopped. */
static size_t mut_parse(const uint8_t *data, size_t size, struct mut_str *strs, size_t *ret_tail) {
        size_t n = 0, off = 0;

        while (off + 8 <= size && n < MUT_MAX_STRS) {
                uint64_t len = 0;
                for (unsigned b = 0; b < 8; b++)
                        len |= (uint64_t) data[off + b] << (8 * b);
                if (len > size - off - 8)
                        break;
                strs[n++] = (struct mut_str) { .p = data + off + 8, .len = (size_t) len };
                off = MIN(off + 8 + (((size_t) len + 7) & ~(size_t) 7), size);
        }
        *ret_tail = off;
        return n;
}

static size_t mut_serialize(const struct mut_str *strs, size_t n, uint8_t *out, size_t max) {
        size_t off = 0;

        for (size_t i = 0; i < n; i++) {
                size_t padded = (strs[i].len + 7) & ~(size_t) 7;
                if (off + 8 + padded > max)
                        break;
                for (unsigned b = 0; b < 8; b++)
                        out[off + b] = (uint8_t) ((uint64_t) strs[i].len >> (8 * b));
                memcpy(out + off + 8, strs[i].p, strs[i].len);
                memset(out + off + 8 + strs[i].len, 0, padded - strs[i].len);
                off += 8 + padded;
        }
        return off;
}

/* Inserts k strings at position at (as many as fit). */
static size_t mut_insert(struct mut_str *strs, size_t n, size_t at, const struct mut_str *ins, size_t k) {
        k = MIN(k, MUT_MAX_STRS - n);
        memmove(strs + at + k, strs + at, (n - at) * sizeof(*strs));
        memcpy(strs + at, ins, k * sizeof(*strs));
        return n + k;
}

/* A place to insert: often just before a ")" so entries land in directories. */
static size_t mut_pick_spot(struct fuzz_rng *rng, const struct mut_str *strs, size_t n) {
        size_t at = fuzz_rand(rng, n + 1);

        if (fuzz_rand(rng, 2) == 0)
                for (size_t k = 0; k < n; k++) {
                        size_t j = (at + k) % n;
                        if (strs[j].len == 1 && strs[j].p[0] == ')')
                                return j;
                }
        return at;
}

static size_t mut_insert_snippet(struct fuzz_rng *rng, struct mut_str *strs, size_t n) {
        struct mut_str ins[16];
        size_t k = 0, s = fuzz_rand(rng, ELEMENTSOF(mut_snippets));

        for (; mut_snippets[s][k]; k++)
                ins[k] = mut_token(mut_snippets[s][k]);
        /* a whole NAR replaces everything; an entry goes somewhere inside */
        if (strcmp(mut_snippets[s][0], "nix-archive-1") == 0)
                return mut_insert(strs, 0, 0, ins, k);
        return mut_insert(strs, n, mut_pick_spot(rng, strs, n), ins, k);
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
        static uint8_t in[MUT_BUF_SIZE], buf[MUT_BUF_SIZE];
        static struct mut_str strs[MUT_MAX_STRS], tmp[8];
        struct fuzz_rng rng;
        size_t n, tail, i, j, k, out;

        fuzz_rng_init(&rng, seed);
        max_size = MIN(max_size, (size_t) MUT_BUF_SIZE);
        if (size > max_size || fuzz_rand(&rng, 16) == 0) /* framing errors too */
                return LLVMFuzzerMutate(data, MIN(size, max_size), max_size);
        memcpy(in, data, size);
        n = mut_parse(in, size, strs, &tail);
        i = n ? fuzz_rand(&rng, n) : 0;
        j = n ? fuzz_rand(&rng, n) : 0;
        k = 1 + fuzz_rand(&rng, 8);
        switch (n ? fuzz_rand(&rng, 10) : 9) {
        case 0:
        case 1:
        case 2: /* one string's bytes */
                memcpy(buf, strs[i].p, strs[i].len);
                strs[i].len = LLVMFuzzerMutate(buf, strs[i].len, max_size);
                strs[i].p = buf;
                break;
        case 3:
                strs[i] = mut_token(mut_tokens[fuzz_rand(&rng, ELEMENTSOF(mut_tokens))]);
                break;
        case 4: {
                struct mut_str t = mut_token(mut_tokens[fuzz_rand(&rng, ELEMENTSOF(mut_tokens))]);
                n = mut_insert(strs, n, mut_pick_spot(&rng, strs, n), &t, 1);
                break;
        }
        case 5: /* duplicate a run */
                k = MIN(k, n - i);
                memcpy(tmp, strs + i, k * sizeof(*strs));
                n = mut_insert(strs, n, fuzz_rand(&rng, n + 1), tmp, k);
                break;
        case 6: /* delete a run */
                k = MIN(k, n - i);
                memmove(strs + i, strs + i + k, (n - i - k) * sizeof(*strs));
                n -= k;
                break;
        case 7: {
                struct mut_str t = strs[i];
                strs[i] = strs[j];
                strs[j] = t;
                break;
        }
        default: /* a whole entry (or a fresh NAR when nothing parsed) */
                n = mut_insert_snippet(&rng, strs, n);
                break;
        }
        out = mut_serialize(strs, n, data, max_size);
        if (tail < size && fuzz_rand(&rng, 4) == 0) { /* keep the unparsed tail now and then */
                size_t t = MIN(size - tail, max_size - out);
                memcpy(data + out, in + tail, t);
                out += t;
        }
        return out ? out : LLVMFuzzerMutate(data, MIN(size, max_size), max_size);
}
#endif
