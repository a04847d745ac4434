/* Small language helpers used everywhere: cleanup attributes, ownership
 * transfer (TAKE_PTR/TAKE_FD), array sizes and branch hints. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define _unused_ __attribute__((unused))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _warn_unused_ __attribute__((warn_unused_result))

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
/* Arguments may be evaluated twice: pass no calls. */
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))

/* Hand a pointer or fd over to someone else: the cleanup handler of the
 * source variable then sees NULL / -1 and does nothing. */
#define TAKE_PTR(p)                     \
        ({                              \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;             \
                _p_;                    \
        })
#define TAKE_FD(fd)                \
        ({                         \
                int _fd_ = (fd);   \
                (fd) = -1;         \
                _fd_;              \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

/* Declare foo_unrefp()/foo_freep() style wrappers for a type's destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        func(*p);               \
        }

/* A timestamp (struct stat's st_ctim, say) in nanoseconds. */
static inline int64_t timespec_ns(struct timespec t) {
        return (int64_t) t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Map a libc-style "-1 and errno" result to -errno (never 0 on failure). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
