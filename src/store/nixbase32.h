/* nixbase32: the base-32 variant Nix uses for store path digests and hash
 * strings.  Alphabet "0123456789abcdfghijklmnpqrsvwxyz" (no e, o, t, u);
 * characters are emitted from the last 5-bit group of the input to the first. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Characters needed for n bytes: ceil(n * 8 / 5). */
static inline size_t nixbase32_encoded_len(size_t n) {
        return (n * 8 + 4) / 5;
}

/* Writes nixbase32_encoded_len(n) characters plus a NUL to ret. */
void nixbase32_encode(const uint8_t *data, size_t n, char *ret);

/* Decodes exactly len characters into ret, which has room for ret_max
 * bytes.  Returns the decoded length, -EINVAL for a character outside the
 * alphabet, a length that no byte count encodes to, or set bits beyond the
 * last byte (non-canonical input); -ENOBUFS if ret is too small. */
ssize_t nixbase32_decode(const char *s, size_t len, uint8_t *ret, size_t ret_max);

/* Is c one of the 32 characters? */
int nixbase32_is_char(char c);
