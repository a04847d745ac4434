/* A reader for the subset of TOML that castore's configuration files need
 * (snix's store composition file): tables, strings, integers, booleans and
 * one-line or multi-line arrays of them.  Anything else is refused by name.
 *
 * Supported: comments, [a.b] and [a."quoted"] table headers, key = value
 * with bare ([A-Za-z0-9_-]) or quoted keys, basic strings with the escapes
 * \" \\ \b \f \n \r \t \uXXXX \UXXXXXXXX, literal strings, decimal integers
 * (sign, underscores between digits; out of int64 range refused), true and
 * false, arrays of one of those types (trailing comma allowed).
 * Refused as "not supported": dotted keys (a.b = 1: write a [table] header
 * instead), inline tables, arrays of tables [[x]], nested or mixed-type
 * arrays, multi-line strings, floats, dates and times, hex/octal/binary
 * integers, \u0000 (strings are NUL-terminated), tables nested deeper than
 * 32.  Refused as errors: duplicate keys, a table defined twice, invalid
 * UTF-8, control characters in strings and comments, unterminated strings
 * and arrays, anything else.
 *
 * A parsed tree is immutable: readers may share it between threads.
 * Lookups are linear: meant for files of at most a few hundred keys. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"

struct toml_table;

/* Parses text (len bytes, no NUL terminator needed) into a tree of tables
 * (*ret, owned by the caller: toml_free).  On failure returns -EINVAL (bad
 * or unsupported input) or -ENOMEM, and writes into err (errlen bytes,
 * errlen may be 0) a message "line L, column C: what" (columns count
 * characters from 1). */
int toml_parse(const char *text, size_t len, struct toml_table **ret, char *err, size_t errlen);
void toml_free(struct toml_table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct toml_table *, toml_free);

/* The sub-table named key, or NULL (absent, another type, or t is NULL). */
const struct toml_table *toml_table_get(const struct toml_table *t, const char *key);
/* Entries of t (values and sub-tables) in file order; 0 for NULL. */
size_t toml_table_count(const struct toml_table *t);
/* The key of entry i (NULL if i >= count). */
const char *toml_table_key(const struct toml_table *t, size_t i);

/* Typed getters: 0, -ENOENT (absent, or t is NULL) or -EINVAL (another
 * type).  Returned strings and arrays live as long as the tree.  An empty
 * array is of every type (*ret_n = 0, *ret may be NULL). */
int toml_get_string(const struct toml_table *t, const char *key, const char **ret);
int toml_get_int(const struct toml_table *t, const char *key, int64_t *ret);
int toml_get_bool(const struct toml_table *t, const char *key, bool *ret);
int toml_get_string_array(const struct toml_table *t, const char *key, const char *const **ret, size_t *ret_n);
int toml_get_int_array(const struct toml_table *t, const char *key, const int64_t **ret, size_t *ret_n);
int toml_get_bool_array(const struct toml_table *t, const char *key, const bool **ret, size_t *ret_n);
