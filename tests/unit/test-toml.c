/* Unit tests for the TOML-subset reader: snix's composition example, each
 * escape, each refusal with its line and column, every prefix and byte
 * flips of a valid file (no crash, no leak under ASan). */
#include <string.h>

#include "test.h"
#include "util/toml.h"

static const char example[] =
        "# comment\n"
        "[blobservices.root]\n"
        "type = \"combined\"\n"
        "near = \"near\"\n"
        "far = \"far\"\n"
        "\n"
        "[blobservices.far]\n"
        "type = \"grpc\"\n"
        "url = \"grpc+http://[::1]:8000\"\n"
        "\n"
        "[directoryservices.root]\n"
        "type = \"memory\"\n"
        "\n"
        "[pathinfoservices.root]\n"
        "type = \"lru\"\n"
        "capacity = 1000\n"
        "public_keys = [\"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\", \"k2:abc\"]\n"
        "enabled = true\n";

static struct toml_table *parse_ok(const char *text) {
        struct toml_table *t = NULL;
        char err[256];
        int r = toml_parse(text, strlen(text), &t, err, sizeof(err));

        if (r < 0)
                fprintf(stderr, "unexpected error: %s\n", err);
        CHECK_OK(r);
        CHECK_STREQ(err, "");
        return t;
}

/* text must be refused with -EINVAL and a message that starts with
 * "line L, column C: " and contains what. */
static void refused_n(const char *text, size_t len, int line, int col, const char *what) {
        struct toml_table *t = NULL;
        char err[256], prefix[64];

        CHECK_EQ(toml_parse(text, len, &t, err, sizeof(err)), -EINVAL);
        CHECK(t == NULL);
        snprintf(prefix, sizeof(prefix), "line %d, column %d: ", line, col);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, what)) {
                fprintf(stderr, "input: %s\nwant:  %s...%s\ngot:   %s\n", text, prefix, what, err);
                abort();
        }
}

static void refused(const char *text, int line, int col, const char *what) {
        refused_n(text, strlen(text), line, col, what);
}

static const char *str(const struct toml_table *t, const char *key) {
        const char *s = NULL;
        CHECK_OK(toml_get_string(t, key, &s));
        return s;
}

static int64_t num(const struct toml_table *t, const char *key) {
        int64_t v = 0;
        CHECK_OK(toml_get_int(t, key, &v));
        return v;
}

static void test_example(void) {
        _cleanup_(toml_freep) struct toml_table *root = parse_ok(example);
        const struct toml_table *blob = toml_table_get(root, "blobservices"), *t;
        const char *const *keys;
        const char *s;
        size_t n;
        bool b;
        int64_t i;

        CHECK_EQ(toml_table_count(root), 3);
        CHECK_STREQ(toml_table_key(root, 0), "blobservices");
        CHECK_STREQ(toml_table_key(root, 1), "directoryservices");
        CHECK_STREQ(toml_table_key(root, 2), "pathinfoservices");
        CHECK(toml_table_key(root, 3) == NULL);
        CHECK_EQ(toml_table_count(blob), 2);
        CHECK_STREQ(toml_table_key(blob, 0), "root");
        CHECK_STREQ(toml_table_key(blob, 1), "far");
        t = toml_table_get(blob, "root");
        CHECK_EQ(toml_table_count(t), 3);
        CHECK_STREQ(toml_table_key(t, 0), "type");
        CHECK_STREQ(toml_table_key(t, 1), "near");
        CHECK_STREQ(toml_table_key(t, 2), "far");
        CHECK_STREQ(str(t, "type"), "combined");
        CHECK_STREQ(str(t, "far"), "far");
        CHECK_STREQ(str(toml_table_get(blob, "far"), "url"), "grpc+http://[::1]:8000");
        CHECK_STREQ(str(toml_table_get(toml_table_get(root, "directoryservices"), "root"), "type"), "memory");

        t = toml_table_get(toml_table_get(root, "pathinfoservices"), "root");
        CHECK_EQ(num(t, "capacity"), 1000);
        CHECK_OK(toml_get_bool(t, "enabled", &b));
        CHECK(b);
        CHECK_OK(toml_get_string_array(t, "public_keys", &keys, &n));
        CHECK_EQ(n, 2);
        CHECK_STREQ(keys[0], "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=");
        CHECK_STREQ(keys[1], "k2:abc");

        /* absent, wrong type, NULL table */
        CHECK_EQ(toml_get_string(t, "nope", &s), -ENOENT);
        CHECK_EQ(toml_get_string(t, "capacity", &s), -EINVAL);
        CHECK_EQ(toml_get_int(t, "type", &i), -EINVAL);
        CHECK_EQ(toml_get_bool(t, "capacity", &b), -EINVAL);
        CHECK_EQ(toml_get_string_array(t, "type", &keys, &n), -EINVAL);
        CHECK_EQ(toml_get_int_array(t, "public_keys", (const int64_t **) &keys, &n), -EINVAL);
        CHECK_EQ(toml_get_string(NULL, "type", &s), -ENOENT);
        CHECK(toml_table_get(t, "type") == NULL);
        CHECK(toml_table_get(NULL, "x") == NULL);
        CHECK_EQ(toml_table_count(NULL), 0);
        CHECK_EQ(toml_get_string(root, "blobservices", &s), -EINVAL);
}

