/* Standard base64 (RFC 4648, with padding), used for digest display forms. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Length of the encoding of n bytes, without the terminating NUL. */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Writes BASE64_ENCODED_LEN(len) characters plus a NUL to ret. */
void base64_encode(const uint8_t *data, size_t len, char *ret);

/* Decodes a padded base64 string of slen characters into ret (room for
 * ret_max bytes).  Returns the decoded length or -EINVAL on a bad character,
 * bad padding, non-zero trailing bits or a length that is not a multiple of
 * 4; -ENOBUFS if ret is too small. */
ssize_t base64_decode(const char *s, size_t slen, uint8_t *ret, size_t ret_max);
