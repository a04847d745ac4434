/* Logging implementation: formats into a stack buffer and writes it with a
 * single write(2) so lines from different threads never interleave. */
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int max_level = LOG_LEVEL_NOTICE; /* written before threads start */
static const char *prefix = "";   /* written before threads start */

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_prefix(const char *p) {
        prefix = p ? p : "";
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;
        int n;

        n = snprintf(buf, sizeof(buf), "%s", prefix);
        if (max_level >= LOG_LEVEL_DEBUG && n >= 0 && (size_t) n < sizeof(buf))
                n += snprintf(buf + n, sizeof(buf) - n, "(%s:%d) ", file, line);
        if (error != 0)
                errno = error < 0 ? -error : error; /* so that %m prints it */
        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < sizeof(buf))
                n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        if ((size_t) n >= sizeof(buf) - 1)
                n = sizeof(buf) - 2;
        buf[n++] = '\n';
        (void) !write(STDERR_FILENO, buf, n);
        errno = saved;
        (void) level;
        return error;
}