static void test_escapes(void) {
        _cleanup_(toml_freep) struct toml_table *t = parse_ok(
                "q = \"a\\\"b\"\n"
                "bs = \"a\\\\b\"\n"
                "nl = \"a\\nb\"\n"
                "tab = \"a\\tb\"\n"
                "cr = \"a\\rb\"\n"
                "bf = \"\\b\\f\"\n"
                "u = \"caf\\u00e9 \\u20AC\"\n"
                "U = \"\\U0001F600\\U00000041\"\n"
                "raw = \"caf\xc3\xa9\ttab\"\n"
                "lit = 'C:\\path\\n \"q\"'\n"
                "empty = \"\"\n"
                "elit = ''\n");

        CHECK_STREQ(str(t, "q"), "a\"b");
        CHECK_STREQ(str(t, "bs"), "a\\b");
        CHECK_STREQ(str(t, "nl"), "a\nb");
        CHECK_STREQ(str(t, "tab"), "a\tb");
        CHECK_STREQ(str(t, "cr"), "a\rb");
        CHECK_STREQ(str(t, "bf"), "\b\f");
        CHECK_STREQ(str(t, "u"), "caf\xc3\xa9 \xe2\x82\xac");
        CHECK_STREQ(str(t, "U"), "\xf0\x9f\x98\x80" "A");
        CHECK_STREQ(str(t, "raw"), "caf\xc3\xa9\ttab");
        CHECK_STREQ(str(t, "lit"), "C:\\path\\n \"q\"");
        CHECK_STREQ(str(t, "empty"), "");
        CHECK_STREQ(str(t, "elit"), "");
}

