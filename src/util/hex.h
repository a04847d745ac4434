/* Hexadecimal digits: reading them (digests may be given in hex) and
 * writing bytes as lower-case hex. */
#pragma once

#include <stddef.h>

/* The value of one hex digit (either case), or -1. */
static inline int hex_digit_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* len bytes as 2 * len lower-case hex digits and a NUL into ret. */
static inline void hex_encode(const void *data, size_t len, char *ret) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = data;

        for (size_t i = 0; i < len; i++) {
                ret[2 * i] = hex[p[i] >> 4];
                ret[2 * i + 1] = hex[p[i] & 15];
        }
        ret[2 * len] = 0;
}
