/* Unit tests for the JSON string writer: escapes, valid UTF-8 kept,
 * invalid bytes as \udcXX (Python's surrogateescape); and for the JSON
 * parser: every kind of value, escapes, and the refusals. */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"
#include "util/json.h"
#include "util/json_parse.h"

static void check_json(const char *in, size_t len, const char *want) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        CHECK(f);
        json_string(f, in, len);
        CHECK(fclose(f) == 0);
        CHECK_STREQ(buf, want);
        free(buf);
}

static void test_strings(void) {
        check_json("plain", 5, "\"plain\"");
        check_json("", 0, "\"\"");
        check_json("q\"b\\", 4, "\"q\\\"b\\\\\"");
        check_json("a\nb\x01\x7f", 5, "\"a\\u000ab\\u0001\\u007f\"");
        check_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
        check_json("caf\xe9", 4, "\"caf\\udce9\"");           /* Latin-1 */
        check_json("\xff\xfe", 2, "\"\\udcff\\udcfe\"");
        check_json("\xc0\xaf", 2, "\"\\udcc0\\udcaf\"");       /* overlong */
        check_json("\xed\xa0\x80", 3, "\"\\udced\\udca0\\udc80\""); /* a surrogate */
        check_json("\xe2\x82", 2, "\"\\udce2\\udc82\"");       /* cut short */
        check_json("a\0b", 3, "\"a\\u0000b\"");
}

static struct json_value *parse_ok(const char *s) {
        struct json_value *v = NULL;

        CHECK_OK(json_parse(s, strlen(s), &v, NULL, NULL));
        return v;
}

static void parse_bad(const char *s, size_t len, size_t want_offset) {
        struct json_value *v = NULL;
        const char *why = NULL;
        size_t off = 0;

        CHECK_EQ(json_parse(s, len, &v, &why, &off), -EBADMSG);
        CHECK(v == NULL);
        CHECK(why != NULL);
        if (want_offset != (size_t) -1)
                CHECK_EQ(off, want_offset);
}

static void test_parse_values(void) {
        _cleanup_(json_value_freep) struct json_value *v =
                parse_ok(" {\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {}, \"c\": [], \"a\": 0}\n");
        const struct json_value *a;

        CHECK_EQ(v->type, JSON_OBJECT);
        CHECK_EQ(v->n, 4);
        a = json_object_get(v, "a"); /* the first of duplicates */
        CHECK(a && a->type == JSON_ARRAY && a->n == 6);
        CHECK_EQ(a->items[0].type, JSON_NUMBER);
        CHECK_STREQ(a->items[1].str, "-2.5e3");
        CHECK_EQ(a->items[2].type, JSON_TRUE);
        CHECK_EQ(a->items[3].type, JSON_FALSE);
        CHECK_EQ(a->items[4].type, JSON_NULL);
        CHECK_STREQ(a->items[5].str, "x");
        CHECK(json_object_get(v, "b")->type == JSON_OBJECT);
        CHECK(json_object_get(v, "c")->n == 0);
        CHECK(json_object_get(v, "d") == NULL);
        CHECK(json_object_get(a, "a") == NULL);
}

static void test_parse_strings(void) {
        _cleanup_(json_value_freep) struct json_value *v =
                parse_ok("[\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\\ud83d\\ude00\", \"a\\u0000b\", \"caf\xc3\xa9\"]");

        CHECK_STREQ(v->items[0].str, "q\"b\\s/\b\f\n\r\t");
        CHECK_STREQ(v->items[1].str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        CHECK_EQ(v->items[2].len, 3); /* the NUL counts: len tells */
        CHECK_STREQ(v->items[3].str, "caf\xc3\xa9");
}

static void test_parse_refusals(void) {
        char deep[2 * JSON_DEPTH_MAX + 3];

        parse_bad("", 0, 0);
        parse_bad("[1,]", 4, 3);
        parse_bad("[1 2]", 5, 3);
        parse_bad("{\"a\" 1}", 7, 5);
        parse_bad("{1: 2}", 6, 1);
        parse_bad("\"abc", 4, (size_t) -1);
        parse_bad("\"a\nb\"", 5, (size_t) -1);
        parse_bad("\"\\x\"", 4, (size_t) -1);
        parse_bad("\"\\ud800\"", 8, (size_t) -1);
        parse_bad("\"\\udc00\"", 8, (size_t) -1);
        parse_bad("\"\\u12g4\"", 8, (size_t) -1);
        parse_bad("01", 2, 1);
        parse_bad("-", 1, 1);
        parse_bad("1.", 2, 2);
        parse_bad("1e", 2, 2);
        parse_bad("tru", 3, 0);
        parse_bad("nul", 3, 0);
        parse_bad("[] []", 5, 3);
        parse_bad("[\"a\"\0]", 5, 4);
        memset(deep, '[', JSON_DEPTH_MAX + 1);
        memset(deep + JSON_DEPTH_MAX + 1, ']', JSON_DEPTH_MAX + 1);
        parse_bad(deep, 2 * JSON_DEPTH_MAX + 2, (size_t) -1);
        /* JSON_DEPTH_MAX levels are fine */
        deep[2 * JSON_DEPTH_MAX + 1] = 0;
        json_value_free(parse_ok(deep + 1));
}

int main(void) {
        RUN(test_strings);
        RUN(test_parse_values);
        RUN(test_parse_strings);
        RUN(test_parse_refusals);
        return 0;
}
