/* Standard padded base64 encode/decode, strict on input. */
#include "util/base64.h"

#include <errno.h>
#include <stdbool.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(const uint8_t *d, size_t len, char *ret) {
        size_t i, o = 0;

        for (i = 0; i + 2 < len; i += 3) {
                uint32_t v = (uint32_t) d[i] << 16 | (uint32_t) d[i + 1] << 8 | d[i + 2];
                ret[o++] = alphabet[v >> 18 & 63];
                ret[o++] = alphabet[v >> 12 & 63];
                ret[o++] = alphabet[v >> 6 & 63];
                ret[o++] = alphabet[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t) d[i] << 16 | (i + 1 < len ? (uint32_t) d[i + 1] << 8 : 0);
                ret[o++] = alphabet[v >> 18 & 63];
                ret[o++] = alphabet[v >> 12 & 63];
                ret[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
                ret[o++] = '=';
        }
        ret[o] = 0;
}

static int decode_char(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

ssize_t base64_decode(const char *s, size_t slen, uint8_t *ret, size_t ret_max) {
        size_t o = 0;

        if (slen % 4 != 0)
                return -EINVAL;
        for (size_t i = 0; i < slen; i += 4) {
                bool last = i + 4 == slen;
                int pad = 0, v[4];

                for (int k = 0; k < 4; k++) {
                        v[k] = decode_char(s[i + k]);
                        if (v[k] >= 0)
                                continue;
                        if (!last || s[i + k] != '=' || k < 2)
                                return -EINVAL;
                        v[k] = 0;
                        pad++;
                }
                if (pad == 1 && s[i + 3] != '=')
                        return -EINVAL; /* "x=x=" style */
                uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | v[3];
                if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
                        return -EINVAL; /* non-zero trailing bits */
                size_t n = 3 - pad;
                if (o + n > ret_max)
                        return -ENOBUFS;
                for (size_t k = 0; k < n; k++)
                        ret[o++] = w >> (16 - 8 * k) & 0xff;
        }
        return o;
}
