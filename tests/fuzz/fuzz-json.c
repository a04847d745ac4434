/* Fuzz target for the JSON reader and the references an import reads
 * from it: any input is parsed or refused with a sentence and an offset
 * inside the input; a parsed tree is walked whole, its strings as long as
 * they say. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/nix_import.h"
#include "util/json_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct json_value *v, unsigned depth) {
        if (depth > JSON_DEPTH_MAX)
                abort();
        if ((v->type == JSON_STRING || v->type == JSON_NUMBER) && (!v->str || v->str[v->len] != 0))
                abort();
        for (size_t i = 0; i < v->n; i++) {
                if (v->type == JSON_OBJECT)
                        walk(&v->keys[i], depth + 1);
                walk(&v->items[i], depth + 1);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* a copy of exactly size bytes: a read past the end is caught */
        char *text = malloc(size ? size : 1);
        struct json_value *v = NULL;
        struct nix_store_path *refs = NULL;
        const char *why = NULL;
        size_t off = 0, n = 0;
        int r;

        if (!text)
                return 0;
        memcpy(text, data, size);
        r = json_parse(text, size, &v, &why, &off);
        if (r != 0 && r != -EBADMSG)
                abort();
        if (r < 0 && (!why || off > size))
                abort();
        if (r == 0)
                walk(v, 0);
        json_value_free(v);
        r = nix_references_from_json(text, size, &refs, &n, &why);
        if (r != 0 && r != -EBADMSG)
                abort();
        free(refs);
        free(text);
        return 0;
}
