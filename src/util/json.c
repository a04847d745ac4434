/* JSON string output (see json.h). */
#include "util/json.h"

#include <stdint.h>
#include <string.h>

#include "util/utf8.h"

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
