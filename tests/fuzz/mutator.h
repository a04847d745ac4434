/* Helpers for the structure-aware libFuzzer mutators: libFuzzer's entry
 * points and a small seeded generator.  Fuzz builds only (FUZZ_MUTATOR):
 * the replay build has no LLVMFuzzerMutate to call. */
#pragma once

#include <stddef.h>
#include <stdint.h>

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

struct fuzz_rng {
        uint64_t s;
};

static inline void fuzz_rng_init(struct fuzz_rng *rng, unsigned int seed) {
        rng->s = 0x9e3779b97f4a7c15ull ^ seed;
}

/* A number in [0, n), n > 0 (xorshift64*: plenty for choosing mutations). */
static inline size_t fuzz_rand(struct fuzz_rng *rng, size_t n) {
        rng->s ^= rng->s >> 12;
        rng->s ^= rng->s << 25;
        rng->s ^= rng->s >> 27;
        return (size_t) ((rng->s * 0x2545f4914f6cdd1dull) >> 11) % n;
}