static void test_values(void) {
        _cleanup_(toml_freep) struct toml_table *t = parse_ok(
                "\xef\xbb\xbf" "a = 0\r\n"
                "b = -17 # trailing comment\n"
                "c = +1_000_000\n"
                "max = 9223372036854775807\n"
                "min = -9223372036854775808\n"
                "z = -0\n"
                "f = false\n"
                "\t  ints = [ 1, 2,\n"
                "   3, # a comment in an array\n"
                "\n"
                "   4, ]\n"
                "bools = [true,false]\n"
                "empty = []\n"
                "strs = [\n  'x',\n  \"y\",\n]\n"
                "\"quoted key\" = 1\n"
                "'lit.key' = 2\n"
                "bare-key_1 = 3\n"
                "1234 = 4\n");
        const int64_t *ints;
        const bool *bools;
        const char *const *strs;
        size_t n;
        bool b = true;

        CHECK_EQ(num(t, "a"), 0);
        CHECK_EQ(num(t, "b"), -17);
        CHECK_EQ(num(t, "c"), 1000000);
        CHECK(num(t, "max") == INT64_MAX);
        CHECK(num(t, "min") == INT64_MIN);
        CHECK_EQ(num(t, "z"), 0);
        CHECK_OK(toml_get_bool(t, "f", &b));
        CHECK(!b);
        CHECK_OK(toml_get_int_array(t, "ints", &ints, &n));
        CHECK_EQ(n, 4);
        CHECK(ints[0] == 1 && ints[1] == 2 && ints[2] == 3 && ints[3] == 4);
        CHECK_OK(toml_get_bool_array(t, "bools", &bools, &n));
        CHECK(n == 2 && bools[0] && !bools[1]);
        CHECK_OK(toml_get_string_array(t, "empty", &strs, &n));
        CHECK_EQ(n, 0);
        CHECK_OK(toml_get_int_array(t, "empty", &ints, &n));
        CHECK_OK(toml_get_string_array(t, "strs", &strs, &n));
        CHECK(n == 2 && strcmp(strs[0], "x") == 0 && strcmp(strs[1], "y") == 0);
        CHECK_EQ(num(t, "quoted key"), 1);
        CHECK_EQ(num(t, "lit.key"), 2);
        CHECK_EQ(num(t, "bare-key_1"), 3);
        CHECK_EQ(num(t, "1234"), 4);
        CHECK_STREQ(toml_table_key(t, 0), "a");
        CHECK_STREQ(toml_table_key(t, toml_table_count(t) - 1), "1234");
}

static void test_nesting(void) {
        _cleanup_(toml_freep) struct toml_table *t = parse_ok(
                "top = 1\n"
                "[a.b.c]\n"
                "x = 1\n"
                "[ a . \"dotted.part\" ]\n"
                "y = 2\n"
                "[a]\n" /* implied by [a.b.c], defined now: allowed once */
                "z = 3\n"
                "[a.b]\n"
                "w = 4\n"
                "['lit']\n"
                "[\"\"]\n"
                "e = 5\n");
        const struct toml_table *a = toml_table_get(t, "a");

        CHECK_EQ(num(t, "top"), 1);
        CHECK_EQ(num(toml_table_get(toml_table_get(a, "b"), "c"), "x"), 1);
        CHECK_EQ(num(toml_table_get(a, "dotted.part"), "y"), 2);
        CHECK(toml_table_get(a, "dotted") == NULL);
        CHECK_EQ(num(a, "z"), 3);
        CHECK_EQ(num(toml_table_get(a, "b"), "w"), 4);
        CHECK_EQ(toml_table_count(a), 3);
        CHECK_STREQ(toml_table_key(a, 0), "b");
        CHECK_STREQ(toml_table_key(a, 1), "dotted.part");
        CHECK_STREQ(toml_table_key(a, 2), "z");
        CHECK(toml_table_get(t, "lit") != NULL);
        CHECK_EQ(toml_table_count(toml_table_get(t, "lit")), 0);
        CHECK_EQ(num(toml_table_get(t, ""), "e"), 5);

        /* the empty file and a file of comments */
        toml_free(parse_ok(""));
        toml_free(parse_ok("\n\n  # only a comment\n\t\n"));
}

