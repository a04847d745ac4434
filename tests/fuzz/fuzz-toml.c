/* Fuzz target for the TOML-subset reader: any input is parsed or refused
 * with a located message; a parsed tree is walked through the public
 * getters and every string in it must be valid UTF-8. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/toml.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utf8(const char *s) {
        size_t n = strlen(s);

        for (size_t i = 0; i < n;) {
                size_t k = utf8_len((const unsigned char *) s + i, n - i);
                if (k == 0)
                        abort();
                i += k;
        }
}

static void walk(const struct toml_table *t, unsigned depth) {
        if (depth > 32)
                abort();
        for (size_t i = 0; i < toml_table_count(t); i++) {
                const char *key = toml_table_key(t, i), *s;
                const char *const *strs;
                const int64_t *ints;
                const bool *bools;
                int64_t v;
                bool b;
                size_t n;

                check_utf8(key);
                if (toml_get_string(t, key, &s) == 0)
                        check_utf8(s);
                if (toml_get_string_array(t, key, &strs, &n) == 0)
                        for (size_t j = 0; j < n; j++)
                                check_utf8(strs[j]);
                if (toml_get_int_array(t, key, &ints, &n) == 0 && n > 0)
                        v = ints[n - 1];
                if (toml_get_bool_array(t, key, &bools, &n) == 0 && n > 0)
                        b = bools[n - 1];
                (void) toml_get_int(t, key, &v);
                (void) toml_get_bool(t, key, &b);
                walk(toml_table_get(t, key), depth + 1);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* a copy of exactly size bytes: a read past the end is caught */
        char *text = malloc(size ? size : 1), err[200];
        struct toml_table *t = NULL;
        int r;

        if (!text)
                return 0;
        memcpy(text, data, size);
        r = toml_parse(text, size, &t, err, sizeof(err));
        if (r != 0 && r != -EINVAL)
                abort();
        if (r < 0 && strncmp(err, "line ", 5) != 0)
                abort();
        walk(t, 0);
        toml_free(t);
        free(text);
        return 0;
}
