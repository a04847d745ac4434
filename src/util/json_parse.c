/* A strict recursive-descent JSON parser (json_parse.h): one pass over
 * the input building the tree, every error a sentence and an offset. */
#include "util/json_parse.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct parser {
        const char *p, *end, *start;
        const char *why;
};

static int fail(struct parser *ps, const char *why) {
        ps->why = why;
        return -EBADMSG;
}

static void skip_ws(struct parser *ps) {
        while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
                ps->p++;
}

static void value_clear(struct json_value *v) {
        for (size_t i = 0; i < v->n; i++) {
                if (v->items)
                        value_clear(&v->items[i]);
                if (v->keys)
                        value_clear(&v->keys[i]);
        }
        free(v->items);
        free(v->keys);
        free(v->str);
        *v = (struct json_value){};
}

void json_value_free(struct json_value *v) {
        if (!v)
                return;
        value_clear(v);
        free(v);
}

static int hex4(struct parser *ps, uint32_t *ret) {
        uint32_t u = 0;

        if (ps->end - ps->p < 4)
                return fail(ps, "truncated \\u escape");
        for (int i = 0; i < 4; i++) {
                char c = *ps->p++;

                u <<= 4;
                if (c >= '0' && c <= '9')
                        u |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        u |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        u |= (uint32_t) (c - 'A' + 10);
                else
                        return fail(ps, "bad hex digit in a \\u escape");
        }
        *ret = u;
        return 0;
}

static char *put_utf8(char *o, uint32_t u) {
        if (u < 0x80)
                *o++ = (char) u;
        else if (u < 0x800) {
                *o++ = (char) (0xc0 | u >> 6);
                *o++ = (char) (0x80 | (u & 0x3f));
        } else if (u < 0x10000) {
                *o++ = (char) (0xe0 | u >> 12);
                *o++ = (char) (0x80 | (u >> 6 & 0x3f));
                *o++ = (char) (0x80 | (u & 0x3f));
        } else {
                *o++ = (char) (0xf0 | u >> 18);
                *o++ = (char) (0x80 | (u >> 12 & 0x3f));
                *o++ = (char) (0x80 | (u >> 6 & 0x3f));
                *o++ = (char) (0x80 | (u & 0x3f));
        }
        return o;
}

/* \uXXXX, a surrogate pair taken whole; lone surrogates are refused. */
static int unicode_escape(struct parser *ps, char **o) {
        uint32_t u, lo;
        int r = hex4(ps, &u);

        if (r < 0)
                return r;
        if (u >= 0xdc00 && u <= 0xdfff)
                return fail(ps, "lone low surrogate");
        if (u >= 0xd800 && u <= 0xdbff) {
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
                        return fail(ps, "lone high surrogate");
                ps->p += 2;
                r = hex4(ps, &lo);
                if (r < 0)
                        return r;
                if (lo < 0xdc00 || lo > 0xdfff)
                        return fail(ps, "lone high surrogate");
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        }
        *o = put_utf8(*o, u);
        return 0;
}

static const char escapes_in[] = "\"\\/bfnrt", escapes_out[] = "\"\\/\b\f\n\r\t";

/* At the opening quote.  Raw bytes >= 0x80 are kept as they are. */
static int parse_string(struct parser *ps, struct json_value *v) {
        const char *q = ps->p + 1;
        char *o;
        int r;

        /* decoded text is never longer than the source */
        while (q < ps->end && *q != '"')
                q += *q == '\\' && q + 1 < ps->end ? 2 : 1;
        if (q >= ps->end)
                return fail(ps, "unterminated string");
        v->type = JSON_STRING;
        v->str = o = malloc((size_t) (q - ps->p));
        if (!v->str)
                return -ENOMEM;
        for (ps->p++; *ps->p != '"';) {
                unsigned char c = (unsigned char) *ps->p++;
                const char *e;

                if (c < 0x20)
                        return fail(ps, "control character in a string");
                if (c != '\\') {
                        *o++ = (char) c;
                        continue;
                }
                if (*ps->p == 'u') {
                        ps->p++;
                        r = unicode_escape(ps, &o);
                        if (r < 0)
                                return r;
                        continue;
                }
                e = *ps->p ? strchr(escapes_in, *ps->p) : NULL;
                if (!e)
                        return fail(ps, "bad escape in a string");
                *o++ = escapes_out[e - escapes_in];
                ps->p++;
        }
        ps->p++;
        *o = 0;
        v->len = (size_t) (o - v->str);
        return 0;
}

static size_t digits(struct parser *ps) {
        const char *s = ps->p;

        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
                ps->p++;
        return (size_t) (ps->p - s);
}