static void test_refusals(void) {
        /* duplicates */
        refused("a = 1\nb = 2\na = 3\n", 3, 1, "duplicate key \"a\"");
        refused("a = 1\n\"a\" = 3\n", 2, 1, "duplicate key \"a\"");
        refused("[x]\n[y]\n[x]\n", 3, 1, "table [x] defined twice");
        refused("[x.y]\n[x . y]\n", 2, 1, "table [x . y] defined twice");
        refused("[x.y]\n[x]\ny = 1\n", 3, 1, "duplicate key \"y\"");
        refused("[x]\ny = 1\n[x.y]\n", 3, 4, "key \"y\" is already defined as a value");
        /* strings */
        refused("a = \"abc\n", 1, 5, "unterminated string");
        refused("a = 'abc\n", 1, 5, "unterminated string");
        refused("a = \"abc", 1, 5, "unterminated string");
        refused("a = \"abc\\", 1, 9, "unterminated string");
        refused("a = \"a\x01\"\n", 1, 7, "control character 0x01 in a string");
        refused("a = \"a\rb\"\n", 1, 7, "control character 0x0d in a string");
        refused("a = 'a\x7f'\n", 1, 7, "control character 0x7f in a string");
        refused("# x\x02\n", 1, 4, "control character 0x02 in a comment");
        refused("a = \"\\x\"\n", 1, 6, "invalid escape sequence");
        refused("a = \"\\u12\"\n", 1, 6, "\\u needs 4 hexadecimal digits");
        refused("a = \"\\U0001F60\"\n", 1, 6, "\\U needs 8 hexadecimal digits");
        refused("a = \"\\uD800\"\n", 1, 6, "not a Unicode scalar value");
        refused("a = \"\\U00110000\"\n", 1, 6, "not a Unicode scalar value");
        refused("a = \"\\u0000\"\n", 1, 6, "not supported");
        refused("a = \"\xc3\"\n", 1, 6, "invalid UTF-8");
        refused("\xe9t\xe9 = 1\n", 1, 1, "invalid UTF-8");
        /* integers */
        refused("a = 9223372036854775808\n", 1, 5, "out of range");
        refused("a = -9223372036854775809\n", 1, 5, "out of range");
        refused("a = 1__0\n", 1, 5, "invalid integer");
        refused("a = _1\n", 1, 5, "syntax error: expected a value, found '_'");
        refused("a = 1_\n", 1, 5, "invalid integer");
        refused("a = 012\n", 1, 5, "invalid integer");
        refused("a = +\n", 1, 5, "invalid integer");
        refused("a = 12abc\n", 1, 5, "invalid integer");
        /* not supported */
        refused("a.b = 1\n", 1, 2, "dotted keys are not supported");
        refused("a = { b = 1 }\n", 1, 5, "inline tables are not supported");
        refused("[[x]]\n", 1, 1, "arrays of tables ([[...]]) are not supported");
        refused("a = \"\"\"x\"\"\"\n", 1, 5, "multi-line strings are not supported");
        refused("a = '''x'''\n", 1, 5, "multi-line strings are not supported");
        refused("a = 1.5\n", 1, 5, "floating-point numbers are not supported");
        refused("a = 1e5\n", 1, 5, "floating-point numbers are not supported");
        refused("a = -inf\n", 1, 5, "floating-point numbers are not supported");
        refused("a = nan\n", 1, 5, "floating-point numbers are not supported");
        refused("a = 1979-05-27T07:32:00Z\n", 1, 5, "dates and times are not supported");
        refused("a = 1979-05-27 07:32:00\n", 1, 5, "dates and times are not supported");
        refused("a = 07:32:00\n", 1, 5, "dates and times are not supported");
        refused("a = 0xff\n", 1, 5, "hexadecimal, octal and binary integers are not supported");
        refused("a = [[1], [2]]\n", 1, 6, "nested arrays are not supported");
        refused("a = [1, \"x\"]\n", 1, 9, "arrays mixing value types are not supported");
        refused("[a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a]\n", 1, 1, "not supported");
        /* syntax */
        refused("a = 1 b = 2\n", 1, 7, "expected end of line, found 'b'");
        refused("a\n", 1, 2, "expected '=', found end of line");
        refused("a = \n", 1, 5, "expected a value, found end of line");
        refused("a = tru\n", 1, 5, "expected a value, found 't'");
        refused("a = truex\n", 1, 5, "expected a value");
        refused("= 1\n", 1, 1, "expected a key, found '='");
        refused("[a\n", 1, 3, "expected '.' or ']', found end of line");
        refused("[]\n", 1, 2, "expected a key, found ']'");
        refused("[a.]\n", 1, 4, "expected a key");
        refused("a = [1, 2\n\n", 1, 5, "unterminated array");
        refused("a = [1 2]\n", 1, 8, "expected ',' or ']', found '2'");
        refused("a = [,]\n", 1, 6, "expected a value, found ','");
        refused("a = 1\rb = 2\n", 1, 6, "found control character 0x0d");
        refused_n("a = 1\0\n", 7, 1, 6, "found control character 0x00");
        refused("\xc3\xa9 = 1\n", 1, 1, "expected a key, found a non-ASCII character");
        /* columns count characters, lines count from 1 */
        refused("# \xc3\xa9\xc3\xa9\n\n[t]\n\xc2\xa0x = 1\n", 4, 1, "non-ASCII");
        refused("a = '\xc3\xa9\xc3\xa9'   x\n", 1, 12, "found 'x'");
}

