/* A rate-limited progress line on stderr (see progress.h). */
#include <stdarg.h>
#include <stdio.h>

#include "util/progress.h"

void progress_init(struct progress *p, bool on) {
        *p = (struct progress){ .on = on };
}

static void draw(struct progress *p, const char *fmt, va_list ap, bool final) __attribute__((format(printf, 2, 0)));
static void draw(struct progress *p, const char *fmt, va_list ap, bool final) {
        fputs("\r\033[K", stderr);
        vfprintf(stderr, fmt, ap);
        if (final)
                fputc('\n', stderr);
        fflush(stderr);
        p->shown = !final;
}

void progress_show(struct progress *p, const char *fmt, ...) {
        struct timespec now;
        va_list ap;

        if (!p->on)
                return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - p->last.tv_sec) * 1000000000LL + (now.tv_nsec - p->last.tv_nsec) < 250000000LL)
                return;
        p->last = now;
        va_start(ap, fmt);
        draw(p, fmt, ap, false);
        va_end(ap);
}

void progress_done(struct progress *p, const char *fmt, ...) {
        va_list ap;

        if (!p->on)
                return;
        va_start(ap, fmt);
        draw(p, fmt, ap, true);
        va_end(ap);
}