static int parse_number(struct parser *ps, struct json_value *v) {
        const char *s = ps->p;

        if (ps->p < ps->end && *ps->p == '-')
                ps->p++;
        if (ps->p < ps->end && *ps->p == '0')
                ps->p++;
        else if (digits(ps) == 0)
                return fail(ps, "bad number");
        if (ps->p < ps->end && *ps->p == '.') {
                ps->p++;
                if (digits(ps) == 0)
                        return fail(ps, "bad number");
        }
        if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
                ps->p++;
                if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
                        ps->p++;
                if (digits(ps) == 0)
                        return fail(ps, "bad number");
        }
        v->type = JSON_NUMBER;
        v->len = (size_t) (ps->p - s);
        v->str = strndup(s, v->len);
        return v->str ? 0 : -ENOMEM;
}

static int parse_value(struct parser *ps, struct json_value *v, unsigned depth);

/* Grows the arrays of v by one slot (keys too for objects). */
static int grow(struct json_value *v, size_t *cap) {
        struct json_value *t;

        if (v->n < *cap)
                return 0;
        *cap = *cap ? *cap * 2 : 4;
        t = reallocarray(v->items, *cap, sizeof(*t));
        if (!t)
                return -ENOMEM;
        v->items = t;
        if (v->type == JSON_OBJECT) {
                t = reallocarray(v->keys, *cap, sizeof(*t));
                if (!t)
                        return -ENOMEM;
                v->keys = t;
        }
        return 0;
}

/* At '[' or '{'. */
static int parse_container(struct parser *ps, struct json_value *v, unsigned depth) {
        char close = *ps->p == '[' ? ']' : '}';
        size_t cap = 0;
        int r;

        if (depth >= JSON_DEPTH_MAX)
                return fail(ps, "nested too deeply");
        v->type = close == ']' ? JSON_ARRAY : JSON_OBJECT;
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                return 0;
        }
        for (;;) {
                r = grow(v, &cap);
                if (r < 0)
                        return r;
                v->items[v->n] = (struct json_value){};
                if (v->keys)
                        v->keys[v->n] = (struct json_value){};
                v->n++;
                if (v->type == JSON_OBJECT) {
                        skip_ws(ps);
                        if (ps->p >= ps->end || *ps->p != '"')
                                return fail(ps, "expected a member name");
                        r = parse_string(ps, &v->keys[v->n - 1]);
                        if (r < 0)
                                return r;
                        skip_ws(ps);
                        if (ps->p >= ps->end || *ps->p != ':')
                                return fail(ps, "expected ':'");
                        ps->p++;
                }
                r = parse_value(ps, &v->items[v->n - 1], depth + 1);
                if (r < 0)
                        return r;
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == ',') {
                        ps->p++;
                        continue;
                }
                if (ps->p < ps->end && *ps->p == close) {
                        ps->p++;
                        return 0;
                }
                return fail(ps, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
        }
}

static int literal(struct parser *ps, const char *word, enum json_type t, struct json_value *v) {
        size_t n = strlen(word);

        if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
                return fail(ps, "unexpected character");
        ps->p += n;
        v->type = t;
        return 0;
}

static int parse_value(struct parser *ps, struct json_value *v, unsigned depth) {
        skip_ws(ps);
        if (ps->p >= ps->end)
                return fail(ps, "unexpected end of input");
        switch (*ps->p) {
        case '"':
                return parse_string(ps, v);
        case '[':
        case '{':
                return parse_container(ps, v, depth);
        case 't':
                return literal(ps, "true", JSON_TRUE, v);
        case 'f':
                return literal(ps, "false", JSON_FALSE, v);
        case 'n':
                return literal(ps, "null", JSON_NULL, v);
        default:
                return parse_number(ps, v);
        }
}

int json_parse(const char *buf, size_t len, struct json_value **ret, const char **ret_why, size_t *ret_offset) {
        struct parser ps = { .p = buf, .end = buf + len, .start = buf };
        _cleanup_(json_value_freep) struct json_value *v = calloc(1, sizeof(*v));
        int r;

        if (!v)
                return -ENOMEM;
        r = parse_value(&ps, v, 0);
        if (r >= 0) {
                skip_ws(&ps);
                if (ps.p < ps.end)
                        r = fail(&ps, "trailing characters after the value");
        }
        if (r == -EBADMSG) {
                if (ret_why)
                        *ret_why = ps.why;
                if (ret_offset)
                        *ret_offset = (size_t) (ps.p - ps.start);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

const struct json_value *json_object_get(const struct json_value *o, const char *key) {
        if (!o || o->type != JSON_OBJECT)
                return NULL;
        for (size_t i = 0; i < o->n; i++)
                if (strcmp(o->keys[i].str, key) == 0 && o->keys[i].len == strlen(key))
                        return &o->items[i];
        return NULL;
}