static void test_errbuf(void) {
        struct toml_table *t = NULL;
        char small[8];

        CHECK_EQ(toml_parse("a = ", 4, &t, NULL, 0), -EINVAL);
        CHECK_EQ(toml_parse("a = ", 4, &t, small, sizeof(small)), -EINVAL);
        CHECK_STREQ(small, "line 1,");
        CHECK_EQ(toml_parse(NULL, 1, &t, NULL, 0), -EINVAL);
        CHECK_OK(toml_parse(NULL, 0, &t, NULL, 0));
        CHECK_EQ(toml_table_count(t), 0);
        toml_free(t);
        /* text need not be NUL-terminated: only len bytes are read */
        CHECK_OK(toml_parse("a = 12345", 6, &t, NULL, 0));
        CHECK_EQ(num(t, "a"), 12);
        toml_free(t);
}

/* Every prefix of the example and of a file using the whole subset, then
 * every single-byte flip of them to a handful of interesting bytes: the
 * parser must answer 0 or -EINVAL and leave no leak (ASan). */
static void test_fuzz(void) {
        static const char rich[] =
                "[a.\"b.c\"] # x\n"
                "s = \"e\\u00e9\\U0001F600\\n\" # y\n"
                "l = 'lit'\n"
                "i = -1_000\n"
                "arr = [ \"x\", # c\n 'y',\n ]\n"
                "ia = [1, 2]\n"
                "[a]\n"
                "b = true\n";
        static const char flips[] = { 0, '\n', '"', '\'', '\\', '[', ']', '.', '=', '#', ',', '{', '1', 'e', '-', ' ',
                                      (char) 0xc3, (char) 0xff };
        const char *inputs[] = { example, rich };
        size_t accepted = 0;

        for (size_t k = 0; k < ELEMENTSOF(inputs); k++) {
                size_t len = strlen(inputs[k]);
                char *buf = malloc(len);
                CHECK(buf);
                for (size_t n = 0; n <= len; n++) {
                        struct toml_table *t = NULL;
                        char err[128];
                        /* a fresh heap copy of exactly n bytes: ASan sees any read past it */
                        char *p = malloc(n ? n : 1);
                        CHECK(p);
                        memcpy(p, inputs[k], n);
                        int r = toml_parse(p, n, &t, err, sizeof(err));
                        CHECK(r == 0 || r == -EINVAL);
                        CHECK((r == 0) == (t != NULL));
                        CHECK(r == 0 || strncmp(err, "line ", 5) == 0);
                        accepted += r == 0;
                        toml_free(t);
                        free(p);
                }
                for (size_t pos = 0; pos < len; pos++)
                        for (size_t f = 0; f < ELEMENTSOF(flips); f++) {
                                struct toml_table *t = NULL;
                                char err[128];
                                memcpy(buf, inputs[k], len);
                                buf[pos] = flips[f];
                                int r = toml_parse(buf, len, &t, err, sizeof(err));
                                CHECK(r == 0 || r == -EINVAL);
                                CHECK(r == 0 || strncmp(err, "line ", 5) == 0);
                                toml_free(t);
                        }
                free(buf);
        }
        CHECK(accepted > 10); /* prefixes ending at a line end are valid */
}

int main(void) {
        RUN(test_example);
        RUN(test_escapes);
        RUN(test_values);
        RUN(test_nesting);
        RUN(test_refusals);
        RUN(test_errbuf);
        RUN(test_fuzz);
        return 0;
}
