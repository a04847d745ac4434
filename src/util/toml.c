/* The TOML-subset reader (see toml.h): a recursive-descent parser over the
 * whole text, errors located by line and column. */
#include "util/toml.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/utf8.h"

#define TOML_MAX_DEPTH 32

enum toml_kind { KIND_NONE, KIND_STRING, KIND_INT, KIND_BOOL, KIND_ARRAY, KIND_TABLE };

struct toml_value {
        enum toml_kind kind;
        union {
                char *s;
                int64_t i;
                bool b;
                struct toml_table *t;
                struct {
                        enum toml_kind kind; /* of every item (meaningless while n == 0) */
                        size_t n;
                        void *items;         /* char *[], int64_t[] or bool[] */
                } a;
        };
};

struct toml_entry {
        char *key;
        struct toml_value v;
};

struct toml_table {
        struct toml_entry *e; /* capacity: n rounded up to a power of two */
        size_t n;
        bool defined;         /* by a [header]; not when only implied by [x.y] */
};

struct parser {
        const char *text, *p, *end;
        char *err;
        size_t errlen;
};

static void value_free(struct toml_value *v) {
        if (v->kind == KIND_STRING)
                free(v->s);
        else if (v->kind == KIND_TABLE)
                toml_free(v->t);
        else if (v->kind == KIND_ARRAY) {
                for (size_t i = 0; v->a.kind == KIND_STRING && i < v->a.n; i++)
                        free(((char **) v->a.items)[i]);
                free(v->a.items);
        }
        v->kind = KIND_NONE;
}

void toml_free(struct toml_table *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++) {
                free(t->e[i].key);
                value_free(&t->e[i].v);
        }
        free(t->e);
        free(t);
}

/* items (n of size bytes each) with room for one more, or NULL (items
 * unchanged): capacities are powers of two, so only n = 0, 1, 2, 4... grow. */
static void *grow(void *items, size_t n, size_t size) {
        return n & (n - 1) ? items : reallocarray(items, n ? 2 * n : 1, size);
}

static struct toml_entry *table_find(const struct toml_table *t, const char *key) {
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->e[i].key, key) == 0)
                        return &t->e[i];
        return NULL;
}

/* Takes ownership of key and v on success. */
static int table_add(struct toml_table *t, char *key, struct toml_value v) {
        struct toml_entry *e = grow(t->e, t->n, sizeof(*e));

        if (!e)
                return -ENOMEM;
        t->e = e;
        t->e[t->n++] = (struct toml_entry) { .key = key, .v = v };
        return 0;
}

