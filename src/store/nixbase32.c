/* nixbase32 encoding and strict decoding (see nixbase32.h). */
#include "store/nixbase32.h"

#include <errno.h>
#include <string.h>

static const char alphabet[32] = "0123456789abcdfghijklmnpqrsvwxyz";

/* Character -> 5-bit value, or -1. */
static int char_value(char c) {
        const char *p;

        if (c == 0)
                return -1;
        p = memchr(alphabet, c, sizeof(alphabet));
        return p ? (int) (p - alphabet) : -1;
}

int nixbase32_is_char(char c) {
        return char_value(c) >= 0;
}

/* Group k (0 = least significant) holds bits [5k, 5k+5) of the input read
 * as a little-endian number; the string starts with the highest group. */
void nixbase32_encode(const uint8_t *data, size_t n, char *ret) {
        size_t len = nixbase32_encoded_len(n);

        for (size_t k = 0; k < len; k++) {
                size_t bit = k * 5, i = bit / 8, j = bit % 8;
                unsigned v = data[i] >> j;

                if (i + 1 < n)
                        v |= (unsigned) data[i + 1] << (8 - j);
                ret[len - 1 - k] = alphabet[v & 31];
        }
        ret[len] = 0;
}

ssize_t nixbase32_decode(const char *s, size_t len, uint8_t *ret, size_t ret_max) {
        size_t n = len * 5 / 8;

        if (nixbase32_encoded_len(n) != len)
                return -EINVAL;
        if (n > ret_max)
                return -ENOBUFS;
        memset(ret, 0, n);
        for (size_t k = 0; k < len; k++) {
                int v = char_value(s[len - 1 - k]);
                size_t bit = k * 5, i = bit / 8, j = bit % 8;

                if (v < 0)
                        return -EINVAL;
                ret[i] |= (uint8_t) (v << j);
                if (j > 3) { /* the group straddles two bytes */
                        unsigned carry = (unsigned) v >> (8 - j);
                        if (i + 1 < n)
                                ret[i + 1] |= (uint8_t) carry;
                        else if (carry) /* set bits past the last byte */
                                return -EINVAL;
                }
        }
        return (ssize_t) n;
}
