/* JSON string output (see json.h). */
#include "util/json.h"

#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n) {
        uint32_t c;
        size_t len;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2, c = p[0] & 0x1f;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                len = 3, c = p[0] & 0x0f;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                len = 4, c = p[0] & 0x07;
        else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (p[i] & 0x3f);
        }
        if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) || (len == 4 && (c < 0x10000 || c > 0x10ffff)))
                return 0;
        return len;
}

void json_string(FILE *f, const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s;

        fputc('"', f);
        for (size_t i = 0; i < len;) {
                size_t k = utf8_len(p + i, len - i);

                if (k == 0)
                        fprintf(f, "\\u%04x", 0xdc00 + p[i]), k = 1; /* p[i] >= 0x80 */
                else if (p[i] == '"' || p[i] == '\\')
                        fprintf(f, "\\%c", p[i]);
                else if (p[i] < 0x20 || p[i] == 0x7f)
                        fprintf(f, "\\u%04x", p[i]);
                else
                        fwrite(p + i, 1, k, f);
                i += k;
        }
        fputc('"', f);
}

void json_cstring(FILE *f, const char *s) {
        json_string(f, s, strlen(s));
}
