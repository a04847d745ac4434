/* JSON input: a strict RFC 8259 parser into a small tree, for the JSON
 * files castore reads (nix path-info --json, exportReferencesGraph).
 * Bounded: nesting at most JSON_DEPTH_MAX levels. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util/macro.h"

#define JSON_DEPTH_MAX 64

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* A value.  Strings (and keys) are decoded to UTF-8 and NUL-terminated
 * (len excludes the NUL; a "\u0000" makes len the way to tell).  A
 * number keeps its text in str.  Arrays and objects hold n items; an
 * object's keys[i] names items[i], in the order written (duplicates
 * kept). */
struct json_value {
        enum json_type type;
        char *str;
        size_t len;
        size_t n;
        struct json_value *items;
        struct json_value *keys; /* objects: n strings */
};

/* Parses buf[0..len): exactly one value, surrounded by whitespace only.
 * 0 and *ret (json_value_free); -EBADMSG with *ret_why (a static
 * sentence) and *ret_offset (where) when set; -ENOMEM. */
int json_parse(const char *buf, size_t len, struct json_value **ret, const char **ret_why, size_t *ret_offset);
void json_value_free(struct json_value *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_value *, json_value_free);

/* The value of the first member called key in object o, or NULL (also
 * when o is not an object). */
const struct json_value *json_object_get(const struct json_value *o, const char *key);