_printf_(3, 4) static int fail(struct parser *ps, const char *at, const char *fmt, ...) {
        size_t line = 1, col = 1;
        va_list ap;

        for (const char *q = ps->text; q < at && q < ps->end; q++) {
                if (*q == '\n')
                        line++, col = 1;
                else if (((unsigned char) *q & 0xc0) != 0x80)
                        col++;
        }
        if (ps->errlen == 0)
                return -EINVAL;
        int k = snprintf(ps->err, ps->errlen, "line %zu, column %zu: ", line, col);
        va_start(ap, fmt);
        if (k >= 0 && (size_t) k < ps->errlen)
                vsnprintf(ps->err + k, ps->errlen - (size_t) k, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int oom(struct parser *ps) {
        if (ps->errlen)
                snprintf(ps->err, ps->errlen, "out of memory");
        return -ENOMEM;
}

static bool at_end(const struct parser *ps) {
        return ps->p >= ps->end;
}

/* The byte at p + off, or -1 past the end. */
static int peek(const struct parser *ps, size_t off) {
        return (size_t) (ps->end - ps->p) > off ? (unsigned char) ps->p[off] : -1;
}

static bool is_control(int c) {
        return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static bool is_digit(int c) {
        return c >= '0' && c <= '9';
}

static bool is_bare(int c) {
        return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-';
}

/* Says what was found instead of what the grammar wants. */
static int unexpected(struct parser *ps, const char *expected) {
        int c = peek(ps, 0);

        if (c < 0)
                return fail(ps, ps->p, "syntax error: expected %s, found end of input", expected);
        if (c == '\n' || (c == '\r' && peek(ps, 1) == '\n'))
                return fail(ps, ps->p, "syntax error: expected %s, found end of line", expected);
        if (is_control(c))
                return fail(ps, ps->p, "syntax error: expected %s, found control character 0x%02x", expected, c);
        if (c < 0x80)
                return fail(ps, ps->p, "syntax error: expected %s, found '%c'", expected, c);
        return fail(ps, ps->p, "syntax error: expected %s, found a non-ASCII character", expected);
}

static void skip_ws(struct parser *ps) {
        while (peek(ps, 0) == ' ' || peek(ps, 0) == '\t')
                ps->p++;
}

static size_t newline_len(const struct parser *ps) {
        return peek(ps, 0) == '\n' ? 1 : peek(ps, 0) == '\r' && peek(ps, 1) == '\n' ? 2 : 0;
}

/* From '#' to the end of the line (not consumed). */
static int skip_comment(struct parser *ps) {
        for (ps->p++; !at_end(ps) && !newline_len(ps); ps->p++)
                if (is_control(peek(ps, 0)))
                        return fail(ps, ps->p, "control character 0x%02x in a comment", peek(ps, 0));
        return 0;
}

/* Blanks, an optional comment, then a newline (consumed) or the end. */
static int end_of_line(struct parser *ps) {
        int r = 0;

        skip_ws(ps);
        if (peek(ps, 0) == '#')
                r = skip_comment(ps);
        if (r < 0 || at_end(ps))
                return r;
        size_t k = newline_len(ps);
        if (k == 0)
                return unexpected(ps, "end of line");
        ps->p += k;
        return 0;
}

static size_t utf8_encode(uint32_t c, char *out) {
        static const unsigned char lead[] = { 0, 0, 0xc0, 0xe0, 0xf0 };
        size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;

        for (size_t i = n - 1; i > 0; i--, c >>= 6)
                out[i] = (char) (0x80 | (c & 0x3f));
        out[0] = (char) (lead[n] | c);
        return n;
}

/* The digits of \uXXXX or \UXXXXXXXX at ps->p; at is the backslash. */
static int hex_escape(struct parser *ps, const char *at, size_t digits, char *out, size_t *ret_len) {
        uint32_t c = 0;

        for (size_t i = 0; i < digits; i++) {
                int h = peek(ps, i), l = h | 0x20;
                if (!is_digit(h) && !(l >= 'a' && l <= 'f'))
                        return fail(ps, at, "invalid escape: \\%c needs %zu hexadecimal digits", at[1], digits);
                c = c << 4 | (uint32_t) (is_digit(h) ? h - '0' : l - 'a' + 10);
        }
        if (c == 0)
                return fail(ps, at, "\\u0000 in a string is not supported");
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return fail(ps, at, "invalid escape: U+%04X is not a Unicode scalar value", c);
        ps->p += digits;
        *ret_len = utf8_encode(c, out);
        return 0;
}

/* One escape sequence at ps->p (the backslash), written to out. */
static int escape(struct parser *ps, char *out, size_t *ret_len) {
        static const char simple[] = "\"\"\\\\b\bf\fn\nr\rt\t";
        const char *at = ps->p;
        int c = peek(ps, 1);

        if (c < 0)
                return fail(ps, at, "unterminated string");
        ps->p += 2;
        if (c == 'u' || c == 'U')
                return hex_escape(ps, at, c == 'u' ? 4 : 8, out, ret_len);
        for (size_t i = 0; i + 1 < sizeof(simple); i += 2)
                if (simple[i] == c) {
                        *out = simple[i + 1];
                        *ret_len = 1;
                        return 0;
                }
        return fail(ps, at, "invalid escape sequence");
}

/* A basic ("...") or literal ('...') string, one line, at ps->p. */
static int parse_string(struct parser *ps, char **ret) {
        const char *start = ps->p;
        char quote = *start;
        const char *nl = memchr(start, '\n', (size_t) (ps->end - start));
        _cleanup_free_ char *s = malloc((size_t) ((nl ? nl : ps->end) - start) + 1); /* out <= in */
        size_t n = 0;

        if (peek(ps, 1) == quote && peek(ps, 2) == quote)
                return fail(ps, start, "multi-line strings are not supported");
        if (!s)
                return oom(ps);
        for (ps->p++; peek(ps, 0) != quote; ) {
                int c = peek(ps, 0);
                if (c < 0 || newline_len(ps))
                        return fail(ps, start, "unterminated string");
                if (is_control(c))
                        return fail(ps, ps->p, "control character 0x%02x in a string", c);
                if (c == '\\' && quote == '"') {
                        size_t k = 0;
                        int r = escape(ps, s + n, &k);
                        if (r < 0)
                                return r;
                        n += k;
                } else
                        s[n++] = *ps->p++;
        }
        ps->p++;
        s[n] = 0;
        *ret = TAKE_PTR(s);
        return 0;
}

static int parse_key(struct parser *ps, char **ret) {
        const char *start = ps->p;

        if (peek(ps, 0) == '"' || peek(ps, 0) == '\'')
                return parse_string(ps, ret);
        while (is_bare(peek(ps, 0)))
                ps->p++;
        if (ps->p == start)
                return unexpected(ps, "a key");
        *ret = strndup(start, (size_t) (ps->p - start));
        return *ret ? 0 : oom(ps);
}

static bool token_is(const char *tok, size_t len, const char *word) {
        return len == strlen(word) && memcmp(tok, word, len) == 0;
}

static bool starts_date(const char *q, size_t n) {
        bool ymd = n >= 5 && is_digit(q[0]) && is_digit(q[1]) && is_digit(q[2]) && is_digit(q[3]) && q[4] == '-';
        return ymd || (n >= 3 && is_digit(q[0]) && is_digit(q[1]) && q[2] == ':');
}

/* A decimal integer in tok (len bytes of [A-Za-z0-9_+-.:]). */
static int parse_int(struct parser *ps, const char *tok, size_t len, int64_t *ret) {
        const char *q = tok, *e = tok + len;
        bool neg = false;
        uint64_t mag = 0, limit;

        if (*q == '+' || *q == '-')
                neg = *q++ == '-';
        size_t m = (size_t) (e - q);
        if (m >= 2 && q[0] == '0' && (q[1] == 'x' || q[1] == 'o' || q[1] == 'b'))
                return fail(ps, tok, "hexadecimal, octal and binary integers are not supported");
        if (starts_date(q, m))
                return fail(ps, tok, "dates and times are not supported");
        if (token_is(q, m, "inf") || token_is(q, m, "nan") || memchr(q, '.', m) ||
            (m > 0 && is_digit(*q) && (memchr(q, 'e', m) || memchr(q, 'E', m))))
                return fail(ps, tok, "floating-point numbers are not supported");
        if (m == 0 || (q[0] == '0' && m > 1))
                return fail(ps, tok, "invalid integer %.*s", (int) len, tok);
        limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
        for (const char *d = q; d < e; d++) {
                if (*d == '_' && d > q && d + 1 < e && is_digit(d[-1]) && is_digit(d[1]))
                        continue;
                if (!is_digit(*d))
                        return fail(ps, tok, "invalid integer %.*s", (int) len, tok);
                unsigned v = (unsigned) (*d - '0');
                if (mag > (limit - v) / 10)
                        return fail(ps, tok, "integer %.*s out of range", (int) len, tok);
                mag = mag * 10 + v;
        }
        *ret = neg && mag ? -(int64_t) (mag - 1) - 1 : (int64_t) mag;
        return 0;
}

/* true, false or an integer (or a refused float or date) at ps->p. */
static int parse_scalar(struct parser *ps, struct toml_value *ret) {
        const char *tok = ps->p;
        size_t len = 0;
        int c;

        while ((c = peek(ps, len)) >= 0 && (is_bare(c) || c == '+' || c == '.' || c == ':'))
                len++;
        if (token_is(tok, len, "true") || token_is(tok, len, "false")) {
                *ret = (struct toml_value) { .kind = KIND_BOOL, .b = len == 4 };
        } else if (len > 0 && (is_digit(*tok) || *tok == '+' || *tok == '-' || token_is(tok, len, "inf") ||
                               token_is(tok, len, "nan"))) {
                ret->kind = KIND_INT;
                int r = parse_int(ps, tok, len, &ret->i);
                if (r < 0)
                        return r;
        } else
                return unexpected(ps, "a value");
        ps->p += len;
        return 0;
}

static int parse_value(struct parser *ps, struct toml_value *ret, bool in_array);

/* Blanks, newlines and comments between array items. */
static int skip_blank(struct parser *ps) {
        for (;;) {
                skip_ws(ps);
                size_t k = newline_len(ps);
                if (k > 0)
                        ps->p += k;
                else if (peek(ps, 0) != '#')
                        return 0;
                else {
                        int r = skip_comment(ps);
                        if (r < 0)
                                return r;
                }
        }
}

/* Appends item (ownership taken on success) to the array a. */
static int array_push(struct toml_value *a, const struct toml_value *item) {
        size_t n = a->a.n;
        size_t sz = item->kind == KIND_STRING ? sizeof(char *) : item->kind == KIND_INT ? sizeof(int64_t) : sizeof(bool);
        void *items = grow(a->a.items, n, sz);

        if (!items)
                return -ENOMEM;
        a->a.items = items;
        if (item->kind == KIND_STRING)
                ((char **) a->a.items)[n] = item->s;
        else if (item->kind == KIND_INT)
                ((int64_t *) a->a.items)[n] = item->i;
        else
                ((bool *) a->a.items)[n] = item->b;
        a->a.kind = item->kind;
        a->a.n++;
        return 0;
}

/* [ item, ... ] at ps->p; on failure *ret holds what was read (value_free). */
static int parse_array(struct parser *ps, struct toml_value *ret) {
        const char *start = ps->p;
        int r;

        *ret = (struct toml_value) { .kind = KIND_ARRAY };
        for (ps->p++;;) {
                struct toml_value item = { .kind = KIND_NONE };
                const char *at;
                r = skip_blank(ps);
                if (r < 0)
                        return r;
                if (peek(ps, 0) == ']')
                        break;
                if (at_end(ps))
                        return fail(ps, start, "unterminated array");
                at = ps->p;
                r = parse_value(ps, &item, true);
                if (r < 0)
                        return value_free(&item), r;
                if (ret->a.n > 0 && item.kind != ret->a.kind)
                        return value_free(&item), fail(ps, at, "arrays mixing value types are not supported");
                if (array_push(ret, &item) < 0)
                        return value_free(&item), oom(ps);
                r = skip_blank(ps);
                if (r < 0)
                        return r;
                if (peek(ps, 0) == ']')
                        break;
                if (at_end(ps))
                        return fail(ps, start, "unterminated array");
                if (peek(ps, 0) != ',')
                        return unexpected(ps, "',' or ']'");
                ps->p++;
        }
        ps->p++;
        return 0;
}

static int parse_value(struct parser *ps, struct toml_value *ret, bool in_array) {
        int c = peek(ps, 0);

        if (c == '"' || c == '\'') {
                int r = parse_string(ps, &ret->s);
                if (r >= 0)
                        ret->kind = KIND_STRING;
                return r;
        }
        if (c == '[' && in_array)
                return fail(ps, ps->p, "nested arrays are not supported");
        if (c == '[')
                return parse_array(ps, ret);
        if (c == '{')
                return fail(ps, ps->p, "inline tables are not supported");
        return parse_scalar(ps, ret);
}

/* The sub-table key of t (made, implied, if absent).  Consumes key. */
static int descend(struct parser *ps, struct toml_table *t, char *key, const char *at, struct toml_table **ret) {
        _cleanup_free_ char *k = key;
        struct toml_entry *e = table_find(t, k);
        struct toml_value v = { .kind = KIND_TABLE };

        if (e && e->v.kind != KIND_TABLE)
                return fail(ps, at, "key \"%s\" is already defined as a value", k);
        if (e) {
                *ret = e->v.t;
                return 0;
        }
        v.t = calloc(1, sizeof(*v.t));
        if (!v.t || table_add(t, k, v) < 0)
                return free(v.t), oom(ps);
        k = NULL;
        *ret = v.t;
        return 0;
}

/* [a.b."c"] at ps->p: the table it defines becomes *cur. */
static int parse_header(struct parser *ps, struct toml_table *root, struct toml_table **cur) {
        const char *start = ps->p;
        struct toml_table *t = root;

        if (peek(ps, 1) == '[')
                return fail(ps, start, "arrays of tables ([[...]]) are not supported");
        for (size_t depth = 0;; depth++) {
                char *key = NULL;
                ps->p++;
                skip_ws(ps);
                if (depth == TOML_MAX_DEPTH)
                        return fail(ps, start, "tables nested deeper than %d are not supported", TOML_MAX_DEPTH);
                const char *at = ps->p;
                int r = parse_key(ps, &key);
                if (r >= 0)
                        r = descend(ps, t, key, at, &t);
                if (r < 0)
                        return r;
                skip_ws(ps);
                if (peek(ps, 0) == ']')
                        break;
                if (peek(ps, 0) != '.')
                        return unexpected(ps, "'.' or ']'");
        }
        ps->p++;
        if (t->defined)
                return fail(ps, start, "table %.*s defined twice", (int) (ps->p - start), start);
        t->defined = true;
        *cur = t;
        return 0;
}

/* key = value at ps->p, added to t. */
static int parse_keyval(struct parser *ps, struct toml_table *t) {
        _cleanup_free_ char *key = NULL;
        struct toml_value v = { .kind = KIND_NONE };
        const char *start = ps->p;
        int r = parse_key(ps, &key);

        if (r < 0)
                return r;
        skip_ws(ps);
        if (peek(ps, 0) == '.')
                return fail(ps, ps->p, "dotted keys are not supported: use a [table] header");
        if (peek(ps, 0) != '=')
                return unexpected(ps, "'='");
        ps->p++;
        skip_ws(ps);
        if (table_find(t, key))
                return fail(ps, start, "duplicate key \"%s\"", key);
        r = parse_value(ps, &v, false);
        if (r < 0)
                return value_free(&v), r;
        if (table_add(t, key, v) < 0)
                return value_free(&v), oom(ps);
        key = NULL;
        return 0;
}

int toml_parse(const char *text, size_t len, struct toml_table **ret, char *err, size_t errlen) {
        _cleanup_(toml_freep) struct toml_table *root = NULL;
        struct toml_table *cur;

        if ((!text && len) || !ret || (errlen && !err))
                return -EINVAL;
        text = text ? text : "";
        struct parser ps = { .text = text, .p = text, .end = text + len, .err = err, .errlen = errlen };
        if (errlen)
                err[0] = 0;
        for (const char *q = text; q < ps.end;) {
                size_t k = utf8_len((const unsigned char *) q, (size_t) (ps.end - q));
                if (k == 0)
                        return fail(&ps, q, "invalid UTF-8");
                q += k;
        }
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
                ps.p += 3; /* a byte order mark */
        cur = root = calloc(1, sizeof(*root));
        if (!root)
                return oom(&ps);
        while (!at_end(&ps)) {
                int r = 0, c;
                skip_ws(&ps);
                c = peek(&ps, 0);
                if (c == '[')
                        r = parse_header(&ps, root, &cur);
                else if (c >= 0 && c != '#' && !newline_len(&ps))
                        r = parse_keyval(&ps, cur);
                if (r >= 0)
                        r = end_of_line(&ps);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(root);
        return 0;
}

static const struct toml_value *lookup(const struct toml_table *t, const char *key) {
        const struct toml_entry *e = t && key ? table_find(t, key) : NULL;
        return e ? &e->v : NULL;
}

const struct toml_table *toml_table_get(const struct toml_table *t, const char *key) {
        const struct toml_value *v = lookup(t, key);
        return v && v->kind == KIND_TABLE ? v->t : NULL;
}

size_t toml_table_count(const struct toml_table *t) {
        return t ? t->n : 0;
}

const char *toml_table_key(const struct toml_table *t, size_t i) {
        return t && i < t->n ? t->e[i].key : NULL;
}

/* The value of key if it is of type kind (arrays: of items of type item). */
static int get(const struct toml_table *t, const char *key, enum toml_kind kind, enum toml_kind item,
               const struct toml_value **ret) {
        const struct toml_value *v = lookup(t, key);

        if (!v)
                return -ENOENT;
        if (v->kind != kind || (kind == KIND_ARRAY && v->a.n > 0 && v->a.kind != item))
                return -EINVAL;
        *ret = v;
        return 0;
}

/* toml_get_string, _int, _bool: the value of key if it is of that type. */
#define DEFINE_GETTER(name, type, kind, field)                                          \
        int toml_get_##name(const struct toml_table *t, const char *key, type *ret) {   \
                const struct toml_value *v;                                             \
                int r = get(t, key, kind, KIND_NONE, &v);                               \
                if (r >= 0)                                                             \
                        *ret = v->field;                                                \
                return r;                                                               \
        }
DEFINE_GETTER(string, const char *, KIND_STRING, s)
DEFINE_GETTER(int, int64_t, KIND_INT, i)
DEFINE_GETTER(bool, bool, KIND_BOOL, b)

/* toml_get_string_array, _int_array, _bool_array: the items of an array. */
#define DEFINE_ARRAY_GETTER(name, type, item)                                                                      \
        int toml_get_##name##_array(const struct toml_table *t, const char *key, type const **ret, size_t *ret_n) { \
                const struct toml_value *v;                                                                        \
                int r = get(t, key, KIND_ARRAY, item, &v);                                                         \
                if (r >= 0)                                                                                        \
                        *ret = v->a.items, *ret_n = v->a.n;                                                        \
                return r;                                                                                          \
        }
DEFINE_ARRAY_GETTER(string, const char *, KIND_STRING)
DEFINE_ARRAY_GETTER(int, int64_t, KIND_INT)
DEFINE_ARRAY_GETTER(bool, bool, KIND_BOOL)
