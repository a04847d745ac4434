/* Minimal assertion helpers for the unit test programs: a failed check
 * prints where and what, then aborts (so ASan/UBSan runs keep a trace). */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                                            \
        do {                                                                                   \
                if (!(expr)) {                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                               \
                }                                                                              \
        } while (0)

#define CHECK_EQ(a, b)                                                                          \
        do {                                                                                    \
                long long _a = (long long) (a), _b = (long long) (b);                           \
                if (_a != _b) {                                                                 \
                        fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,      \
                                __LINE__, #a, #b, _a, _b);                                      \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define CHECK_OK(r)                                                                             \
        do {                                                                                    \
                long long _r = (long long) (r);                                                 \
                if (_r < 0) {                                                                   \
                        fprintf(stderr, "%s:%d: %s failed: %lld (%s)\n", __FILE__, __LINE__, #r, \
                                _r, strerror((int) -_r));                                       \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define CHECK_STREQ(a, b)                                                                       \
        do {                                                                                    \
                const char *_a = (a), *_b = (b);                                                \
                if (strcmp(_a, _b) != 0) {                                                      \
                        fprintf(stderr, "%s:%d: %s == %s failed:\n  \"%s\"\n  \"%s\"\n",        \
                                __FILE__, __LINE__, #a, #b, _a, _b);                            \
                        abort();                                                                \
                }                                                                               \
        } while (0)

/* A part of the program could not run here (a tool is missing): said on
 * stderr, and the program then exits 77, meson's SKIP, instead of 0, so
 * that a missing tool never reads as a pass. */
static inline int *test_exit_code(void) {
        static int code;
        return &code;
}
#define SKIP_PART(...)                                        \
        do {                                                  \
                fprintf(stderr, "  SKIP: " __VA_ARGS__);      \
                fputc('\n', stderr);                          \
                *test_exit_code() = 77;                       \
        } while (0)

#define RUN(test)                                    \
        do {                                         \
                fprintf(stderr, "  %s\n", #test);     \
                test();                              \
        } while (0)

/* A fresh directory $TMPDIR/<name>.XXXXXX (or under /tmp) into buf. */
static inline void test_tmp_root(const char *name, char *buf, size_t size) {
        const char *tmpdir = getenv("TMPDIR");

        snprintf(buf, size, "%s/%s.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp", name);
        CHECK(mkdtemp(buf));
}

/* rm -rf of a test's directory. */
static inline void remove_tree(const char *dir) {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        CHECK_EQ(system(cmd), 0);
}

/* Hex of a byte buffer into a static-size buffer (tests only). */
static inline const char *test_hex(const void *data, size_t len, char *buf) {
        static const char h[] = "0123456789abcdef";
        const unsigned char *p = data;
        for (size_t i = 0; i < len; i++) {
                buf[2 * i] = h[p[i] >> 4];
                buf[2 * i + 1] = h[p[i] & 15];
        }
        buf[2 * len] = 0;
        return buf;
}
