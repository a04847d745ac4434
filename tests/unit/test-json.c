/* Unit tests for the JSON string writer: escapes, valid UTF-8 kept,
 * invalid bytes as \udcXX (Python's surrogateescape). */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"
#include "util/json.h"

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

int main(void) {
        RUN(test_strings);
        return 0;
}
